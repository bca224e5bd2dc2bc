"""PostgreSQL failing under a request: a retry on a new connection or a 503 with Retry-After, never a 500.

Each test builds an app with an engine of its own (its connections named, so the test can kill exactly them),
and pings idle connections only after an hour, so that nothing but shop's own handling stands between a dead
pooled connection and the request.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config import normalize_database_url
from shop.devservices import PrivatePostgres
from shop.extensions import db
from shop.models import Product
from shop.repositories.placement import Unpaid
from shop.services import ordering
from tests.conftest import COMMIT_MARK, AuthActions, autocommit_cursor, statements_sent
from tests.helpers import ADDRESS, order_step

APPLICATION_NAME = "shop-fault-tests"


@pytest.fixture
def faulty_app(make_app: Callable[..., Flask], committing_app: Flask) -> Flask:
    """An app whose pooled connections are only checked by shop's own handling (committing: its rows are
    truncated afterwards by committing_app)."""
    return make_app(
        DB_PING_AFTER_IDLE_SECONDS=3600.0,
        SQLALCHEMY_ENGINE_OPTIONS=committing_app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        | {"connect_args": {"application_name": APPLICATION_NAME, "connect_timeout": 3}},
    )


def kill_idle_connections(database_url: str) -> int:
    """pg_terminate_backend on every connection of the fault app that is idle in its pool."""
    with autocommit_cursor(sa.make_url(database_url)) as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND state = 'idle'",
            (APPLICATION_NAME,),
        )
        killed: int = cursor.fetchone()[0]
    return killed


def lamp(app: Flask) -> int:
    with app.app_context():
        product = Product(sku="LAMP", name="Lamp", category="Home", price=Decimal("10.00"), stock=50)
        db.session.add(product)
        db.session.commit()
        product_id: int = product.id
        db.session.remove()
    return product_id


def test_an_authenticated_request_on_a_killed_idle_connection_is_retried(faulty_app: Flask, database_url: str) -> None:
    client = faulty_app.test_client()
    headers = AuthActions(client).headers("ann@example.com")
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200

    assert kill_idle_connections(database_url) >= 1
    response = client.get("/api/v1/users/me", headers=headers)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["email"] == "ann@example.com"


def test_an_order_on_a_killed_idle_connection_is_placed_once(faulty_app: Flask, database_url: str) -> None:
    client = faulty_app.test_client()
    product_id = lamp(faulty_app)
    headers = AuthActions(client).headers("ann@example.com")
    body = {"items": [{"product_id": product_id, "quantity": 2}], "shipping_address": ADDRESS}

    placed = []
    for attempt in range(5):
        assert kill_idle_connections(database_url) >= 1
        response = client.post("/api/v1/orders", json=body, headers=headers | {"Idempotency-Key": f"k{attempt}"})
        assert response.status_code == 201, response.get_json()
        placed.append(response.get_json()["id"])

    with faulty_app.app_context():
        stock = db.session.scalar(sa.select(Product.stock).where(Product.id == product_id))
        db.session.remove()
    assert len(set(placed)) == 5
    assert stock == 50 - 5 * 2


def test_every_route_on_a_killed_idle_connection_answers_without_a_500(faulty_app: Flask, database_url: str) -> None:
    client = faulty_app.test_client()
    product_id = lamp(faulty_app)
    auth = AuthActions(client)
    customer = auth.headers("ann@example.com")
    staff = auth.headers("sam@example.com", "staff")
    order = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS},
        headers=customer,
    ).get_json()
    calls: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", f"/api/v1/products/{product_id}", {}, None),
        ("GET", "/api/v1/products?q=lamp", {}, None),
        ("GET", "/api/v1/categories", {}, None),
        ("GET", f"/api/v1/orders/{order['id']}", customer, None),
        ("GET", "/api/v1/orders", staff, None),
        ("PATCH", f"/api/v1/products/{product_id}", staff, {"price": "11.00"}),
        ("POST", f"/api/v1/orders/{order['id']}/payments", staff, {"reference": "r-1"}),
        ("POST", f"/api/v1/orders/{order['id']}/ship", staff, None),
        ("GET", "/api/v1/reports/revenue?start=2026-01-01&end=2026-12-31", staff, None),
        ("POST", "/api/v1/auth/tokens", {}, {"email": "ann@example.com", "password": auth.password}),
        ("GET", "/readyz", {}, None),
    ]
    for method, path, headers, body in calls:
        kill_idle_connections(database_url)
        response = client.open(path, method=method, headers=headers, json=body)
        assert response.status_code < 500 or (response.status_code == 503 and "Retry-After" in response.headers), (
            method,
            path,
            response.get_json(),
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_database_that_refuses_connections_is_a_503_with_retry_after(
    make_app: Callable[..., Flask], app: Flask
) -> None:
    nowhere = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/shop"
    down = make_app(SQLALCHEMY_DATABASE_URI=nowhere, CATALOG_CACHE_ENABLED=False)
    client: FlaskClient = down.test_client()
    bearer = {"Authorization": "Bearer " + "x" * 43}
    calls = [
        ("GET", "/api/v1/users/me", bearer, None),
        ("POST", "/api/v1/orders", bearer, {"items": [{"product_id": 1, "quantity": 1}], "shipping_address": ADDRESS}),
        ("GET", "/api/v1/products", {}, None),
        ("GET", "/api/v1/products/1", {}, None),
        ("POST", "/api/v1/auth/tokens", {}, {"email": "ann@example.com", "password": "whatever it is"}),
        ("POST", "/api/v1/auth/register", {}, {"email": "ann@example.com", "password": "long enough", "name": "Ann"}),
    ]
    for method, path, headers, body in calls:
        response = client.open(path, method=method, headers=headers, json=body)
        assert response.status_code == 503, (path, response.get_data(as_text=True))
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["type"] == "/problems/service-busy"
        assert int(response.headers["Retry-After"]) >= 1

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == "unavailable"


STAMPS = {"pay": "paid_at", "ship": "shipped_at", "deliver": "delivered_at", "cancel": "cancelled_at"}


def test_a_transition_answers_from_its_own_transaction(faulty_app: Flask) -> None:
    """pay, ship, deliver and cancel read nothing after their COMMIT: a read there could fail (a dead connection,
    a restarting database) and turn a committed change into an error, and the client's retry into a 409."""
    client = faulty_app.test_client()
    product_id = lamp(faulty_app)
    auth = AuthActions(client)
    customer = auth.headers("ann@example.com")
    staff = auth.headers("sam@example.com", "staff")
    body = {"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS}
    first = client.post("/api/v1/orders", json=body, headers=customer).get_json()["id"]
    second = client.post("/api/v1/orders", json=body, headers=customer).get_json()["id"]
    with statements_sent(faulty_app, commits=True) as sent:
        for order_id, action, headers in [
            (first, "pay", staff),
            (first, "ship", staff),
            (first, "deliver", staff),
            (second, "cancel", customer),
        ]:
            sent.clear()
            response = order_step(client, order_id, action, headers)
            assert response.status_code == 200, response.get_json()
            document = response.get_json()
            assert document[STAMPS[action]] is not None
            assert document["updated_at"] >= document["created_at"]
            assert ("history" in document) == (headers is staff)
            assert sent.count(COMMIT_MARK) == 1, sent
            assert sent[-1] == COMMIT_MARK, sent[sent.index(COMMIT_MARK) :]


def test_a_customer_cannot_lock_another_customers_rows(faulty_app: Flask) -> None:
    """Ownership is checked before any lock: another customer's cancel or return is a 404 that waited on nothing."""
    client = faulty_app.test_client()
    product_id = lamp(faulty_app)
    auth = AuthActions(client)
    ann = auth.headers("ann@example.com")
    bob = auth.headers("bob@example.com")
    order = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS},
        headers=ann,
    ).get_json()["id"]
    with statements_sent(faulty_app) as sent:
        for action, body in (("cancel", {}), ("returns", {"lines": [{"product_id": product_id, "quantity": 1}]})):
            sent.clear()
            response = client.post(f"/api/v1/orders/{order}/{action}", json=body, headers=bob)
            assert response.status_code == 404
            assert not [text for text in sent if "FOR UPDATE" in text.upper() or "FOR NO KEY UPDATE" in text.upper()]


