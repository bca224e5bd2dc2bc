"""One customer cannot hold more than UNPAID_ORDERS_PER_CUSTOMER orders or UNPAID_UNITS_PER_CUSTOMER units unpaid at
once, even placing them all at the same moment; paying, cancelling and expiring give the room back."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.services.order_expiry import expire_overdue
from tests.helpers import make_products, notify, one_line_order, order_step, run_together, staff_headers, tokens

pytestmark = pytest.mark.commits


def counts(app: Flask) -> dict[int, tuple[int, int, int, int]]:
    """Per customer: the counters on their row, and their pending orders and units counted from the orders."""
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT u.id, u.unpaid_orders, u.unpaid_units,"
                " (SELECT count(*) FROM orders WHERE user_id = u.id AND status = 'pending'),"
                " (SELECT coalesce(sum(units), 0) FROM orders WHERE user_id = u.id AND status = 'pending')"
                " FROM users u WHERE u.role = 'customer'"
            )
        ).all()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def consistent(app: Flask) -> None:
    for user_id, (orders, units, pending, pending_units) in counts(app).items():
        assert (orders, units) == (pending, pending_units), user_id


def test_the_sixth_unpaid_order_is_refused_and_writes_nothing(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 100})
    (buyer,) = tokens(committing_app, 1)
    client = committing_app.test_client()
    made = [client.post("/api/v1/orders", json=one_line_order(ids["A"]), headers=buyer) for _ in range(5)]
    assert [m.status_code for m in made] == [201] * 5

    refused = client.post("/api/v1/orders", json=one_line_order(ids["A"]), headers=buyer | {"Idempotency-Key": "6th"})

    assert (refused.status_code, refused.get_json()["type"]) == (409, "/problems/unpaid-limit")
    assert refused.get_json()["limit"] == 5
    consistent(committing_app)
    # paying one makes room; the refused key was not kept, so the same key now places the order
    assert notify(client, made[0].get_json()).get_json()["notification"]["outcome"] == "applied"
    again = client.post("/api/v1/orders", json=one_line_order(ids["A"]), headers=buyer | {"Idempotency-Key": "6th"})
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    consistent(committing_app)


def test_too_many_units_unpaid_are_refused(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 1000})
    (buyer,) = tokens(committing_app, 1)
    client = committing_app.test_client()

    big = client.post("/api/v1/orders", json=one_line_order(ids["A"], 150), headers=buyer)
    over = client.post("/api/v1/orders", json=one_line_order(ids["A"], 51), headers=buyer)  # 201 of 200
    fits = client.post("/api/v1/orders", json=one_line_order(ids["A"], 50), headers=buyer)

    assert [a.status_code for a in (big, over, fits)] == [201, 409, 201]
    assert over.get_json()["limit_units"] == 200
    consistent(committing_app)


def test_twenty_orders_of_one_customer_at_once_place_exactly_five(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 1000})
    (buyer,) = tokens(committing_app, 1)

    def place(n: int) -> int:
        client = committing_app.test_client()
        return client.post("/api/v1/orders", json=one_line_order(ids["A"], 2), headers=buyer).status_code

    assert Counter(run_together(20, place)) == {201: 5, 409: 15}
    consistent(committing_app)
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": ids["A"]}) == 990


def test_paying_cancelling_expiring_refusals_and_dropped_lines_keep_the_counts(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 100, "B": 1})
    buyers = tokens(committing_app, 2)
    staff = staff_headers(committing_app)
    client = committing_app.test_client()
    orders = [client.post("/api/v1/orders", json=one_line_order(ids["A"], 2), headers=buyers[0]).get_json()
              for _ in range(4)]  # fmt: skip
    partial = {"items": [{"product_id": ids["A"], "quantity": 1}, {"product_id": ids["B"], "quantity": 5}],
               "shipping_address": one_line_order(ids["A"])["shipping_address"], "allow_partial": True}  # fmt: skip
    assert client.post("/api/v1/orders", json=partial, headers=buyers[1]).get_json()["dropped_lines"]
    short = client.post("/api/v1/orders", json=one_line_order(ids["B"], 5), headers=buyers[1])
    assert short.status_code == 409
    consistent(committing_app)

    assert order_step(client, orders[0]["id"], "pay", staff).status_code == 200
    assert order_step(client, orders[1]["id"], "cancel", buyers[0]).status_code == 200
    assert notify(client, orders[2]).status_code == 200
    with committing_app.app_context():
        assert expire_overdue(0) >= 1

    consistent(committing_app)
    assert all(orders == units == 0 for orders, units, _, _ in counts(committing_app).values())


def test_no_limit_when_set_to_zero(committing_app: Flask, unpaid_unlimited: None) -> None:
    ids = make_products(committing_app, {"A": 100})
    (buyer,) = tokens(committing_app, 1)
    client = committing_app.test_client()

    made = [client.post("/api/v1/orders", json=one_line_order(ids["A"], 10), headers=buyer) for _ in range(7)]

    assert [m.status_code for m in made] == [201] * 7  # past the default of 5 orders: 0 means no limit
    consistent(committing_app)
    ((orders, units, _, _),) = counts(committing_app).values()
    assert (orders, units) == (7, 70)
