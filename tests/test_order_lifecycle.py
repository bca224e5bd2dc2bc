"""pay -> ship -> deliver, and cancel: who may, from which status, and what the database says after."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.extensions import db
from shop.models import Order, Product
from shop.models.order import COUNTED_SQL, counted_sql
from tests.conftest import AuthActions
from tests.helpers import (
    ADDRESS,
    add_product,
    make_products,
    order_body,
    order_step,
    run_together,
    staff_headers,
    stock_invariant_holds,
    stock_levels,
    tokens,
)


@pytest.fixture
def shop(client: FlaskClient, auth: AuthActions, db_session: Any) -> dict[str, Any]:
    lamp = add_product(db_session, "LAMP", price=Decimal("10.00"), stock=5)
    mug = add_product(db_session, "MUG", price=Decimal("3.00"), stock=5)
    ann = auth.headers("ann@example.com")
    order = client.post("/api/v1/orders", json=order_body((lamp, 2), (mug, 1)), headers=ann).get_json()
    return {
        "order": order,
        "path": f"/api/v1/orders/{order['id']}",
        "ann": ann,
        "bob": auth.headers("bob@example.com"),
        "staff": auth.headers("staff@example.com", "staff"),
    }


def status_in_db(session: Any, order_id: int) -> str:
    return str(session.scalar(sa.select(Order.status).where(Order.id == order_id)))


def test_pay_ship_deliver_with_timestamps_in_order_and_a_history(client: FlaskClient, shop: dict[str, Any]) -> None:
    path = shop["path"]

    paid = client.post(f"{path}/payments", json={"reference": "ch_123"}, headers=shop["staff"])
    shipped = client.post(f"{path}/ship", headers=shop["staff"])
    delivered = client.post(f"{path}/deliver", headers=shop["staff"])

    assert [r.status_code for r in (paid, shipped, delivered)] == [200, 200, 200]
    order = delivered.get_json()
    assert order["status"] == "delivered"
    assert order["created_at"] <= order["paid_at"] <= order["shipped_at"] <= order["delivered_at"]
    assert [(h["from"], h["to"]) for h in order["history"]] == [
        (None, "pending"), ("pending", "pending"), ("pending", "paid"), ("paid", "shipped"), ("shipped", "delivered"),
    ]  # fmt: skip
    assert [h["event"] for h in order["history"]] == [
        "order.placed", "payment.captured", "order.paid", "order.shipped", "order.delivered",
    ]  # fmt: skip
    assert order["history"][2]["note"] == "ch_123"
    assert "history" not in client.get(path, headers=shop["ann"]).get_json()  # customers do not see it


@pytest.mark.parametrize(
    ("steps", "action", "current"),
    [
        ([], "ship", "pending"),
        ([], "deliver", "pending"),
        (["pay"], "pay", "paid"),
        (["pay"], "deliver", "paid"),
        (["pay", "ship"], "cancel", "shipped"),
        (["pay", "ship", "deliver"], "cancel", "delivered"),
        (["cancel"], "cancel", "cancelled"),
        (["cancel"], "pay", "cancelled"),
    ],
)
def test_illegal_transitions_are_a_409_naming_the_current_status(
    client: FlaskClient, shop: dict[str, Any], db_session: Any, steps: list[str], action: str, current: str
) -> None:
    for step in steps:
        assert order_step(client, shop["order"]["id"], step, shop["staff"]).status_code == 200
    before = stock_levels(db_session)

    response = order_step(client, shop["order"]["id"], action, shop["staff"])

    assert response.status_code == 409
    problem = response.get_json()
    assert problem["type"] == "/problems/illegal-transition"
    assert problem["current_status"] == current
    assert problem["detail"].startswith(f"Order {shop['order']['id']} is {current}; it cannot be")
    assert status_in_db(db_session, shop["order"]["id"]) == current
    assert stock_levels(db_session) == before


@pytest.mark.parametrize("paid_first", [False, True])
def test_cancelling_returns_the_units(
    client: FlaskClient, shop: dict[str, Any], db_session: Any, paid_first: bool
) -> None:
    assert stock_levels(db_session) == {"LAMP": 3, "MUG": 4}
    if paid_first:
        assert order_step(client, shop["order"]["id"], "pay", shop["staff"]).status_code == 200

    response = client.post(f"{shop['path']}/cancel", json={"reason": "changed my mind"}, headers=shop["ann"])

    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["cancelled_at"] is not None
    assert stock_levels(db_session) == {"LAMP": 5, "MUG": 5}


def test_another_customer_can_neither_see_nor_cancel_an_order(
    client: FlaskClient, shop: dict[str, Any], db_session: Any
) -> None:
    path, bob = shop["path"], shop["bob"]
    before = stock_levels(db_session)

    answers = [client.get(path, headers=bob), client.post(f"{path}/cancel", headers=bob)]

    assert [a.status_code for a in answers] == [404, 404]
    assert all(a.get_json()["type"] == "/problems/order-not-found" for a in answers)
    assert status_in_db(db_session, shop["order"]["id"]) == "pending"
    assert stock_levels(db_session) == before


def test_shipping_and_delivering_are_for_staff(client: FlaskClient, shop: dict[str, Any], db_session: Any) -> None:
    assert order_step(client, shop["order"]["id"], "pay", shop["staff"]).status_code == 200

    assert client.post(f"{shop['path']}/ship", headers=shop["ann"]).status_code == 403
    assert client.post(f"{shop['path']}/deliver", headers=shop["ann"]).status_code == 403
    assert client.post(f"{shop['path']}/ship").status_code == 401
    assert status_in_db(db_session, shop["order"]["id"]) == "paid"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/orders/{id}/pay", {"payment_reference": "i-promise"}, 410),  # paying is confirmed, not claimed
        ("/api/v1/orders/{id}/pay", None, 410),
        ("/api/v1/orders/{id}/payments", {"reference": "i-promise"}, 403),  # recording a payment is for staff
        ("/api/v1/orders/{id}/cancel", {"reason": "x" * 2001}, 422),
        ("/api/v1/orders/{id}/refund", None, 404),
    ],
)
def test_transition_failures(
    client: FlaskClient, shop: dict[str, Any], db_session: Any, path: str, body: dict[str, Any] | None, status: int
) -> None:
    response = client.post(path.format(id=shop["order"]["id"]), json=body, headers=shop["ann"])

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert status_in_db(db_session, shop["order"]["id"]) == "pending"


# --- races, with real commits -------------------------------------------------------------------------------


def placed_order(app: Flask, product_ids: dict[str, int], buyer: dict[str, str]) -> int:
    body = {"items": [{"product_id": pid, "quantity": 2} for pid in product_ids.values()], "shipping_address": ADDRESS}
    response = app.test_client().post("/api/v1/orders", json=body, headers=buyer)
    assert response.status_code == 201
    return int(response.get_json()["id"])


@pytest.mark.commits
def test_cancel_racing_ship_exactly_one_wins(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 10, "B": 10})
    buyer = tokens(committing_app, 1)[0]
    staff = AuthActions(committing_app.test_client()).headers("boss@example.com", "staff")
    results = []
    for _ in range(5):
        order_id = placed_order(committing_app, ids, buyer)
        assert order_step(committing_app.test_client(), order_id, "pay", staff).status_code == 200

        def act(n: int, order_id: int = order_id) -> tuple[str, int]:
            action = "cancel" if n % 2 == 0 else "ship"
            response = committing_app.test_client().post(f"/api/v1/orders/{order_id}/{action}", headers=staff)
            return action, response.status_code

        outcome = dict(run_together(2, act))
        results.append(outcome)
        assert sorted(outcome.values()) == [200, 409], outcome

    assert {tuple(sorted(r.items())) for r in results} <= {(("cancel", 200), ("ship", 409)),
                                                             (("cancel", 409), ("ship", 200))}  # fmt: skip
    with committing_app.app_context(), db.engine.connect() as connection:
        cancelled = connection.scalar(sa.text("SELECT count(*) FROM orders WHERE status = 'cancelled'"))
    stock_invariant_holds(committing_app, {ids["A"]: 10, ids["B"]: 10})
    assert cancelled == sum(1 for r in results if r["cancel"] == 200)


@pytest.mark.commits
def test_a_double_cancel_restocks_once(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 10, "B": 10})
    buyer = tokens(committing_app, 1)[0]
    order_id = placed_order(committing_app, ids, buyer)

    def cancel(n: int) -> int:
        return committing_app.test_client().post(f"/api/v1/orders/{order_id}/cancel", headers=buyer).status_code

    statuses = Counter(run_together(6, cancel))

    assert statuses == {200: 1, 409: 5}
    with committing_app.app_context(), db.engine.connect() as connection:
        stocks = dict(connection.execute(sa.select(Product.id, Product.stock)).all())
    assert stocks == {ids["A"]: 10, ids["B"]: 10}
    stock_invariant_holds(committing_app, {ids["A"]: 10, ids["B"]: 10})


# --- the facts the revenue reports read, kept by every transition ---------------------------------------------

CHAIN_TRUTH = sa.text(
    f"""
    SELECT id, previous_counted_at,
           CASE WHEN {COUNTED_SQL}
                THEN lag(created_at) OVER (PARTITION BY {COUNTED_SQL}
                                           ORDER BY created_at, id)
           END AS truth,
           {COUNTED_SQL} AS counted,
           (SELECT bool_and(i.counted = ({counted_sql("o.status")}))
              FROM order_items i WHERE i.order_id = o.id)
           AND first_counted_at IS NOT DISTINCT FROM
               CASE WHEN {COUNTED_SQL} THEN min(created_at) OVER (PARTITION BY {COUNTED_SQL}) END AS facts_agree
      FROM orders o WHERE user_id = :user_id ORDER BY created_at, id
    """  # noqa: S608 - the counted statuses, our constant
)


def chain(session: Any, user_id: int) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in session.execute(CHAIN_TRUTH, {"user_id": user_id})]


@pytest.mark.parametrize(
    "steps",
    [
        [("pay", 2), ("pay", 0), ("pay", 1)],  # paid out of order: each lands in the middle of the chain
        [("pay", 0), ("pay", 1), ("pay", 2), ("cancel", 1)],  # a cancelled paid order leaves it, the next relinks
        [("pay", 1), ("cancel", 0), ("pay", 2), ("ship", 1), ("deliver", 1), ("cancel", 2)],
    ],
    ids=["out-of-order", "cancel-middle", "mixed"],
)
def test_every_transition_keeps_each_counted_order_pointing_at_the_customers_previous_and_first_one(
    client: FlaskClient, auth: AuthActions, db_session: Any, steps: list[tuple[str, int]]
) -> None:
    lamp = add_product(db_session, "LAMP", price=Decimal("10.00"), stock=50)
    ann, staff = auth.headers("ann@example.com"), auth.headers("staff@example.com", "staff")
    orders = [client.post("/api/v1/orders", json=order_body((lamp, 1)), headers=ann).get_json() for _ in range(3)]
    user_id = orders[0]["user_id"]

    for action, index in steps:
        who = staff if action in {"pay", "ship", "deliver"} else ann
        response = order_step(client, orders[index]["id"], action, who)
        assert response.status_code == 200, response.get_json()
        for order_id, previous, truth, _counted, facts_agree in chain(db_session, user_id):
            assert previous == truth, (action, index, order_id)
            assert facts_agree, (action, index, order_id)
    assert any(counted for *_, counted, _ in chain(db_session, user_id))


@pytest.mark.commits
def test_one_customer_paying_and_cancelling_several_orders_at_once_keeps_the_chain(
    committing_app: Flask, unpaid_unlimited: None
) -> None:
    ids = make_products(committing_app, {"LAMP": 100})
    (buyer,) = tokens(committing_app, 1)
    staff = staff_headers(committing_app)
    client = committing_app.test_client()
    body = {"items": [{"product_id": ids["LAMP"], "quantity": 1}], "shipping_address": ADDRESS}
    order_ids = [client.post("/api/v1/orders", json=body, headers=buyer).get_json()["id"] for _ in range(8)]
    for order_id in order_ids[:3]:
        assert order_step(client, order_id, "pay", staff).status_code == 200

    def act(index: int) -> int:
        # the first three are paid: cancel them; pay the other five; all at once
        action = "cancel" if index < 3 else "pay"
        return order_step(committing_app.test_client(), order_ids[index], action, staff).status_code

    assert run_together(len(order_ids), act) == [200] * len(order_ids)
    with committing_app.app_context():
        user_id = db.session.execute(sa.select(Order.user_id).where(Order.id == order_ids[0])).scalar_one()
        rows = chain(db.session, user_id)
        db.session.remove()
    assert [counted for *_, counted, _ in rows] == [False] * 3 + [True] * 5
    assert all(previous == truth and facts_agree for _, previous, truth, _, facts_agree in rows)
