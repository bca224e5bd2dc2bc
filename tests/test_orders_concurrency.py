"""Orders under real concurrency: threads, real commits, and the invariants checked in the database after."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.devservices import gunicorn_server
from shop.extensions import db
from shop.repositories.placement import LOCK_PRODUCTS
from tests.conftest import PROJECT_ROOT
from tests.helpers import ADDRESS, make_products, run_together, stock_invariant_holds, tokens

pytestmark = pytest.mark.commits


def test_fifty_buyers_for_the_last_ten_units(committing_app: Flask) -> None:
    product_id = make_products(committing_app, {"LAST": 10})["LAST"]
    buyers = tokens(committing_app, 50)
    body = {"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS}

    def buy(n: int) -> int:
        return committing_app.test_client().post("/api/v1/orders", json=body, headers=buyers[n]).status_code

    statuses = Counter(run_together(50, buy))

    assert statuses == {201: 10, 409: 40}
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}) == 0
        assert connection.scalar(sa.text("SELECT count(*) FROM orders")) == 10
    stock_invariant_holds(committing_app, {product_id: 10})


def test_orders_holding_the_same_products_in_opposite_order_all_finish(
    committing_app: Flask, unpaid_unlimited: None
) -> None:
    ids = make_products(committing_app, {"A": 1000, "B": 1000, "C": 1000})
    buyers = tokens(committing_app, 2)
    forward = [{"product_id": ids[sku], "quantity": 1} for sku in ("A", "B", "C")]
    orders = [forward, forward[::-1]]

    def buy(n: int) -> list[int]:
        client = committing_app.test_client()
        body = {"items": orders[n % 2], "shipping_address": ADDRESS}
        return [client.post("/api/v1/orders", json=body, headers=buyers[n % 2]).status_code for _ in range(10)]

    statuses = Counter(status for batch in run_together(8, buy) for status in batch)

    assert statuses == {201: 80}, "no deadlock (40P01) or busy answer may reach a client"
    stock_invariant_holds(committing_app, {ids["A"]: 1000, ids["B"]: 1000, ids["C"]: 1000})


def test_twenty_racing_requests_with_one_key_make_one_order(committing_app: Flask) -> None:
    product_id = make_products(committing_app, {"KEYED": 100})["KEYED"]
    buyer = tokens(committing_app, 1)[0] | {"Idempotency-Key": "one-order-please"}
    body = {"items": [{"product_id": product_id, "quantity": 2}], "shipping_address": ADDRESS}

    def buy(n: int) -> tuple[int, bytes, str | None]:
        response = committing_app.test_client().post("/api/v1/orders", json=body, headers=buyer)
        return response.status_code, response.data, response.headers.get("Idempotent-Replayed")

    answers = run_together(20, buy)

    assert {status for status, _, _ in answers} == {201}
    assert len({data for _, data, _ in answers}) == 1, "every racer gets the same answer"
    assert sorted(replayed or "" for _, _, replayed in answers) == [""] + ["true"] * 19
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM orders")) == 1
    stock_invariant_holds(committing_app, {product_id: 100})


def test_a_connection_killed_mid_order_leaves_nothing_half_written_and_the_retry_succeeds(
    committing_app: Flask, make_app: Callable[..., Flask]
) -> None:
    ids = make_products(committing_app, {"HELD": 5, "FREE": 5})
    buyer = tokens(committing_app, 1)[0]
    # a longer lock_timeout than the default: the order must still be waiting when its backend is killed
    app = make_app(TX_LOCK_TIMEOUT_MS=15000)
    body = {"items": [{"product_id": ids["FREE"], "quantity": 1}, {"product_id": ids["HELD"], "quantity": 2}],
            "shipping_address": ADDRESS}  # fmt: skip
    result: dict[str, Any] = {}

    with app.app_context(), db.engine.connect() as blocker:
        blocker.execute(sa.text("BEGIN"))
        blocker.execute(sa.text("SELECT id FROM products WHERE id = :id FOR UPDATE"), {"id": ids["HELD"]})
        order = threading.Thread(
            target=lambda: result.update(response=app.test_client().post("/api/v1/orders", json=body, headers=buyer))
        )
        order.start()
        victim = None
        # polled from a connection of its own: inside a transaction, pg_stat_activity is one frozen snapshot
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            blocker_pid = blocker.scalar(sa.text("SELECT pg_backend_pid()"))
            for _ in range(200):
                # the order's lock statement, which pg_stat_activity shows as the EXECUTE of its prepared name
                victim = watcher.scalar(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE :lock_statement AND pid <> :blocker AND datname = current_database()"
                    ),
                    {"blocker": blocker_pid, "lock_statement": f"%{LOCK_PRODUCTS.name}%"},
                )
                if victim:
                    break
                threading.Event().wait(0.025)
            assert victim, f"the order never waited for the held row: {result}"
            assert watcher.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        blocker.execute(sa.text("COMMIT"))
    order.join(timeout=60)

    response = result["response"]
    assert response.status_code == 201, response.get_json()
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM orders")) == 1
        assert connection.scalar(sa.text("SELECT count(*) FROM order_items")) == 2
    stock_invariant_holds(committing_app, {ids["HELD"]: 5, ids["FREE"]: 5})
    # and the service goes on answering with a fresh connection
    again = app.test_client().post("/api/v1/orders", json=body, headers=buyer)
    assert again.status_code == 201
    with app.app_context():
        db.engine.dispose()


def test_fifty_buyers_in_five_processes_through_gunicorn(committing_app: Flask, server_environ: dict[str, str]) -> None:
    product_id = make_products(committing_app, {"LAST": 10})["LAST"]
    tokens_by_buyer = [headers["Authorization"].removeprefix("Bearer ") for headers in tokens(committing_app, 50)]
    body = json.dumps({"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS})
    environ = server_environ | {"WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "4"}

    with gunicorn_server(environ) as base_url:
        start = f"{time.time() + 2.0:.3f}"
        buyers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.buyer_process", base_url, start, body, *tokens_by_buyer[n::5]],
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(5)
        ]
        outputs = [buyer.communicate(timeout=120)[0] for buyer in buyers]

    statuses = Counter(status for output in outputs for status in json.loads(output))
    assert statuses == {201: 10, 409: 40}
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}) == 0
        assert connection.scalar(sa.text("SELECT count(*) FROM orders")) == 10
    stock_invariant_holds(committing_app, {product_id: 10})


def test_a_lock_held_too_long_is_a_503_with_retry_after_and_nothing_written(
    committing_app: Flask, make_app: Callable[..., Flask]
) -> None:
    ids = make_products(committing_app, {"HELD": 5})
    buyer = tokens(committing_app, 1)[0]
    app = make_app(TX_LOCK_TIMEOUT_MS=200)
    body = {"items": [{"product_id": ids["HELD"], "quantity": 1}], "shipping_address": ADDRESS}

    with app.app_context(), db.engine.connect() as blocker:
        blocker.execute(sa.text("SELECT id FROM products WHERE id = :id FOR UPDATE"), {"id": ids["HELD"]})
        started = time.monotonic()
        response = app.test_client().post("/api/v1/orders", json=body, headers=buyer)
        waited = time.monotonic() - started
        blocker.rollback()

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "/problems/service-busy"
    assert int(response.headers["Retry-After"]) >= 1
    assert waited < 5, "a bounded wait, not a hung worker"
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM orders")) == 0
    stock_invariant_holds(committing_app, {ids["HELD"]: 5})
    with app.app_context():
        db.engine.dispose()
