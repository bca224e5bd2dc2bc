"""Returns: a customer asks back lines of a delivered order within the window; staff receive them once, the units fit
to sell back in stock, the damaged ones not; a refund can follow, naming the return."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from tests.conftest import AuthActions
from tests.helpers import ADDRESS, make_products, order_step, run_together, stock_invariant_holds

pytestmark = pytest.mark.commits

INITIAL = {"LAMP": 10, "MUG": 10}


@pytest.fixture
def shop(committing_app: Flask) -> dict[str, Any]:
    """A delivered order of 3 LAMP and 1 MUG."""
    auth = AuthActions(committing_app.test_client())
    ids = make_products(committing_app, INITIAL)
    client = committing_app.test_client()
    ann, staff = auth.headers("ann@example.com"), auth.headers("staff@example.com", "staff")
    lines = [{"product_id": ids["LAMP"], "quantity": 3}, {"product_id": ids["MUG"], "quantity": 1}]
    order = client.post("/api/v1/orders", json={"items": lines, "shipping_address": ADDRESS}, headers=ann).get_json()
    for action in ("pay", "ship", "deliver"):
        assert order_step(client, order["id"], action, staff).status_code == 200
    return {"ids": ids, "ann": ann, "bob": auth.headers("bob@example.com"), "staff": staff, "client": client,
            "order": order, "path": f"/api/v1/orders/{order['id']}"}  # fmt: skip


def stock(app: Flask, product_id: int) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}))


def ask(shop: dict[str, Any], lines: list[tuple[str, int]], headers: dict[str, str] | None = None) -> Any:
    body = {"lines": [{"product_id": shop["ids"][sku], "quantity": q} for sku, q in lines], "reason": "too big"}
    return shop["client"].post(f"{shop['path']}/returns", json=body, headers=headers or shop["ann"])


def receive(shop: dict[str, Any], return_id: int, lines: list[tuple[str, int, int]], client: Any = None) -> Any:
    body = {"lines": [{"product_id": shop["ids"][sku], "received": r, "damaged": d} for sku, r, d in lines]}
    return (client or shop["client"]).post(
        f"{shop['path']}/returns/{return_id}/receive", json=body, headers=shop["staff"]
    )


def test_received_units_go_back_in_stock_once_and_damaged_ones_do_not(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    lamp = shop["ids"]["LAMP"]
    asked = ask(shop, [("LAMP", 3)])
    assert asked.status_code == 201, asked.get_json()
    assert (asked.get_json()["status"], asked.get_json()["lines"][0]["quantity"]) == ("requested", 3)
    before = stock(committing_app, lamp)

    received = receive(shop, asked.get_json()["id"], [("LAMP", 2, 1)])
    again = receive(shop, asked.get_json()["id"], [("LAMP", 2, 1)])

    assert received.status_code == 200, received.get_json()
    assert received.get_json()["lines"] == [{"product_id": lamp, "quantity": 3, "received": 2, "damaged": 1}]
    assert (again.status_code, again.get_json()["type"]) == (409, "/problems/return-already-received")
    assert stock(committing_app, lamp) == before + 2
    stock_invariant_holds(committing_app, {shop["ids"][sku]: units for sku, units in INITIAL.items()})
    history = shop["client"].get(shop["path"], headers=shop["staff"]).get_json()["history"]
    assert [h["event"] for h in history[-2:]] == ["return.requested", "return.received"]
    listed = shop["client"].get(f"{shop['path']}/returns", headers=shop["ann"]).get_json()["items"]
    assert [r["status"] for r in listed] == ["received"]


def test_ten_staff_receiving_one_return_at_once_restock_it_once(shop: dict[str, Any], committing_app: Flask) -> None:
    return_id = ask(shop, [("LAMP", 2), ("MUG", 1)]).get_json()["id"]
    before = stock(committing_app, shop["ids"]["LAMP"])

    def go(n: int) -> int:
        return int(receive(shop, return_id, [("LAMP", 2, 0), ("MUG", 0, 1)], client=committing_app.test_client())
                   .status_code)  # fmt: skip

    assert Counter(run_together(10, go)) == {200: 1, 409: 9}
    assert stock(committing_app, shop["ids"]["LAMP"]) == before + 2
    stock_invariant_holds(committing_app, {shop["ids"][sku]: units for sku, units in INITIAL.items()})


def test_a_refund_can_follow_a_return_and_restocked_units_are_not_restocked_again(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    return_id = ask(shop, [("LAMP", 3)]).get_json()["id"]
    assert receive(shop, return_id, [("LAMP", 3, 0)]).status_code == 200
    lines = [{"product_id": shop["ids"]["LAMP"], "quantity": 3}]

    restock_again = shop["client"].post(
        f"{shop['path']}/refunds", json={"lines": lines, "reason": "returned", "restock": True, "return_id": return_id},
        headers=shop["staff"] | {"Idempotency-Key": "r1"},
    )  # fmt: skip
    refunded = shop["client"].post(
        f"{shop['path']}/refunds", json={"lines": lines, "reason": "returned", "return_id": return_id},
        headers=shop["staff"] | {"Idempotency-Key": "r2"},
    )  # fmt: skip

    assert restock_again.status_code == 422
    assert refunded.status_code == 201, refunded.get_json()
    assert (refunded.get_json()["return_id"], refunded.get_json()["amount"]) == (return_id, "7.50")
    stock_invariant_holds(committing_app, {shop["ids"][sku]: units for sku, units in INITIAL.items()})


def test_more_than_was_bought_cannot_be_asked_back(shop: dict[str, Any], committing_app: Flask) -> None:
    assert ask(shop, [("LAMP", 2)]).status_code == 201

    too_many = ask(shop, [("LAMP", 2)])  # 2 of the 3 are asked back already
    not_in_order = shop["client"].post(
        f"{shop['path']}/returns", json={"lines": [{"product_id": 999999, "quantity": 1}]}, headers=shop["ann"]
    )
    twice = shop["client"].post(
        f"{shop['path']}/returns",
        json={"lines": [{"product_id": shop["ids"]["MUG"], "quantity": 1}] * 2},
        headers=shop["ann"],
    )

    assert [a.status_code for a in (too_many, not_in_order, twice)] == [422, 422, 422]
    assert "lines.0.quantity" in too_many.get_json()["errors"]
    assert len(shop["client"].get(f"{shop['path']}/returns", headers=shop["ann"]).get_json()["items"]) == 1


def test_who_may_return_what_and_when(shop: dict[str, Any], committing_app: Flask) -> None:
    other = ask(shop, [("LAMP", 1)], headers=shop["bob"])
    customer_receives = shop["client"].post(
        f"{shop['path']}/returns/1/receive", json={"lines": [{"product_id": 1, "received": 1, "damaged": 0}]},
        headers=shop["ann"],
    )  # fmt: skip
    no_such_return = receive(shop, 987654, [("LAMP", 1, 0)])
    assert (other.status_code, customer_receives.status_code, no_such_return.status_code) == (404, 403, 404)

    with committing_app.app_context(), db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orders SET delivered_at = now() - interval '31 days' WHERE id = :id"),
            {"id": shop["order"]["id"]},
        )
    late = ask(shop, [("LAMP", 1)])
    assert (late.status_code, late.get_json()["type"]) == (409, "/problems/not-returnable")
    assert "30 days after delivery" in late.get_json()["detail"]


def test_an_order_not_yet_delivered_cannot_be_returned(shop: dict[str, Any], committing_app: Flask) -> None:
    lines = [{"product_id": shop["ids"]["MUG"], "quantity": 1}]
    order = (
        shop["client"]
        .post("/api/v1/orders", json={"items": lines, "shipping_address": ADDRESS}, headers=shop["ann"])
        .get_json()
    )

    answer = shop["client"].post(f"/api/v1/orders/{order['id']}/returns", json={"lines": lines}, headers=shop["ann"])

    assert (answer.status_code, answer.get_json()["type"]) == (409, "/problems/not-returnable")
