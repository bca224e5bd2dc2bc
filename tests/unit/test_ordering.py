"""Placing an order, on an in-memory unit of work: the rules of stock, partial orders and Idempotency-Keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest

from shop.errors import ValidationFailed
from shop.services.ordering import (
    IdempotencyKeyReused,
    OrderLine,
    OrderPlaced,
    OrderRequest,
    OutOfStock,
    place_order,
)
from tests.unit.memory import MemoryDatabase, MemoryUnitOfWork, principal

ADDRESS = {"name": "Ann", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
ANN, BOB = principal(1), principal(2)
Factory = Callable[[], MemoryUnitOfWork]


def request(*lines: tuple[int, int], allow_partial: bool = False) -> OrderRequest:
    return OrderRequest([OrderLine(p, q) for p, q in lines], ADDRESS, allow_partial)


def test_an_order_takes_its_stock_and_is_pending_with_its_first_history_entry(
    database: MemoryDatabase, uow: Factory
) -> None:
    lamp = database.add_product("LAMP", price="24.50", stock=5)
    mug = database.add_product("MUG", price="8.00", stock=3, category="Kitchen")

    outcome = place_order(ANN, request((lamp.id, 2), (mug.id, 3)), unit_of_work=uow)

    assert isinstance(outcome, OrderPlaced)
    assert not outcome.replayed
    document = json.loads(outcome.document)
    assert (document["status"], document["total"], document["user_id"]) == ("pending", "73.00", ANN.id)
    assert [(i["sku"], i["quantity"], i["line_total"]) for i in document["items"]] == [
        ("LAMP", 2, "49.00"),
        ("MUG", 3, "24.00"),
    ]
    assert (lamp.stock, mug.stock) == (3, 0)
    order = database.orders[outcome.order_id]
    assert (order.total, order.units) == (Decimal("73.00"), 5)
    assert [(c.from_status, c.to_status) for c in database.history] == [(None, "pending")]
    assert database.commits == 1


def test_not_enough_stock_for_one_line_orders_nothing_and_names_the_short_lines(
    database: MemoryDatabase, uow: Factory
) -> None:
    lamp = database.add_product("LAMP", stock=5)
    mug = database.add_product("MUG", stock=1)

    outcome = place_order(ANN, request((lamp.id, 2), (mug.id, 3)), unit_of_work=uow)

    assert outcome == OutOfStock(
        "Not enough stock for some lines; nothing was ordered.",
        [{"product_id": mug.id, "requested": 3, "available": 1}],
    )
    assert (lamp.stock, mug.stock) == (5, 1)
    assert database.orders == {}


def test_allow_partial_keeps_the_lines_in_stock_and_lists_the_dropped_ones(
    database: MemoryDatabase, uow: Factory
) -> None:
    lamp = database.add_product("LAMP", stock=5)
    mug = database.add_product("MUG", stock=1)

    outcome = place_order(ANN, request((lamp.id, 2), (mug.id, 3), allow_partial=True), unit_of_work=uow)

    assert isinstance(outcome, OrderPlaced)
    document = json.loads(outcome.document)
    assert [item["sku"] for item in document["items"]] == ["LAMP"]
    assert document["dropped_lines"] == [{"product_id": mug.id, "requested": 3, "available": 1}]
    assert (lamp.stock, mug.stock) == (3, 1)


def test_allow_partial_with_no_line_in_stock_is_out_of_stock(database: MemoryDatabase, uow: Factory) -> None:
    mug = database.add_product("MUG", stock=1)

    outcome = place_order(ANN, request((mug.id, 3), allow_partial=True), unit_of_work=uow)

    assert isinstance(outcome, OutOfStock)
    assert outcome.detail == "None of the lines can be filled."
    assert mug.stock == 1
    assert database.orders == {}


def test_unknown_and_inactive_products_are_refused_by_field(database: MemoryDatabase, uow: Factory) -> None:
    lamp = database.add_product("LAMP", stock=5)
    retired = database.add_product("OLD", stock=5, is_active=False)

    with pytest.raises(ValidationFailed) as refused:
        place_order(ANN, request((lamp.id, 1), (retired.id, 1), (9999, 1)), unit_of_work=uow)

    assert set(refused.value.extra["errors"]) == {"items.1.product_id", "items.2.product_id"}
    assert lamp.stock == 5
    assert database.orders == {}


def test_the_same_key_and_request_replays_the_first_answer_and_takes_stock_once(
    database: MemoryDatabase, uow: Factory
) -> None:
    lamp = database.add_product("LAMP", stock=5)

    first = place_order(ANN, request((lamp.id, 2)), "key-1", unit_of_work=uow)
    again = place_order(ANN, request((lamp.id, 2)), "key-1", unit_of_work=uow)

    assert isinstance(first, OrderPlaced)
    assert isinstance(again, OrderPlaced)
    assert (again.replayed, again.order_id, again.document) == (True, first.order_id, first.document)
    assert lamp.stock == 3
    assert len(database.orders) == 1


def test_keys_belong_to_their_customer(database: MemoryDatabase, uow: Factory) -> None:
    lamp = database.add_product("LAMP", stock=5)

    mine = place_order(ANN, request((lamp.id, 1)), "same", unit_of_work=uow)
    theirs = place_order(BOB, request((lamp.id, 1)), "same", unit_of_work=uow)

    assert isinstance(mine, OrderPlaced)
    assert isinstance(theirs, OrderPlaced)
    assert not theirs.replayed
    assert theirs.order_id != mine.order_id


def test_a_key_reused_for_another_request_is_refused_and_changes_nothing(
    database: MemoryDatabase, uow: Factory
) -> None:
    lamp = database.add_product("LAMP", stock=5)
    place_order(ANN, request((lamp.id, 1)), "key-1", unit_of_work=uow)

    with pytest.raises(IdempotencyKeyReused):
        place_order(ANN, request((lamp.id, 2)), "key-1", unit_of_work=uow)

    assert lamp.stock == 4
    assert len(database.orders) == 1


def test_a_refusal_is_replayed_even_after_the_stock_came_back(database: MemoryDatabase, uow: Factory) -> None:
    lamp = database.add_product("LAMP", stock=1)

    first = place_order(ANN, request((lamp.id, 2)), "key-1", unit_of_work=uow)
    lamp.stock = 10
    again = place_order(ANN, request((lamp.id, 2)), "key-1", unit_of_work=uow)

    assert isinstance(first, OutOfStock)
    assert isinstance(again, OutOfStock)
    assert again.replayed
    assert (again.detail, again.lines) == (first.detail, first.lines)
    assert lamp.stock == 10
    assert database.orders == {}


def test_only_a_customers_newest_refusals_are_kept(database: MemoryDatabase, uow: Factory) -> None:
    lamp = database.add_product("LAMP", stock=0)

    for n in range(5):
        place_order(ANN, request((lamp.id, 1)), f"refused-{n}", unit_of_work=uow)

    kept = sorted(key for user, key in database.keys if user == ANN.id)
    assert kept == ["refused-2", "refused-3", "refused-4"]  # IDEMPOTENCY_REFUSALS_PER_USER = 3


def test_the_transaction_is_bounded_by_the_configured_waits(database: MemoryDatabase) -> None:
    lamp = database.add_product("LAMP", stock=5)
    used: list[MemoryUnitOfWork] = []

    def tracked() -> MemoryUnitOfWork:
        used.append(MemoryUnitOfWork(database))
        return used[-1]

    place_order(ANN, request((lamp.id, 1)), unit_of_work=tracked)

    assert [u.waits for u in used] == [(2000, 5000)]


def test_an_order_writes_its_event_and_one_for_a_product_it_sold_out(database: MemoryDatabase, uow: Factory) -> None:
    lamp = database.add_product("LAMP", stock=5)
    mug = database.add_product("MUG", stock=2)

    outcome = place_order(ANN, request((lamp.id, 1), (mug.id, 2)), unit_of_work=uow)

    assert isinstance(outcome, OrderPlaced)
    assert [(e.type, e.resource_id, e.sequence) for e in database.events] == [
        ("order.placed", outcome.order_id, 1),
        ("product.out_of_stock", mug.id, 1),
    ]
    assert database.events[0].data == json.loads(outcome.document)
    assert (database.events[1].data["stock"], database.events[1].data["in_stock"]) == (0, False)


def test_a_refusal_writes_no_event(database: MemoryDatabase, uow: Factory) -> None:
    mug = database.add_product("MUG", stock=1)

    place_order(ANN, request((mug.id, 2)), "key", unit_of_work=uow)

    assert database.events == []
