"""Reports, the staff dashboard and the event feed read from a real streaming replica when it keeps up, and from
the primary when its replay falls behind, when it is stopped or paused, or when its connection died; writes
never go to it (shop/db/replica.py). The pair of servers: tests/replication.py."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config import normalize_database_url
from shop.db.replica import EXTENSION
from shop.extensions import db
from shop.services.unit_of_work import UnitOfWork
from tests.conftest import PROJECT_ROOT, AuthActions, empty_every_table
from tests.helpers import make_products, one_line_order, order_step
from tests.replication import Server, replicate, streaming_pair, wait_until_replayed, wait_until_streaming
from tests.test_staff_pages import sign_in

MAX_LAG = 2.0  # seconds of replay lag the test app accepts
PROBE_TIMEOUT = 0.5
RETRY = 1.0


@dataclass
class Pair:
    primary: Server
    replica: Server
    settings: dict[str, Any]


@pytest.fixture(scope="module")
def pair(make_app: Callable[..., Flask]) -> Iterator[Pair]:
    directory = PROJECT_ROOT / "instance" / f"replication-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    with streaming_pair(directory, "shop") as (primary, replica):
        settings = {
            "SQLALCHEMY_DATABASE_URI": normalize_database_url(primary.url("shop")),
            "DATABASE_REPLICA_URL": normalize_database_url(replica.url("shop")),
            "REPLICA_MAX_LAG_SECONDS": MAX_LAG,
            "REPLICA_PROBE_TIMEOUT_SECONDS": PROBE_TIMEOUT,
            "REPLICA_RETRY_SECONDS": RETRY,
        }
        schema_app = make_app(**settings)
        with schema_app.app_context():
            flask_migrate.upgrade()
            db.engine.dispose()
        replicate(primary, replica)
        yield Pair(primary, replica, settings)


@pytest.fixture
def app(pair: Pair, make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """An app on the pair (each test its own: its process's memory of the replica starts afresh)."""
    the_app = make_app(**pair.settings)
    yield the_app
    empty_every_table(the_app)
    # a test that failed with the replica paused, stopped or not replaying leaves it as the next test needs it
    pair.replica.resume()
    if pair.replica.process is None:
        pair.replica.start()
        wait_until_streaming(pair.replica)
    pair.replica.execute("SELECT pg_wal_replay_resume()")


@dataclass
class Store:
    client: FlaskClient
    staff: dict[str, str]
    customer: dict[str, str]
    product_id: int

    def paid_order(self) -> int:
        """A new order, paid (counted in the revenue), committed on the primary."""
        placed = self.client.post("/api/v1/orders", json=one_line_order(self.product_id), headers=self.customer)
        assert placed.status_code == 201, placed.get_json()
        order_id: int = placed.get_json()["id"]
        assert order_step(self.client, order_id, "pay", self.staff).status_code == 200
        return order_id

    def revenue(self) -> tuple[str, int, Any]:
        """Where today's revenue report was read from, its orders, and the response."""
        today = datetime.now(UTC).date()
        query = {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=1)).isoformat()}
        response = self.client.get("/api/v1/reports/revenue", query_string=query | {"tz": "UTC"}, headers=self.staff)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert response.headers["Read-Source"] == body["source"]
        return body["source"], body["totals"]["orders"], body


@pytest.fixture
def store(app: Flask) -> Store:
    client = app.test_client()
    auth = AuthActions(client)
    staff = auth.headers("staff@example.com", "staff")
    customer = auth.headers("ann@example.com")
    ids = make_products(app, {"R1": 1000})
    with app.app_context(), UnitOfWork() as uow:  # a price of its own, so a revenue names its orders
        uow.session.execute(sa.text("UPDATE products SET price = :price"), {"price": Decimal("10.00")})
        uow.commit()
    return Store(client, staff, customer, ids["R1"])


def test_reports_read_the_replica_and_the_primary_once_replay_falls_behind(pair: Pair, store: Store) -> None:
    store.paid_order()
    wait_until_replayed(pair.primary, pair.replica)
    source, orders, body = store.revenue()
    assert (source, orders) == ("replica", 1)
    as_of = datetime.fromisoformat(body["as_of"])
    assert abs((datetime.now(UTC) - as_of).total_seconds()) < 5  # caught up: as of now

    store.paid_order()
    wait_until_replayed(pair.primary, pair.replica)
    pair.replica.execute("SELECT pg_wal_replay_pause()")
    paused_at = time.monotonic()
    store.paid_order()  # committed on the primary, not replayed on the replica
    assert time.monotonic() - paused_at < MAX_LAG

    source, orders, body = store.revenue()
    # read from the replica, which lags by less than MAX_LAG: the third order is not there yet, and as_of says so
    assert (source, orders) == ("replica", 2)
    assert datetime.fromisoformat(body["as_of"]) < datetime.now(UTC)

    time.sleep(MAX_LAG + 0.5)
    source, orders, _ = store.revenue()
    assert (source, orders) == ("primary", 3)  # too far behind now: the primary answers, with every order

    pair.replica.execute("SELECT pg_wal_replay_resume()")
    wait_until_replayed(pair.primary, pair.replica)
    assert store.revenue()[:2] == ("replica", 3)