def test_a_connection_killed_after_the_last_statement_leaves_the_answer_alone(
    faulty_app: Flask, database_url: str
) -> None:
    """The request's session is ended after the answer is made; its ROLLBACK on a connection killed meanwhile
    escaped as the server's bare 500 (found by scripts/chaos.py)."""
    client = faulty_app.test_client()
    product_id = lamp(faulty_app)
    headers = AuthActions(client).headers("ann@example.com")
    order = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS},
        headers=headers,
    ).get_json()

    def kill_this_requests_connection(response: Any) -> Any:
        backend = db.session.connection().connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with autocommit_cursor(sa.make_url(database_url)) as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (backend,))
        return response

    faulty_app.after_request_funcs.setdefault(None, []).append(kill_this_requests_connection)  # after first use
    try:
        response = client.get(f"/api/v1/orders/{order['id']}", headers=headers)
        assert response.status_code == 200
        assert response.get_json()["id"] == order["id"]
    finally:
        faulty_app.after_request_funcs[None].remove(kill_this_requests_connection)
    assert client.get(f"/api/v1/orders/{order['id']}", headers=headers).status_code == 200


def test_a_database_that_is_starting_up_is_a_503_with_retry_after(make_app: Callable[..., Flask], app: Flask) -> None:
    """A real PostgreSQL held in recovery answers every connection 'the database system is not accepting
    connections' (57P03), as it does while it starts up or recovers from a crash."""
    # not under pytest's tmp_path: its parents are private to root, and PostgreSQL runs as another user here
    root = Path(tempfile.mkdtemp(prefix="shop-test-pg-"))
    server = PrivatePostgres(root)
    server.hold_in_recovery()
    server.start(wait=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.connect().close()
            except psycopg2.OperationalError as refused:
                if "not accepting connections" in str(refused) or "starting up" in str(refused):
                    break
            assert time.monotonic() < deadline, "the server never reached recovery"
            time.sleep(0.2)
        starting = make_app(
            SQLALCHEMY_DATABASE_URI=normalize_database_url(server.url("postgres")), CATALOG_CACHE_ENABLED=False
        )
        client = starting.test_client()
        for method, path, headers in [
            ("GET", "/api/v1/users/me", {"Authorization": "Bearer " + "x" * 43}),
            ("GET", "/api/v1/products", {}),
        ]:
            response = client.open(path, method=method, headers=headers)
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.get_json()["type"] == "/problems/service-busy"
            assert int(response.headers["Retry-After"]) >= 1
        assert client.get("/readyz").status_code == 503
        with starting.app_context():
            db.engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_refusal_whose_connection_died_under_it_is_still_the_refusal(
    faulty_app: Flask, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database connection dies between the order's locks and its refusal (found by `make chaos`: PostgreSQL
    going away while a customer at the unpaid limit ordered): the rollback on the dead connection must not turn the
    409 into a 500. Nothing was committed, so the refusal is the truth."""
    client = faulty_app.test_client()
    product_id = lamp(faulty_app)
    headers = AuthActions(client).headers("ann@example.com")
    body = {"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS}
    refuse = ordering._check_unpaid_limit

    def die_then_refuse(unpaid: Any) -> None:
        # this transaction's own backend, terminated from another connection: a real dead connection, mid-transaction
        with autocommit_cursor(sa.make_url(database_url)) as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND state = 'idle in transaction'",
                (APPLICATION_NAME,),
            )
        time.sleep(0.2)
        refuse(Unpaid(99, 99))  # over any limit: the refusal

    monkeypatch.setattr(ordering, "_check_unpaid_limit", die_then_refuse)
    answer = client.post("/api/v1/orders", json=body, headers=headers)

    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["type"] == "/problems/unpaid-limit"
    monkeypatch.undo()
    assert client.post("/api/v1/orders", json=body, headers=headers).status_code == 201  # and the pool recovers
