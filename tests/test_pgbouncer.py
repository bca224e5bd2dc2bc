"""The app behind a real pgbouncer in session mode with DB_EXTERNAL_POOL: it holds no connections of its own, so
a pooler with two server connections carries many concurrent customers, with the prepared statements of order
placement working on whichever server connection a request gets (shop/local_pgbouncer.py starts pgbouncer).

Without pgbouncer installed (Debian's `pgbouncer` package) the module is skipped, and `make test` says so."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import make_url

from config import load_config, normalize_database_url
from shop.extensions import db
from shop.local_pgbouncer import LocalPgbouncer, local_pgbouncer, pgbouncer_binary
from tests.conftest import PROJECT_ROOT, AuthActions, empty_every_table
from tests.helpers import make_products, one_line_order, order_step

if pgbouncer_binary() is None:
    pytest.skip(
        "the pgbouncer tests need Debian's pgbouncer (sudo apt-get install pgbouncer); not installed here, so they "
        "did not run",
        allow_module_level=True,
    )

SERVER_CONNECTIONS = 2
CUSTOMERS = 8
ORDERS_EACH = 6


@pytest.fixture
def bouncer(app: Flask, database_url: str) -> Iterator[LocalPgbouncer]:
    """pgbouncer in front of the suite's (migrated) test database."""
    directory = PROJECT_ROOT / "instance" / f"pgbouncer-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    with local_pgbouncer(directory, database_url, SERVER_CONNECTIONS) as running:
        yield running
    empty_every_table(app)


@pytest.fixture
def pooled_app(bouncer: LocalPgbouncer, database_url: str, make_app: Callable[..., Flask]) -> Flask:
    """The app on the test database through pgbouncer, configured as docker-compose.prod.yml configures it."""
    database = make_url(database_url).database
    environ = {"DATABASE_URL": bouncer.url(str(database)), "REDIS_URL": "redis://127.0.0.1:6379/0"}
    settings = load_config(environ | {"DB_EXTERNAL_POOL": "true", "DB_CONNECT_TIMEOUT": "2"})
    return make_app(
        SQLALCHEMY_DATABASE_URI=normalize_database_url(bouncer.url(str(database))),
        SQLALCHEMY_ENGINE_OPTIONS=settings["SQLALCHEMY_ENGINE_OPTIONS"],
        UNPAID_ORDERS_PER_CUSTOMER=0,  # the customers below place more unpaid orders than a store would allow
        UNPAID_UNITS_PER_CUSTOMER=0,
    )


def pool(bouncer: LocalPgbouncer, database_url: str) -> dict[str, int]:
    database = make_url(database_url).database
    return next(row for row in bouncer.admin("SHOW POOLS") if row["database"] == database)


def test_many_customers_order_through_two_server_connections(
    pooled_app: Flask, bouncer: LocalPgbouncer, database_url: str
) -> None:
    product_id = make_products(pooled_app, {"P1": 10_000})["P1"]
    tokens = [AuthActions(pooled_app.test_client()).headers(f"c{n}@example.com") for n in range(CUSTOMERS)]
    most_servers, waited = 0, False
    sampling = threading.Event()

    def sample() -> None:
        nonlocal most_servers, waited
        while not sampling.is_set():
            row = pool(bouncer, database_url)
            most_servers = max(most_servers, row["sv_active"] + row["sv_idle"] + row["sv_used"])
            waited = waited or row["cl_waiting"] > 0
            time.sleep(0.005)

    def customer(headers: dict[str, str]) -> list[int]:
        client = pooled_app.test_client()
        statuses = []
        for quantity in range(1, ORDERS_EACH + 1):
            response = client.post("/api/v1/orders", json=one_line_order(product_id, quantity), headers=headers)
            statuses.append(response.status_code)
        return statuses

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(CUSTOMERS) as customers:
            statuses = [status for result in customers.map(customer, tokens) for status in result]
    finally:
        sampling.set()
        sampler.join()

    assert statuses == [201] * CUSTOMERS * ORDERS_EACH
    assert most_servers <= SERVER_CONNECTIONS  # pgbouncer never opened more, however many customers
    assert waited  # and customers did queue for them: more wanted a connection than it had
    with pooled_app.app_context():
        units, orders = db.session.execute(sa.text("SELECT coalesce(sum(units), 0), count(*) FROM orders")).one()
        stock = db.session.execute(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}).scalar()
    assert orders == CUSTOMERS * ORDERS_EACH
    assert units == CUSTOMERS * sum(range(1, ORDERS_EACH + 1))
    assert stock == 10_000 - units  # every unit sold left the stock once
    # the app keeps nothing open: once the requests are done, no client of the app is left at pgbouncer
    assert pool(bouncer, database_url)["cl_active"] == 0
    # and what it prepared outlives its connections: the next client of a server connection finds the statements
    # there (pgbouncer's reset query keeps them) instead of planning them again
    with psycopg2.connect(bouncer.url(str(make_url(database_url).database))) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'shop_%'")
            assert {"shop_lock_products", "shop_bound_waits"} <= {name for (name,) in cursor.fetchall()}
        connection.rollback()
    connection.close()


