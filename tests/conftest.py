"""Test fixtures: real PostgreSQL and Redis, never stand-ins.

With DATABASE_URL / REDIS_URL unset, embedded servers are started under instance/ (shop.devservices).
The suite never touches the configured database itself: it makes a fresh `<name>_test` database next to
it, builds the schema there with the migrations, and drops it at the end. Redis keys get a per-session
prefix and are deleted afterwards, so a shared Redis is left as it was found.

Isolation: `db_session` wraps each test in an outer transaction; the app's commits become savepoint
releases (join_transaction_mode="create_savepoint") and everything is rolled back at the end.
Tests that must commit for real (concurrency, faults) use `committing_app` instead; its tables are
truncated afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flask_migrate
import psycopg2
import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_sqlalchemy.session import Session as FlaskSession
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from config import normalize_database_url
from shop import create_app
from shop.catalog.relay import stop_catalog_relay
from shop.devservices import dev_services
from shop.extensions import SESSION_OPTIONS, api, db, limiter

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def autocommit_cursor(server_url: URL) -> Iterator[Any]:
    """A cursor outside any transaction, as CREATE/DROP DATABASE require (psycopg2 wants no driver name)."""
    connection = psycopg2.connect(server_url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


COMMIT_MARK = "<COMMIT>"
# the payment provider every test app knows (tests.helpers.notify signs as it)
TEST_PROVIDER, TEST_PROVIDER_SECRET = "testpay", "whsec-test-only-secret"


@contextmanager
def statements_sent(app: Flask, *, commits: bool = False) -> Iterator[list[str]]:
    """Every statement the app's engine sends while the block runs, in order, as sent (psycopg2's own BEGIN and
    COMMIT, and the pool's pings, are not among them). `commits`: each commit of the engine's connections appears
    as COMMIT_MARK where it happened."""
    statements: list[str] = []

    def record(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def commit(connection: Any) -> None:
        statements.append(COMMIT_MARK)

    with app.app_context():
        engine = db.engine
    listeners: list[tuple[str, Callable[..., None]]] = [("before_cursor_execute", record)]
    if commits:
        listeners.append(("commit", commit))
    for name, listener in listeners:
        sa.event.listen(engine, name, listener)
    try:
        yield statements
    finally:
        for name, listener in listeners:
            sa.event.remove(engine, name, listener)


def create_fresh_database(server_url: URL, name: str) -> URL:
    """(Re)create database `name` on the server of `server_url`; return its URL."""
    with autocommit_cursor(server_url) as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url.set(database=name)


def drop_database(server_url: URL, name: str) -> None:
    with autocommit_cursor(server_url) as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def service_urls() -> Iterator[dict[str, str]]:
    with dev_services(PROJECT_ROOT / "instance") as urls:
        yield urls


@pytest.fixture(scope="session")
def server_url(service_urls: dict[str, str]) -> URL:
    """The configured database's URL: the suite makes its own databases on that server."""
    normalized = normalize_database_url(service_urls["DATABASE_URL"])
    assert normalized is not None
    return make_url(normalized)


@pytest.fixture(scope="session")
def test_database_name(server_url: URL) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{server_url.database}_{worker}_test" if worker else f"{server_url.database}_test"


@pytest.fixture(scope="session")
def database_url(server_url: URL, test_database_name: str) -> Iterator[str]:
    url = create_fresh_database(server_url, test_database_name)
    yield url.render_as_string(hide_password=False)
    drop_database(server_url, test_database_name)


@pytest.fixture(scope="session")
def redis_key_prefix(service_urls: dict[str, str]) -> Iterator[str]:
    prefix = f"shop-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(service_urls["REDIS_URL"])
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def make_app(database_url: str, service_urls: dict[str, str], redis_key_prefix: str) -> Iterator[Callable[..., Flask]]:
    """Build an app on the test database and test Redis; keyword arguments override settings."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        settings = {
            "APP_ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": service_urls["REDIS_URL"],
            "CACHE_KEY_PREFIX": redis_key_prefix,
            "PAYMENT_PROVIDER_SECRETS": {TEST_PROVIDER: [TEST_PROVIDER_SECRET]},
        }
        made_app = create_app(settings | overrides)
        made.append(made_app)
        return made_app

    yield factory
    for made_app in made:
        stop_catalog_relay(made_app)
        with made_app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app, on a database whose schema the migrations built (never create_all)."""
    the_app = make_app()
    with the_app.app_context():
        flask_migrate.upgrade()
    return the_app


