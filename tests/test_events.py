"""The outbox and its feed: an event exists if and only if its change committed, and a follower never skips one."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.extensions import db
from tests.conftest import AuthActions
from tests.helpers import ADDRESS, make_products, one_line_order, order_step, run_together, tokens

pytestmark = pytest.mark.commits


def events(app: Flask) -> list[tuple[str, int, int]]:
    """(type, order id, sequence) of every event, as another connection sees them."""
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT type, resource_id, sequence FROM events ORDER BY position"))
        return [tuple(row) for row in rows]


@pytest.fixture
def shop(committing_app: Flask) -> dict[str, Any]:
    auth = AuthActions(committing_app.test_client())
    return {
        "ids": make_products(committing_app, {"LAMP": 5, "MUG": 1}),
        "ann": auth.headers("ann@example.com"),
        "staff": auth.headers("staff@example.com", "staff"),
        "feed": auth.headers("warehouse@example.com", "integration"),
        "client": committing_app.test_client(),
    }


def test_an_order_and_its_transitions_are_events_numbered_per_order(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    client: FlaskClient = shop["client"]
    placed = client.post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"], 2), headers=shop["ann"])
    order_id = placed.get_json()["id"]
    for action in ("pay", "ship", "deliver"):
        assert order_step(client, order_id, action, shop["staff"]).status_code == 200

    assert events(committing_app) == [
        ("order.placed", order_id, 1),
        ("payment.captured", order_id, 2),
        ("order.paid", order_id, 3),
        ("order.shipped", order_id, 4),
        ("order.delivered", order_id, 5),
    ]
    feed = client.get("/api/v1/events", headers=shop["feed"]).get_json()
    first, last = feed["items"][0], feed["items"][-1]
    assert first["data"] == placed.get_json()  # the document the API answered, byte for byte in meaning
    assert (first["resource"], first["sequence"]) == ({"type": "order", "id": order_id}, 1)
    assert last["data"]["status"] == "delivered"
    assert last["data"] == client.get(f"/api/v1/orders/{order_id}", headers=shop["ann"]).get_json()


def test_refusals_replays_and_failures_write_no_event(committing_app: Flask, shop: dict[str, Any]) -> None:
    client: FlaskClient = shop["client"]
    keyed = shop["ann"] | {"Idempotency-Key": "once"}
    lamp = shop["ids"]["LAMP"]  # 5 in stock
    assert client.post("/api/v1/orders", json=one_line_order(lamp), headers=keyed).status_code == 201
    assert client.post("/api/v1/orders", json=one_line_order(lamp), headers=keyed).status_code == 201
    assert client.post("/api/v1/orders", json=one_line_order(lamp, 9), headers=shop["ann"]).status_code == 409
    partial = one_line_order(lamp, 9, allow_partial=True)  # its one savepoint rolls back: all short
    assert client.post("/api/v1/orders", json=partial, headers=shop["ann"]).status_code == 409
    reused = one_line_order(lamp, 2)
    assert client.post("/api/v1/orders", json=reused, headers=keyed).status_code == 422
    order_id = events(committing_app)[0][1]
    assert client.post(f"/api/v1/orders/{order_id}/ship", json={}, headers=shop["staff"]).status_code == 409

    assert events(committing_app) == [("order.placed", order_id, 1)]


def test_concurrent_orders_write_exactly_one_event_each(committing_app: Flask, unpaid_unlimited: None) -> None:
    ids = make_products(committing_app, {"A": 100_000})
    buyers = tokens(committing_app, 8)

    def place(n: int) -> list[int]:
        client = committing_app.test_client()
        return [
            client.post("/api/v1/orders", json=one_line_order(ids["A"]), headers=buyers[n]).status_code
            for _ in range(125)
        ]

    statuses = [status for worker in run_together(8, place) for status in worker]

    assert statuses.count(201) == 1000
    placed = [event for event in events(committing_app) if event[0] == "order.placed"]
    with committing_app.app_context(), db.engine.connect() as connection:
        order_ids = set(connection.scalars(sa.text("SELECT id FROM orders")))
    assert len(placed) == 1000
    assert {order_id for _, order_id, _ in placed} == order_ids


def test_a_follower_never_skips_an_event_committed_late(committing_app: Flask, shop: dict[str, Any]) -> None:
    """A transaction that wrote an event and stays open holds back the events committed after it, then lets them
    through in transaction order: a follower with a cursor sees all of them."""
    client: FlaskClient = shop["client"]
    first = client.post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"]).get_json()[
        "id"
    ]
    page = client.get("/api/v1/events", headers=shop["feed"]).get_json()
    assert [e["resource"]["id"] for e in page["items"]] == [first]
    cursor = page["next"]

    with committing_app.app_context(), db.engine.connect() as slow:
        slow_transaction = slow.begin()
        slow.execute(
            sa.text(
                "INSERT INTO events (type, resource_type, resource_id, sequence, data)"
                " VALUES ('order.cancelled', 'order', :id, 2, '{}')"
            ),
            {"id": first},
        )  # its transaction id is now older than the orders' below
        later = [
            client.post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"]).get_json()[
                "id"
            ]
            for _ in range(2)
        ]
        held = client.get(f"/api/v1/events?after={cursor}", headers=shop["feed"]).get_json()
        assert held == {"items": [], "next": cursor}  # the later orders wait for the open transaction
        slow_transaction.commit()

    caught_up = client.get(f"/api/v1/events?after={cursor}", headers=shop["feed"]).get_json()
    assert [(e["type"], e["resource"]["id"]) for e in caught_up["items"]] == [
        ("order.cancelled", first),
        ("order.placed", later[0]),
        ("order.placed", later[1]),
    ]
    assert client.get(f"/api/v1/events?after={caught_up['next']}", headers=shop["feed"]).get_json()["items"] == []


def test_a_follower_reading_while_orders_commit_sees_each_event_exactly_once(
    committing_app: Flask, unpaid_unlimited: None
) -> None:
    ids = make_products(committing_app, {"A": 100_000})
    buyers = tokens(committing_app, 4)
    feed_headers = AuthActions(committing_app.test_client()).headers("warehouse@example.com", "integration")
    stop = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        client, cursor = committing_app.test_client(), "0.0"
        while True:
            done = stop.is_set()  # read before the page: the last page starts after every order committed
            page = client.get(f"/api/v1/events?after={cursor}&limit=7", headers=feed_headers).get_json()
            seen.extend(event["id"] for event in page["items"])
            cursor = page["next"]
            if done and not page["items"]:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    run_together(
        4,
        lambda n: [
            committing_app.test_client().post("/api/v1/orders", json=one_line_order(ids["A"]), headers=buyers[n])
            for _ in range(50)
        ],
    )
    stop.set()
    follower.join(timeout=60)

    with committing_app.app_context(), db.engine.connect() as connection:
        written = [str(i) for i in connection.scalars(sa.text("SELECT id FROM events"))]
    assert len(written) == 200
    assert sorted(seen) == sorted(written)  # every one, none twice


def test_the_type_filter_and_the_limit_page_through_the_feed(committing_app: Flask, shop: dict[str, Any]) -> None:
    client: FlaskClient = shop["client"]
    orders = [
        client.post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"]).get_json()["id"]
        for _ in range(3)
    ]
    client.post(f"/api/v1/orders/{orders[1]}/cancel", json={}, headers=shop["ann"])

    cancelled = client.get("/api/v1/events?type=order.cancelled", headers=shop["staff"]).get_json()
    assert [(e["type"], e["resource"]["id"]) for e in cancelled["items"]] == [("order.cancelled", orders[1])]
    assert (
        client.get(f"/api/v1/events?type=order.cancelled&after={cancelled['next']}", headers=shop["staff"]).get_json()[
            "items"
        ]
        == []
    )
    pages, cursor = [], "0.0"
    while True:
        page = client.get(f"/api/v1/events?limit=2&after={cursor}", headers=shop["staff"]).get_json()
        if not page["items"]:
            break
        pages.append([e["type"] for e in page["items"]])
        cursor = page["next"]
    assert pages == [["order.placed", "order.placed"], ["order.placed", "order.cancelled"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=12", "after"),
        ("after=1.2.3", "after"),
        ("after=-1.5", "after"),
        ("type=order.exploded", "type"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=yesterday", "since"),
    ],
)
def test_bad_arguments_are_a_422_naming_the_field(shop: dict[str, Any], query: str, field: str) -> None:
    response = shop["client"].get(f"/api/v1/events?{query}", headers=shop["staff"])
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in json.dumps(response.get_json()["errors"])


def test_only_staff_and_integrations_read_the_feed_and_integrations_nothing_else(shop: dict[str, Any]) -> None:
    client: FlaskClient = shop["client"]
    assert client.get("/api/v1/events").status_code == 401
    assert client.get("/api/v1/events", headers=shop["ann"]).status_code == 403
    assert client.get("/api/v1/events", headers=shop["feed"]).status_code == 200
    assert client.get("/api/v1/events", headers=shop["staff"]).status_code == 200
    # an integration account may do nothing else: not order, not read orders, not read reports
    assert (
        client.post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["feed"]).status_code == 403
    )
    assert client.get("/api/v1/orders", headers=shop["feed"]).status_code == 403
    assert client.get("/api/v1/users/me", headers=shop["feed"]).status_code == 403
    assert (
        client.get("/api/v1/reports/revenue?start=2026-01-01&end=2026-01-31", headers=shop["feed"]).status_code == 403
    )


def test_purge_keeps_a_month_at_least(committing_app: Flask, shop: dict[str, Any]) -> None:
    client: FlaskClient = shop["client"]
    for _ in range(2):
        client.post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
    with committing_app.app_context(), db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE events SET occurred_at = now() - interval '31 days' WHERE position = :oldest"),
            {"oldest": connection.scalar(sa.text("SELECT min(position) FROM events"))},
        )
    runner = committing_app.test_cli_runner()

    refused = runner.invoke(args=["events", "purge", "--older-than-days", "7"])
    purged = runner.invoke(args=["events", "purge"])

    assert refused.exit_code == 2  # fewer than 30 days is not an option
    assert purged.exit_code == 0, purged.output
    assert "Deleted 1 events older than 30 days." in purged.output
    assert len(events(committing_app)) == 1


def product_events(app: Flask) -> list[tuple[str, int, int]]:
    return [event for event in events(app) if event[0].startswith("product.")]


def test_stock_crossing_zero_and_a_new_price_are_product_events_with_the_products_document(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    client: FlaskClient = shop["client"]
    mug = shop["ids"]["MUG"]  # 1 in stock
    order = client.post("/api/v1/orders", json=one_line_order(mug), headers=shop["ann"]).get_json()
    sold_out = client.get(f"/api/v1/products/{mug}").get_json()
    client.post(f"/api/v1/orders/{order['id']}/cancel", json={}, headers=shop["ann"])
    back = client.get(f"/api/v1/products/{mug}").get_json()
    client.patch(f"/api/v1/products/{mug}", json={"name": "Big mug"}, headers=shop["staff"])  # no event
    client.patch(f"/api/v1/products/{mug}", json={"price": "4.50", "stock": 0}, headers=shop["staff"])
    repriced = client.get(f"/api/v1/products/{mug}", headers=shop["staff"]).get_json()

    assert product_events(committing_app) == [
        ("product.out_of_stock", mug, 1),
        ("product.back_in_stock", mug, 2),
        ("product.price_changed", mug, 3),
        ("product.out_of_stock", mug, 4),
    ]
    feed = client.get("/api/v1/events?type=product.out_of_stock&type=product.back_in_stock", headers=shop["feed"])
    documents = [event["data"] for event in feed.get_json()["items"]]
    assert documents == [sold_out, back, repriced]
    assert (sold_out["stock"], sold_out["in_stock"], back["stock"], repriced["price"]) == (0, False, 1, "4.50")


def test_an_order_that_takes_the_last_units_of_a_line_with_allow_partial_announces_it(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    client: FlaskClient = shop["client"]
    lamp, mug = shop["ids"]["LAMP"], shop["ids"]["MUG"]
    body = {
        "items": [{"product_id": lamp, "quantity": 9}, {"product_id": mug, "quantity": 1}],
        "shipping_address": ADDRESS,
        "allow_partial": True,
    }
    placed = client.post("/api/v1/orders", json=body, headers=shop["ann"]).get_json()

    assert [line["product_id"] for line in placed["items"]] == [mug]  # the lamps were short, and dropped
    assert product_events(committing_app) == [("product.out_of_stock", mug, 1)]
