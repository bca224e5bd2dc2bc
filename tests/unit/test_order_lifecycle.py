"""Order transitions, on an in-memory unit of work: which moves are allowed, who may make them, what they change."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from shop.models import OrderStatus, Role
from shop.services.order_lifecycle import Action, IllegalTransition, transition
from shop.services.order_reads import OrderNotFound
from shop.services.ordering import OrderLine, OrderPlaced, OrderRequest, place_order
from tests.unit.memory import MemoryDatabase, MemoryUnitOfWork, principal

ADDRESS = {"name": "Ann", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
ANN, BOB, STAFF = principal(1), principal(2), principal(3, Role.STAFF)
Factory = Callable[[], MemoryUnitOfWork]


@pytest.fixture
def order_id(database: MemoryDatabase, uow: Factory) -> int:
    """Ann's pending order of 2 lamps (5 in stock before it)."""
    lamp = database.add_product("LAMP", stock=5)
    placed = place_order(ANN, OrderRequest([OrderLine(lamp.id, 2)], ADDRESS), unit_of_work=uow)
    assert isinstance(placed, OrderPlaced)
    return placed.order_id


def lamp_stock(database: MemoryDatabase) -> int:
    return next(p.stock for p in database.products.values() if p.sku == "LAMP")


def test_paying_stamps_the_order_counts_its_lines_and_notes_the_reference(
    database: MemoryDatabase, uow: Factory, order_id: int
) -> None:
    done = transition(order_id, ANN, Action.PAY, payment_reference="ch_1", unit_of_work=uow)

    assert done.order.status == OrderStatus.PAID
    assert done.order.paid_at == database.now
    assert all(item.counted for item in done.order.items)
    assert done.history is None  # a customer is not shown the history
    last = database.history[-1]
    assert (last.from_status, last.to_status, last.changed_by, last.note) == ("pending", "paid", ANN.id, "ch_1")


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], Action.SHIP),
        ([], Action.DELIVER),
        ([Action.PAY], Action.PAY),
        ([Action.PAY], Action.DELIVER),
        ([Action.PAY, Action.SHIP], Action.CANCEL),
        ([Action.PAY, Action.SHIP, Action.DELIVER], Action.CANCEL),
        ([Action.CANCEL], Action.PAY),
        ([Action.CANCEL], Action.CANCEL),
    ],
)
def test_a_move_the_status_does_not_allow_is_refused_and_changes_nothing(
    database: MemoryDatabase, uow: Factory, order_id: int, path: list[Action], refused: Action
) -> None:
    for action in path:
        transition(order_id, STAFF, action, unit_of_work=uow)
    status, stock, entries = database.orders[order_id].status, lamp_stock(database), len(database.history)

    with pytest.raises(IllegalTransition) as refusal:
        transition(order_id, STAFF, refused, unit_of_work=uow)

    assert refusal.value.extra == {"current_status": status}
    assert (database.orders[order_id].status, lamp_stock(database), len(database.history)) == (status, stock, entries)


def test_cancelling_returns_the_units_once(database: MemoryDatabase, uow: Factory, order_id: int) -> None:
    assert lamp_stock(database) == 3

    transition(order_id, ANN, Action.CANCEL, reason="changed my mind", unit_of_work=uow)
    with pytest.raises(IllegalTransition):
        transition(order_id, ANN, Action.CANCEL, unit_of_work=uow)

    assert lamp_stock(database) == 5
    assert database.orders[order_id].cancel_reason == "changed my mind"


def test_cancelling_a_paid_order_takes_it_out_of_the_revenue(
    database: MemoryDatabase, uow: Factory, order_id: int
) -> None:
    transition(order_id, ANN, Action.PAY, unit_of_work=uow)
    done = transition(order_id, STAFF, Action.CANCEL, unit_of_work=uow)

    assert not any(item.counted for item in done.order.items)
    assert done.history is not None
    assert [(c.from_status, c.to_status) for c in done.history] == [
        (None, "pending"),
        ("pending", "paid"),
        ("paid", "cancelled"),
    ]


@pytest.mark.parametrize("action", [Action.PAY, Action.CANCEL])
def test_another_customers_order_does_not_exist_for_them(
    database: MemoryDatabase, uow: Factory, order_id: int, action: Action
) -> None:
    with pytest.raises(OrderNotFound) as missing:
        transition(order_id, BOB, action, unit_of_work=uow)
    with pytest.raises(OrderNotFound) as nothing:
        transition(order_id + 1000, BOB, action, unit_of_work=uow)

    assert str(missing.value) == f"There is no order {order_id}."  # the same answer as for no order at all
    assert str(nothing.value) == f"There is no order {order_id + 1000}."
    assert database.orders[order_id].status == "pending"
    assert lamp_stock(database) == 3


def test_staff_may_move_any_order_and_see_its_history(database: MemoryDatabase, uow: Factory, order_id: int) -> None:
    for action in (Action.PAY, Action.SHIP, Action.DELIVER):
        done = transition(order_id, STAFF, action, unit_of_work=uow)

    assert done.order.status == OrderStatus.DELIVERED
    assert done.history is not None
    assert [c.to_status for c in done.history][-1] == "delivered"
    assert json.loads(json.dumps([c.changed_by for c in done.history])) == [ANN.id, STAFF.id, STAFF.id, STAFF.id]


def test_each_transition_is_an_event_numbered_after_the_last(
    database: MemoryDatabase, uow: Factory, order_id: int
) -> None:
    transition(order_id, STAFF, Action.PAY, unit_of_work=uow)
    with pytest.raises(IllegalTransition):
        transition(order_id, STAFF, Action.DELIVER, unit_of_work=uow)
    transition(order_id, STAFF, Action.CANCEL, unit_of_work=uow)

    assert [(e.type, e.sequence) for e in database.events] == [
        ("order.placed", 1),
        ("order.paid", 2),
        ("order.cancelled", 3),
    ]
    assert database.events[-1].data["status"] == "cancelled"


def test_cancelling_the_order_that_sold_a_product_out_brings_it_back_in_stock(
    database: MemoryDatabase, uow: Factory
) -> None:
    mug = database.add_product("MUG", stock=2)
    placed = place_order(ANN, OrderRequest([OrderLine(mug.id, 2)], ADDRESS), unit_of_work=uow)
    assert isinstance(placed, OrderPlaced)

    transition(placed.order_id, ANN, Action.CANCEL, unit_of_work=uow)

    assert [(e.type, e.sequence) for e in database.events if e.resource_type == "product"] == [
        ("product.out_of_stock", 1),
        ("product.back_in_stock", 2),
    ]
    assert database.events[-1].data["stock"] == 2