class ConnectionBoundSession(FlaskSession):
    """A session that uses the connection it was bound to.

    Flask-SQLAlchemy's Session.get_bind always answers with the app's engine, ignoring a session-level
    bind; left alone, the "outer transaction" below would wrap nothing and tests would commit for real.
    """

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any) -> Any:
        if bind is not None:
            return bind
        if self.bind is not None:
            return self.bind
        return super().get_bind(mapper=mapper, clause=clause, **kwargs)


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """The test's own session, inside one outer transaction that is rolled back afterwards.

    Every app context the test causes (each request, each CLI command) gets a session of its own, as in
    production, on the same connection; each of its commits releases a savepoint of its own. No app
    context is left pushed: Flask would reuse it for requests, and they would share the test's session.
    """
    with app.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    bound = {**SESSION_OPTIONS, "bind": connection, "join_transaction_mode": "create_savepoint"}
    original_session = db.session
    db.session = db._make_scoped_session(bound | {"class_": ConnectionBoundSession})
    test_session = Session(**bound)
    try:
        yield test_session
    finally:
        test_session.close()
        db.session = original_session
        outer.rollback()
        connection.close()


# Per-app state that Flask-Limiter and flask-smorest keep on their (process-wide) extension objects.
# A production process has one app; the suite builds more (a dead Redis, other limits), and each
# init_app rebinds these to the newest app. They are put back after every test.
EXTENSION_STATE = {
    limiter: ("_storage", "_limiter", "_storage_dead", "_fallback_storage", "_fallback_limiter"),
    api: ("_app", "spec"),
}


@pytest.fixture(autouse=True)
def extensions_bound_to_the_session_app(app: Flask) -> Iterator[None]:
    saved = {
        (extension, name): getattr(extension, name, None)
        for extension, names in EXTENSION_STATE.items()
        for name in names
    }
    yield
    for (extension, name), value in saved.items():
        setattr(extension, name, value)


@pytest.fixture(autouse=True)
def fresh_redis(service_urls: dict[str, str], redis_key_prefix: str) -> None:
    """Each test starts with no cached catalog and no rate-limit counters (all under the session's prefix)."""
    client = redis.Redis.from_url(service_urls["REDIS_URL"])
    try:
        keys = list(client.scan_iter(match=f"{redis_key_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def client(app: Flask, db_session: Session) -> FlaskClient:
    return app.test_client()


class AuthActions:
    """Register, log in and build headers, the way a storefront client would."""

    password = "correct horse battery"

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register(self, email: str = "ann@example.com", name: str = "Ann", password: str | None = None) -> Any:
        return self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password or self.password, "name": name}
        )

    def login(self, email: str = "ann@example.com", password: str | None = None) -> Any:
        return self.client.post("/api/v1/auth/tokens", json={"email": email, "password": password or self.password})

    def token_for(self, email: str = "ann@example.com", role: str = "customer") -> str:
        """A token for a (new) account with `role`; staff and admin accounts are made as the CLI makes them."""
        from shop.models import Role
        from shop.services.accounts import register_user

        with self.client.application.app_context():
            register_user(email, self.password, email.split("@")[0].title(), Role(role))
        response = self.login(email)
        assert response.status_code == 201, response.get_json()
        token: str = response.get_json()["token"]
        return token

    def headers(self, email: str = "ann@example.com", role: str = "customer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(email, role)}"}


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def runner(app: Flask, db_session: Session) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def server_environ(database_url: str, service_urls: dict[str, str], redis_key_prefix: str) -> dict[str, str]:
    """The environment of an app server (gunicorn_server) on the test database, Redis and key prefix."""
    return {
        "PATH": os.environ["PATH"],
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": service_urls["REDIS_URL"],
        "CACHE_KEY_PREFIX": redis_key_prefix,
        "PAYMENT_PROVIDER_SECRETS": f"{TEST_PROVIDER}:{TEST_PROVIDER_SECRET}",
    }


def empty_every_table(app: Flask) -> None:
    """What tests that commit for real leave behind, gone: every table of the app's database emptied."""
    with app.app_context():
        db.session.remove()
        tables = ", ".join(table.name for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def committing_app(app: Flask) -> Iterator[Flask]:
    """The app with real commits, for tests that need other connections to see their writes."""
    yield app
    empty_every_table(app)


@pytest.fixture
def unpaid_unlimited(app: Flask) -> Iterator[None]:
    """No limit on what one customer holds unpaid, for tests whose customer places many orders for other reasons
    (the limit itself: tests/test_unpaid_limit.py)."""
    saved = {name: app.config[name] for name in ("UNPAID_ORDERS_PER_CUSTOMER", "UNPAID_UNITS_PER_CUSTOMER")}
    app.config.update(UNPAID_ORDERS_PER_CUSTOMER=0, UNPAID_UNITS_PER_CUSTOMER=0)
    yield
    app.config.update(saved)


@pytest.fixture
def scratch_database(server_url: URL, test_database_name: str) -> Iterator[str]:
    """An empty database of its own, for tests that build or tear down a schema."""
    name = f"{test_database_name}_scratch_{uuid.uuid4().hex[:8]}"
    url = create_fresh_database(server_url, name)
    yield url.render_as_string(hide_password=False)
    drop_database(server_url, name)