def test_a_stopped_replica_sends_reads_to_the_primary_until_it_returns(pair: Pair, store: Store) -> None:
    store.paid_order()
    wait_until_replayed(pair.primary, pair.replica)
    assert store.revenue()[0] == "replica"

    pair.replica.stop()
    started = time.monotonic()
    assert store.revenue()[:2] == ("primary", 1)
    assert time.monotonic() - started < 3  # a refused connection: no wait
    store.paid_order()  # the store goes on without it
    assert store.revenue()[:2] == ("primary", 2)

    pair.replica.start()
    wait_until_streaming(pair.replica)
    wait_until_replayed(pair.primary, pair.replica)
    time.sleep(RETRY)  # the process left it alone this long after it failed
    assert store.revenue()[:2] == ("replica", 2)


def test_a_paused_replica_costs_a_read_the_probe_timeout_then_is_left_alone(pair: Pair, store: Store) -> None:
    store.paid_order()
    wait_until_replayed(pair.primary, pair.replica)
    assert store.revenue()[0] == "replica"  # a pooled connection to it now sits idle

    pair.replica.pause()
    # should the app wait on the paused replica after all, it is let go, so this fails rather than hangs
    safety = threading.Timer(10, pair.replica.resume)
    safety.start()
    try:
        started = time.monotonic()
        assert store.revenue()[:2] == ("primary", 1)
        first = time.monotonic() - started
        started = time.monotonic()
        assert store.revenue()[0] == "primary"
        second = time.monotonic() - started
    finally:
        safety.cancel()
        pair.replica.resume()
    # the first read waited for the probe's deadline, then cut the connection; the next did not try the replica
    assert PROBE_TIMEOUT <= first < PROBE_TIMEOUT + 1.5
    assert second < PROBE_TIMEOUT

    time.sleep(RETRY)
    assert store.revenue()[0] == "replica"


def test_a_replica_connection_killed_while_idle_is_replaced_on_the_spot(pair: Pair, store: Store) -> None:
    store.paid_order()
    wait_until_replayed(pair.primary, pair.replica)
    assert store.revenue()[0] == "replica"

    killed = pair.replica.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'shop-replica'"
    )
    (count,) = killed[0]
    assert isinstance(count, int)
    assert count >= 1  # this test's app's idle connection (and earlier tests' apps')
    assert store.revenue()[:2] == ("replica", 1)  # not the primary: a fresh connection, at once


def test_writes_go_to_the_primary_and_report_reads_to_the_replica(app: Flask, pair: Pair, store: Store) -> None:
    with app.app_context():
        primary_engine = db.engine
    replica_engine = app.extensions[EXTENSION].engine
    sent: dict[str, list[str]] = {"primary": [], "replica": []}
    listeners = [
        (engine, lambda conn, cursor, statement, *rest, name=name: sent[name].append(statement))
        for engine, name in ((primary_engine, "primary"), (replica_engine, "replica"))
    ]
    for engine, listener in listeners:
        sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        order_id = store.paid_order()
        assert store.client.post(f"/api/v1/orders/{order_id}/ship", json={}, headers=store.staff).status_code == 200
        assert sent["replica"] == []  # placing, paying and shipping: nothing on the replica
        assert sent["primary"]

        wait_until_replayed(pair.primary, pair.replica)
        sent["primary"].clear()
        assert store.revenue()[:2] == ("replica", 1)
    finally:
        for engine, listener in listeners:
            sa.event.remove(engine, "before_cursor_execute", listener)
    assert any("JOIN revenue_summary" in statement for statement in sent["replica"])  # the report's own statement
    # the primary only checked the caller's token
    assert not any("orders" in statement for statement in sent["primary"]), sent["primary"]


def test_the_event_feed_and_the_dashboard_read_the_replica(app: Flask, pair: Pair, store: Store) -> None:
    store.paid_order()
    wait_until_replayed(pair.primary, pair.replica)

    feed = store.client.get("/api/v1/events", headers=store.staff)
    assert feed.status_code == 200
    assert feed.headers["Read-Source"] == "replica"
    assert {event["type"] for event in feed.get_json()["items"]} >= {"order.placed", "order.paid"}

    browser = app.test_client()
    assert sign_in(browser, "staff@example.com").status_code == 302
    page = browser.get("/staff/?tz=UTC")
    assert page.status_code == 200
    assert b"(from the replica)" in page.data
    today = datetime.now(UTC).date().isoformat()
    csv = browser.get(f"/staff/export/revenue.csv?tz=UTC&start={today}&end={today}")
    assert csv.status_code == 200, csv.data[:300]
    assert csv.headers["Report-Source"] == "replica"

    pair.replica.stop()
    try:
        page = browser.get("/staff/?tz=UTC")
        assert page.status_code == 200
        assert b"(from the replica)" not in page.data
        assert store.client.get("/api/v1/events", headers=store.staff).headers["Read-Source"] == "primary"
    finally:
        pair.replica.start()
        wait_until_streaming(pair.replica)


def test_slow_statements_on_the_replica_are_logged(
    pair: Pair, make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(**pair.settings, SLOW_SQL_MS=0.001)  # every statement is slow
    try:
        staff = AuthActions(app.test_client()).headers("staff@example.com", "staff")
        wait_until_replayed(pair.primary, pair.replica)
        with caplog.at_level(logging.WARNING, logger="shop.sql"):
            response = app.test_client().get(
                "/api/v1/reports/revenue", query_string={"start": "2025-01-01", "end": "2025-01-31"}, headers=staff
            )
        assert (response.status_code, response.headers["Read-Source"]) == (200, "replica")
        # the report's own statement ran on the replica only, and was logged
        logged = [getattr(record, "statement", "") for record in caplog.records if record.name == "shop.sql"]
        assert any(statement.startswith("-- revenue.sql's report") for statement in logged), logged
    finally:
        empty_every_table(app)