def test_staff_pay_and_read_reports_through_the_pooler(
    pooled_app: Flask, bouncer: LocalPgbouncer, database_url: str
) -> None:
    product_id = make_products(pooled_app, {"P1": 10})["P1"]
    client = pooled_app.test_client()
    auth = AuthActions(client)
    staff, customer = auth.headers("staff@example.com", "staff"), auth.headers()
    placed = client.post("/api/v1/orders", json=one_line_order(product_id, 2), headers=customer)
    assert placed.status_code == 201, placed.get_json()
    assert order_step(client, placed.get_json()["id"], "pay", staff).status_code == 200

    today = time.strftime("%Y-%m-%d", time.gmtime())
    report = client.get("/api/v1/reports/revenue", query_string={"start": today, "end": today}, headers=staff)
    assert report.status_code == 200, report.get_json()
    assert report.get_json()["totals"]["orders"] == 1
    assert pool(bouncer, database_url)["cl_active"] == 0


def test_a_paused_pooler_costs_a_request_the_connect_timeout_and_a_restarted_one_nothing(
    pooled_app: Flask, bouncer: LocalPgbouncer
) -> None:
    product_id = make_products(pooled_app, {"P1": 10})["P1"]
    client = pooled_app.test_client()
    headers = AuthActions(client).headers()
    bouncer.pause()
    try:
        started = time.monotonic()
        paused = client.post("/api/v1/orders", json=one_line_order(product_id), headers=headers)
        waited = time.monotonic() - started
    finally:
        bouncer.resume()
    assert paused.status_code == 503, paused.get_json()
    assert paused.content_type == "application/problem+json"
    assert waited < 10  # DB_CONNECT_TIMEOUT (2 s) a connection attempt, not a hung worker

    bouncer.stop()
    bouncer.start()  # a pooler restart: the app had no connection to lose
    again = client.post("/api/v1/orders", json=one_line_order(product_id), headers=headers)
    assert again.status_code == 201, again.get_json()
    with pooled_app.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 1


def test_the_deployed_pgbouncer_ini_keeps_prepared_statements_and_resets_the_rest(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/pgbouncer/pgbouncer.ini as docker-compose.prod.yml runs it (SCRAM for clients), pointed at the test
    server instead of `db`, on a port of its own: a server connection's next client finds what the last one
    prepared, and none of its settings."""
    directory = PROJECT_ROOT / "instance" / f"pgbouncer-deployed-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    bouncer = LocalPgbouncer(directory, database_url, SERVER_CONNECTIONS)
    server = make_url(database_url)
    deployed = (PROJECT_ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini").read_text()
    host = str(server.query.get("host") or server.host)
    adapted = (
        deployed.replace("host=db-replica port=5432 dbname=shop", f"host={host} port={server.port or 5432}")
        .replace("host=db port=5432 dbname=shop", f"host={host} port={server.port or 5432} dbname={server.database}")
        .replace("listen_port = 6432", f"listen_port = {bouncer.port}")
        .replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
        .replace("/run/pgbouncer", str(directory))
    )
    assert adapted.count(str(directory)) == 2  # the userlist and the pid file
    assert f"listen_port = {bouncer.port}" in adapted
    (directory / "pgbouncer.ini").write_text(adapted)
    (directory / "userlist.txt").write_text(f'"{bouncer.user}" "deploy-test-password"\n')  # as entrypoint.sh writes
    monkeypatch.setenv("PGPASSWORD", "deploy-test-password")
    try:
        bouncer.start()

        def session(*statements: str) -> list[tuple[object, ...]]:
            connection = psycopg2.connect(host="127.0.0.1", port=bouncer.port, user=bouncer.user, dbname="shop")
            connection.autocommit = True
            try:
                with connection.cursor() as cursor:
                    for statement in statements:
                        cursor.execute(statement)
                    return cursor.fetchall() if cursor.description else []
            finally:
                connection.close()

        session("PREPARE shop_deploy_probe AS SELECT 1", "SET statement_timeout = 1234")
        assert session("SELECT name FROM pg_prepared_statements") == [("shop_deploy_probe",)]
        assert session("SHOW statement_timeout") == [("0",)]  # RESET ALL: no setting leaks to the next client
        with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=bouncer.port, user=bouncer.user, dbname="shop", password="wrong")
    finally:
        bouncer.stop()
