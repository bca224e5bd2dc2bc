"""The catalog is never staler than the last commit for more than a few seconds after Redis answers again,
whatever happened at commit time; and a paused Redis costs a process one timeout, not one per request.

Each test runs its own redis-server (so it can pause or kill it) and real commits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.catalog.relay import FRESH_AGAIN_WITHIN_SECONDS, relay_due_changes, stop_catalog_relay
from shop.extensions import db, redis_client
from shop.models import CatalogChange, Product
from tests.conftest import PROJECT_ROOT, AuthActions
from tests.helpers import ADDRESS, private_redis

SOCKET_TIMEOUT = 0.25


@contextmanager
def paused(process: subprocess.Popen[bytes]) -> Iterator[None]:
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


@pytest.fixture
def servers(make_app: Callable[..., Flask], committing_app: Flask) -> Iterator[tuple[list[Flask], Any]]:
    """Two app servers on one private Redis, with the relay on at its default pace, as in production."""
    with private_redis() as (url, process):
        apps = [make_app(REDIS_URL=url, CATALOG_RELAY_SECONDS=1.0, REDIS_SOCKET_TIMEOUT=SOCKET_TIMEOUT) for _ in "ab"]
        try:
            yield apps, process
        finally:
            for app in apps:
                stop_catalog_relay(app)


def add_lamp(app: Flask, price: str = "10.00") -> int:
    with app.app_context():
        product = Product(sku="LAMP", name="Lamp", category="Home", price=Decimal(price), stock=100)
        db.session.add(product)
        db.session.commit()
        product_id: int = product.id
        db.session.remove()
    return product_id


def prices(clients: list[FlaskClient], product_id: int) -> list[str]:
    return [client.get(f"/api/v1/products/{product_id}").get_json()["price"] for client in clients]


def wait_until_all(clients: list[FlaskClient], product_id: int, price: str) -> float:
    """Seconds until every server serves `price` (and keeps serving it); fails after twice the promised bound."""
    started = time.monotonic()
    while prices(clients, product_id) != [price] * len(clients):
        assert time.monotonic() - started < 2 * FRESH_AGAIN_WITHIN_SECONDS, prices(clients, product_id)
        time.sleep(0.1)
    took = time.monotonic() - started
    for _ in range(5):
        assert prices(clients, product_id) == [price] * len(clients)
    return took


def a_lamp_served_by(apps: list[Flask]) -> tuple[list[FlaskClient], int, dict[str, str]]:
    """A lamp at 10.00, read twice through every server (so Redis and each near cache hold it); a staff login."""
    clients = [app.test_client() for app in apps]
    product_id = add_lamp(apps[0])
    staff = AuthActions(clients[0]).headers("sam@example.com", "staff")
    assert prices(clients, product_id) == ["10.00", "10.00"]
    assert prices(clients, product_id) == ["10.00", "10.00"]
    return clients, product_id, staff


def test_a_price_change_acknowledged_while_redis_is_paused_is_served_once_it_answers(
    servers: tuple[list[Flask], Any],
) -> None:
    apps, redis_process = servers
    clients, product_id, staff = a_lamp_served_by(apps)

    with paused(redis_process):
        # storefront traffic goes on: the servers find Redis not answering (and their breakers open) ...
        time.sleep(2.5)  # past the near caches' liveness window
        assert prices(clients, product_id) == ["10.00", "10.00"]
        # ... so the writer's tombstone is not even sent (had it been sent, a paused Redis would run it on waking)
        changed = clients[0].patch(f"/api/v1/products/{product_id}", json={"price": "12.00"}, headers=staff)
        assert changed.status_code == 200
        assert prices(clients, product_id) == ["12.00", "12.00"]  # read from PostgreSQL meanwhile
        time.sleep(3)

    took = wait_until_all(clients, product_id, "12.00")
    assert took <= FRESH_AGAIN_WITHIN_SECONDS


def test_a_process_killed_between_its_commit_and_its_invalidation_leaves_nothing_stale(
    servers: tuple[list[Flask], Any], database_url: str, redis_key_prefix: str
) -> None:
    apps, _ = servers
    clients, product_id, staff = a_lamp_served_by(apps)
    redis_url = apps[0].config["REDIS_URL"]

    # a writer of its own, SIGKILLed by the first thing to run after its COMMIT (ahead of the invalidation)
    writer = textwrap.dedent(
        f"""
        import os, signal, sys
        import sqlalchemy as sa
        from sqlalchemy.orm import Session
        sa.event.listen(Session, "after_commit", lambda session: os.kill(os.getpid(), signal.SIGKILL), insert=True)
        from shop import create_app
        app = create_app({{"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": {database_url!r},
                           "REDIS_URL": {redis_url!r}, "CACHE_KEY_PREFIX": {redis_key_prefix!r}}})
        app.test_client().patch("/api/v1/products/{product_id}", json={{"price": "13.00"}},
                                headers={{"Authorization": {staff["Authorization"]!r}}})
        sys.exit(3)  # not reached: killed after the commit
        """
    )
    finished = subprocess.run([sys.executable, "-c", writer], cwd=PROJECT_ROOT, check=False, timeout=60)
    assert finished.returncode == -signal.SIGKILL

    with apps[0].app_context():
        assert db.session.scalar(sa.select(Product.price).where(Product.id == product_id)) == Decimal("13.00")
        db.session.remove()
    took = wait_until_all(clients, product_id, "13.00")
    assert took <= FRESH_AGAIN_WITHIN_SECONDS


def test_every_catalog_write_records_its_change_in_its_own_transaction(
    make_app: Callable[..., Flask], committing_app: Flask
) -> None:
    """Staff edits (ORM) and orders (prepared statements, COMMIT in their last message) both leave a row; the
    relay tells Redis and deletes them."""
    app = make_app()
    client = app.test_client()
    product_id = add_lamp(app)
    auth = AuthActions(client)
    staff = auth.headers("sam@example.com", "staff")
    customer = auth.headers("ann@example.com")

    with app.app_context():
        db.session.execute(sa.delete(CatalogChange))
        db.session.commit()
    client.patch(f"/api/v1/products/{product_id}", json={"price": "11.00"}, headers=staff)
    order = {"items": [{"product_id": product_id, "quantity": 100}], "shipping_address": ADDRESS}
    assert client.post("/api/v1/orders", json=order, headers=customer).status_code == 201  # the last 100: sold out

    with app.app_context():
        rows = db.session.execute(
            sa.select(CatalogChange.product_ids, CatalogChange.versions, CatalogChange.listings).order_by(
                CatalogChange.id
            )
        ).all()
        db.session.remove()
        assert [(ids, listings) for ids, _, listings in rows] == [([product_id], True), ([product_id], True)]
        assert rows[1][1][0] == rows[0][1][0] + 1  # the order's version is the edit's plus one
        assert relay_due_changes(min_age_seconds=0) == 2
        assert relay_due_changes(min_age_seconds=0) == 0


def test_a_paused_redis_costs_a_process_one_timeout_not_one_per_request(
    make_app: Callable[..., Flask], committing_app: Flask
) -> None:
    with private_redis() as (url, process):
        app = make_app(
            REDIS_URL=url, REDIS_SOCKET_TIMEOUT=SOCKET_TIMEOUT, REDIS_BREAKER_SECONDS=30.0,
            UNPAID_ORDERS_PER_CUSTOMER=0,  # one customer places twenty orders here
        )  # fmt: skip
        client = app.test_client()
        product_id = add_lamp(app)
        customer = AuthActions(client).headers("ann@example.com")
        order = {"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS}
        assert client.get(f"/api/v1/products/{product_id}").status_code == 200

        with paused(process):
            started = time.monotonic()
            for index in range(20):
                response = client.get(f"/api/v1/products/{product_id}")
                assert response.status_code == 200
                assert response.get_json()["stock"] == 100 - index
                assert client.get("/api/v1/products").status_code == 200
                assert client.post("/api/v1/orders", json=order, headers=customer).status_code == 201
            took = time.monotonic() - started
            with app.app_context():
                assert redis_client.breaker.is_open

        # 60 requests that each asked Redis at least once would have waited 60 socket timeouts (15 s) or more
        # (measured with the breaker off: 39 s); with it, one timeout and the requests' own time (about 1 s here)
        assert took < 12 * SOCKET_TIMEOUT, took
