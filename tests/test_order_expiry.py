"""Unpaid orders expire: cancelled as `expired` by shop, their units back to stock, exactly once; a payment racing
the expiry has one winner."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.services.order_expiry import expire_overdue
from tests.conftest import AuthActions
from tests.helpers import (
    make_products,
    notify,
    one_line_order,
    order_step,
    run_together,
    stock_invariant_holds,
    tokens,
)

pytestmark = pytest.mark.commits


@pytest.fixture
def shop(committing_app: Flask) -> dict[str, Any]:
    auth = AuthActions(committing_app.test_client())
    return {
        "ids": make_products(committing_app, {"LAMP": 100}),
        "ann": auth.headers("ann@example.com"),
        "staff": auth.headers("staff@example.com", "staff"),
        "client": committing_app.test_client(),
    }


def place(shop: dict[str, Any], quantity: int = 1) -> dict[str, Any]:
    made = shop["client"].post(
        "/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"], quantity), headers=shop["ann"]
    )
    assert made.status_code == 201
    order: dict[str, Any] = made.get_json()
    return order


def expire(app: Flask, window_minutes: float) -> int:
    with app.app_context():
        return expire_overdue(window_minutes)


def stock(app: Flask, product_id: int) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}))


def test_an_unpaid_order_past_its_window_expires_once_and_its_units_come_back(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    order = place(shop, quantity=3)
    assert stock(committing_app, shop["ids"]["LAMP"]) == 97

    first, again = expire(committing_app, 0), expire(committing_app, 0)

    assert (first, again) == (1, 0)
    assert stock(committing_app, shop["ids"]["LAMP"]) == 100
    path = f"/api/v1/orders/{order['id']}"
    shown = shop["client"].get(path, headers=shop["staff"]).get_json()
    assert shown["status"] == "cancelled"
    assert {key: shown["history"][-1][key] for key in ("from", "to", "by", "note")} == {
        "from": "pending", "to": "cancelled", "by": None, "note": "expired",
    }  # fmt: skip
    events = shop["client"].get("/api/v1/events", headers=shop["staff"]).get_json()["items"]
    assert [(e["type"], e["sequence"]) for e in events if e["resource"]["type"] == "order"] == [
        ("order.placed", 1),
        ("order.expired", 2),
    ]
    assert events[-1]["data"]["status"] == "cancelled"
    late = order_step(shop["client"], order["id"], "pay", shop["staff"])
    assert (late.status_code, late.get_json()["current_status"]) == (409, "cancelled")


def test_orders_within_their_window_and_paid_ones_stay(committing_app: Flask, shop: dict[str, Any]) -> None:
    fresh = place(shop)
    paid = place(shop)
    assert notify(shop["client"], paid).get_json()["notification"]["outcome"] == "applied"

    assert expire(committing_app, 30) == 0  # the pending one is younger than 30 minutes
    assert expire(committing_app, 0) == 1  # past a window of none, only the pending one
    statuses = {
        o["id"]: o["status"] for o in shop["client"].get("/api/v1/orders", headers=shop["ann"]).get_json()["items"]
    }
    assert statuses == {fresh["id"]: "cancelled", paid["id"]: "paid"}


def test_sweepers_and_captures_racing_leave_each_order_paid_or_expired_never_both(committing_app: Flask) -> None:
    """Two sweepers and the provider's captures, all at once, over the same unpaid orders, several times: each order
    ends paid with its units sold, or expired with them back and the late capture kept in the ledger and flagged;
    the events of whichever won; stock adds up."""
    ids = make_products(committing_app, {"A": 10_000})
    buyers = tokens(committing_app, 8)
    client = committing_app.test_client()
    for _ in range(3):
        orders = [
            client.post("/api/v1/orders", json=one_line_order(ids["A"], 2), headers=buyers[n % 8]).get_json()
            for n in range(30)
        ]
        payments: dict[int, str] = {}

        def work(
            index: int,
            orders: list[dict[str, Any]] = orders,
            payments: dict[int, str] = payments,
            lock: threading.Lock = threading.Lock(),  # noqa: B008 - one per round, made with the round
        ) -> int:
            if index < 2:
                return expire(committing_app, 0)
            payer = committing_app.test_client()
            for n, order in enumerate(orders):
                if n % 2 == index - 2:
                    answer = notify(payer, order)
                    assert answer.status_code == 200, answer.get_json()
                    with lock:
                        payments[order["id"]] = answer.get_json()["notification"]["outcome"]
            return 0

        expired = sum(run_together(4, work))

        with committing_app.app_context(), db.engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT o.id, o.status, o.cancel_reason,"
                    " array(SELECT e.type FROM events e WHERE e.resource_type = 'order' AND e.resource_id = o.id"
                    "       AND e.sequence > 1 ORDER BY e.sequence) AS later,"
                    " (SELECT count(*) FROM ledger_entries l WHERE l.order_id = o.id AND l.kind = 'capture') AS taken"
                    " FROM orders o WHERE o.id = ANY(:ids)"
                ),
                {"ids": [order["id"] for order in orders]},
            ).all()
        outcomes = {row.id: (row.status, row.cancel_reason, list(row.later), row.taken) for row in rows}
        assert set(payments.values()) <= {"applied", "flagged"}
        for order_id, outcome in outcomes.items():
            if payments[order_id] == "applied":
                assert outcome == ("paid", None, ["payment.captured", "order.paid"], 1), order_id
            else:  # the capture came after the expiry: kept in the ledger (and flagged), the order stays expired
                assert outcome == ("cancelled", "expired", ["order.expired"], 1), order_id
        assert expired == sum(1 for status, *_ in outcomes.values() if status == "cancelled")
    stock_invariant_holds(committing_app, {ids["A"]: 10_000})


def test_flask_orders_expire_once(committing_app: Flask, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    place(shop)
    runner = committing_app.test_cli_runner()

    kept = runner.invoke(args=["orders", "expire", "--once"])
    monkeypatch.setitem(committing_app.config, "ORDER_PAYMENT_WINDOW_MINUTES", 0)
    expired = runner.invoke(args=["orders", "expire", "--once"])

    assert (kept.exit_code, kept.output.strip()) == (0, "Expired 0 unpaid orders.")
    assert (expired.exit_code, expired.output.strip()) == (0, "Expired 1 unpaid orders.")
