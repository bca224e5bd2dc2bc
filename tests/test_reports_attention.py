"""What needs attention now: orders pending past half the payment window, paid and not shipped in time, products
running out, flagged payments; through the API (JSON and CSV) and as gauges on /metrics."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.models.order import counted_sql
from tests.helpers import make_products, notify, one_line_order, order_step, staff_headers, tokens

pytestmark = pytest.mark.commits
RESTAMP_FIRST = sa.text(
    f"""
    UPDATE orders o SET first_counted_at = (SELECT min(created_at) FROM orders f
                                            WHERE f.user_id = o.user_id AND {counted_sql("f.status")})
     WHERE o.user_id = (SELECT user_id FROM orders WHERE id = :id) AND {counted_sql("o.status")}
    """  # noqa: S608 - the counted statuses, our constant
)

URL = "/api/v1/reports/attention"


def backdate(app: Flask, order_id: int, *, placed_minutes_ago: float, paid_minutes_ago: float | None = None) -> None:
    """Move an order (and its lines, which carry its placement time) into the past, as time would have."""
    with app.app_context(), db.engine.begin() as connection:
        moment = {"id": order_id, "placed": placed_minutes_ago * 60, "paid": (paid_minutes_ago or 0) * 60}
        connection.execute(
            sa.text(
                "UPDATE orders SET created_at = now() - make_interval(secs => :placed),"
                " paid_at = CASE WHEN paid_at IS NULL THEN NULL"
                "                ELSE now() - make_interval(secs => :paid) END"
                " WHERE id = :id"
            ),
            moment,
        )
        connection.execute(  # the customer's counted orders carry their first one's placement
            RESTAMP_FIRST,
            moment,
        )
        connection.execute(
            sa.text("UPDATE order_items SET placed_at = now() - make_interval(secs => :placed) WHERE order_id = :id"),
            moment,
        )


@pytest.fixture
def store(committing_app: Flask) -> dict[str, Any]:
    ids = make_products(committing_app, {"PLENTY": 100, "SCARCE": 7})
    buyers = tokens(committing_app, 4)
    staff = staff_headers(committing_app)
    client = committing_app.test_client()

    def place(buyer: int, sku: str = "PLENTY", quantity: int = 1) -> dict[str, Any]:
        made = client.post("/api/v1/orders", json=one_line_order(ids[sku], quantity), headers=buyers[buyer])
        assert made.status_code == 201
        order: dict[str, Any] = made.get_json()
        return order

    overdue = place(0)  # pending 20 minutes: past half of the 30-minute window
    backdate(committing_app, overdue["id"], placed_minutes_ago=20)
    place(1)  # pending, just placed
    late = place(2, "SCARCE", 3)  # paid 50 hours ago, not shipped (SCARCE now has 4: low stock)
    assert order_step(client, late["id"], "pay", staff).status_code == 200
    backdate(committing_app, late["id"], placed_minutes_ago=50 * 60 + 10, paid_minutes_ago=50 * 60)
    on_time = place(3)
    assert order_step(client, on_time["id"], "pay", staff).status_code == 200
    assert notify(client, overdue, amount="0.01", reference="short").get_json()["notification"]["flag"]
    return {"ids": ids, "staff": staff, "buyers": buyers, "client": client, "overdue": overdue, "late": late}


def test_each_list_has_what_needs_a_person_and_nothing_else(store: dict[str, Any]) -> None:
    body = store["client"].get(URL, headers=store["staff"]).get_json()

    lists = body["lists"]
    assert {kind: group["count"] for kind, group in lists.items()} == {
        "pending_overdue": 1, "unshipped": 1, "low_stock": 1, "flagged_payments": 1,
    }  # fmt: skip
    assert [item["id"] for item in lists["pending_overdue"]["items"]] == [store["overdue"]["id"]]
    assert [item["id"] for item in lists["unshipped"]["items"]] == [store["late"]["id"]]
    assert [(item["sku"], item["stock"]) for item in lists["low_stock"]["items"]] == [("SCARCE", 4)]
    assert [(item["order_id"], item["flag"]) for item in lists["flagged_payments"]["items"]] == [
        (store["overdue"]["id"], "amount_mismatch")
    ]
    assert body["limits"] == {"pending_after_minutes": 15.0, "ship_within_hours": 48.0, "low_stock_threshold": 5}
    assert body["as_of"]


def test_the_same_counts_are_gauges_on_metrics(store: dict[str, Any]) -> None:
    text = store["client"].get("/metrics").get_data(as_text=True)

    def metric(name: str) -> float:
        return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))

    assert metric("shop_orders_pending_overdue") == 1
    assert metric("shop_orders_unshipped_overdue") == 1
    assert metric("shop_products_low_stock") == 1


def test_as_csv_one_row_an_item_with_its_kind(store: dict[str, Any]) -> None:
    answer = store["client"].get(URL, query_string={"format": "csv"}, headers=store["staff"])

    lines = answer.get_data(as_text=True).splitlines()
    assert lines[0].startswith("kind,id,user_id,order_id,sku")
    assert sorted(line.split(",")[0] for line in lines[1:]) == [
        "flagged_payments", "low_stock", "pending_overdue", "unshipped",
    ]  # fmt: skip
    assert answer.headers["Report-As-Of"]


def test_shipping_the_late_order_and_paying_the_overdue_one_empty_their_lists(store: dict[str, Any]) -> None:
    client, staff = store["client"], store["staff"]
    assert order_step(client, store["late"]["id"], "ship", staff).status_code == 200
    assert order_step(client, store["overdue"]["id"], "pay", staff).status_code == 200

    lists = client.get(URL, headers=staff).get_json()["lists"]

    assert (lists["pending_overdue"]["count"], lists["unshipped"]["count"]) == (0, 0)


def test_it_is_for_staff_and_takes_no_range(store: dict[str, Any]) -> None:
    client = store["client"]
    assert client.get(URL, headers=store["buyers"][0]).status_code == 403
    assert client.get(URL).status_code == 401
    assert client.get(URL, query_string={"start": "2025-01-01"}, headers=store["staff"]).status_code == 422
