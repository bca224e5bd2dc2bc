"""Deployment: the app's least-privilege database role, workers sized from the container's CPU limit, memory
that adds up, and nothing left behind in /tmp."""

from __future__ import annotations

import configparser
import importlib.util
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
import yaml  # type: ignore[import-untyped]
from flask import Flask
from psycopg2 import sql
from sqlalchemy.engine import URL

from shop.devservices import gunicorn_server
from shop.extensions import db
from shop.local_pgbouncer import SERVER_RESET_QUERY
from shop.models import Role
from shop.services.accounts import register_user
from shop.sizing import available_cpus
from tests.conftest import PROJECT_ROOT, AuthActions, autocommit_cursor
from tests.helpers import ADDRESS, order_step

# pgserver's own psql (the same on a machine with no PostgreSQL client): found, not imported (importing it warns)
PSQL = Path(str(importlib.util.find_spec("pgserver").origin)).parent / "pginstall" / "bin" / "psql"  # type: ignore[union-attr]
SCHEMA_CHANGES = (
    "CREATE TABLE intruder (id int)",
    "DROP TABLE orders",
    "TRUNCATE orders",
    "ALTER TABLE users ADD x int",
)
APP_ROLE_SQL = PROJECT_ROOT / "deploy" / "postgres" / "app-role.sql"


@pytest.fixture
def owned_database(server_url: URL, test_database_name: str) -> Iterator[tuple[URL, URL]]:
    """A database owned by a role of its own, with the app role made by deploy/postgres/app-role.sql before any
    migration (as the postgres image's init script does): (the owner's URL, the app role's URL)."""
    suffix = uuid.uuid4().hex[:8]
    owner, app_role, name = f"shop_owner_{suffix}", f"shop_app_{suffix}", f"{test_database_name}_roles_{suffix}"
    with autocommit_cursor(server_url) as cursor:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'owner-password'").format(sql.Identifier(owner)))
        cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
    superuser = server_url.set(database=name, drivername="postgresql")
    subprocess.run(
        [
            str(PSQL), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"owner={owner}", "-v", f"app_role={app_role}",
            "-v", "app_password=app-password", "-f", str(APP_ROLE_SQL),
            superuser.render_as_string(hide_password=False),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    as_owner = server_url.set(database=name, username=owner, password="owner-password")
    as_app = server_url.set(database=name, username=app_role, password="app-password")
    try:
        yield as_owner, as_app
    finally:
        with autocommit_cursor(server_url) as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for role in (app_role, owner):
                cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_app_serves_as_a_role_that_cannot_change_the_schema(
    make_app: Callable[..., Flask], owned_database: tuple[URL, URL]
) -> None:
    as_owner, as_app = owned_database
    migrating = make_app(SQLALCHEMY_DATABASE_URI=as_owner.render_as_string(hide_password=False))
    with migrating.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    app = make_app(SQLALCHEMY_DATABASE_URI=as_app.render_as_string(hide_password=False))
    client = app.test_client()
    auth = AuthActions(client)
    with app.app_context():
        register_user("sam@example.com", auth.password, "Sam", Role.STAFF)
        db.session.remove()
    staff = {"Authorization": f"Bearer {auth.login('sam@example.com').get_json()['token']}"}
    customer = auth.headers("ann@example.com")

    product = client.post(
        "/api/v1/products",
        json={"sku": "LAMP", "name": "Lamp", "category": "Home", "price": "10.00", "stock": 5},
        headers=staff,
    )
    assert product.status_code == 201, product.get_json()
    product_id = product.get_json()["id"]
    assert client.patch(f"/api/v1/products/{product_id}", json={"price": "12.00"}, headers=staff).status_code == 200
    order = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product_id, "quantity": 2}], "shipping_address": ADDRESS},
        headers=customer | {"Idempotency-Key": "role-1"},
    )
    assert order.status_code == 201, order.get_json()
    order_id = order.get_json()["id"]
    for action in ("pay", "ship", "deliver"):
        assert order_step(client, order_id, action, staff).status_code == 200
    report = client.get("/api/v1/reports/revenue?start=2020-01-01&end=2024-12-31", headers=staff)
    assert report.status_code == 200
    assert client.delete("/api/v1/auth/tokens/current", headers=customer).status_code == 204

    with app.app_context(), db.engine.connect() as connection:
        for ddl in SCHEMA_CHANGES:
            with pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner"):
                connection.execute(sa.text(ddl))
            connection.rollback()
        db.engine.dispose()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "100000 100000\n"}, 1),  # cgroup v2, 1 CPU
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "max 100000\n"}, None),  # no limit: the CPUs the process may run on
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no limit
        ({}, None),  # no cgroup files at all
    ],
)
def test_workers_are_sized_from_the_containers_cpu_limit(
    tmp_path: Path, files: dict[str, str], expected: int | None
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    cpus = available_cpus(tmp_path)
    assert cpus == (expected if expected is not None else available_cpus(tmp_path / "nothing-here"))
    assert cpus >= 1


def test_the_compose_file_adds_up() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.prod.yml").read_text())
    services = compose["services"]
    app = services["app"]
    app_url = app["environment"]["DATABASE_URL"]
    assert app_url.startswith("postgresql://shop_app:")
    assert services["migrate"]["environment"]["DATABASE_URL"].startswith("postgresql://shop:")
    assert any("app-role" in volume for volume in services["db"]["volumes"])
    # the streaming replica: made from the primary by its replication role, read by the app as the same role
    assert any("20-replication.sh" in volume for volume in services["db"]["volumes"])
    assert "replica-entrypoint.sh" in services["db-replica"]["entrypoint"][0]
    environment = compose["x-app-environment"]
    assert environment["DATABASE_REPLICA_URL"].startswith("postgresql://shop_app:")
    # the app reaches both through pgbouncer (session mode), holding connections only while a request runs
    assert "@pgbouncer:6432/shop" in app_url
    assert environment["DB_EXTERNAL_POOL"] == "true"
    assert "@pgbouncer:6432/shop_replica" in environment["DATABASE_REPLICA_URL"]
    pooler = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";",))
    pooler.read(PROJECT_ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini")
    assert pooler["databases"]["shop"] == "host=db port=5432 dbname=shop"
    assert pooler["databases"]["shop_replica"] == "host=db-replica port=5432 dbname=shop"
    assert pooler["pgbouncer"]["pool_mode"] == "session"  # the prepared statements need it
    assert pooler["pgbouncer"]["server_reset_query"] == SERVER_RESET_QUERY  # what tests/test_pgbouncer.py runs
    assert services["pgbouncer"]["build"] == "./deploy/pgbouncer"
    assert os.access(PROJECT_ROOT / "deploy" / "pgbouncer" / "entrypoint.sh", os.X_OK)
    for worker in ("app", "deliver", "expire"):
        assert "pgbouncer" in services[worker]["depends_on"]
    for script in ("20-replication.sh", "replica-entrypoint.sh"):
        assert os.access(PROJECT_ROOT / "deploy" / "postgres" / script, os.X_OK)
    limits = app["deploy"]["resources"]["limits"]
    memory_mb = int(limits["memory"].removesuffix("M"))
    workers = int(app["environment"]["WEB_CONCURRENCY"])
    checks_at_once = int(app["environment"]["ARGON2_MAX_CONCURRENT"])
    master_mb, worker_mb, argon2_mb = 95, 90, 64  # measured RSS with the app loaded; one Argon2 check
    assert workers <= int(float(limits["cpus"])) + 1
    assert master_mb + workers * (worker_mb + checks_at_once * argon2_mb) <= memory_mb


def test_no_more_password_checks_run_at_once_than_configured(committing_app: Flask) -> None:
    AuthActions(committing_app.test_client()).register()
    hasher = committing_app.extensions["password_hasher"]
    running, most = [0], [0]
    lock = threading.Lock()

    class Watched:
        """The app's hasher, counting the checks running at one moment."""

        def __getattr__(self, name: str) -> Any:
            return getattr(hasher, name)

        def verify(self, *args: Any) -> Any:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                time.sleep(0.05)  # long enough for the others to arrive
                return hasher.verify(*args)
            finally:
                with lock:
                    running[0] -= 1

    committing_app.extensions["password_hasher"] = Watched()
    try:

        def login(n: int) -> None:
            client = committing_app.test_client()
            client.environ_base["REMOTE_ADDR"] = f"198.18.0.{n}"
            assert AuthActions(client).login().status_code == 201

        threads = [threading.Thread(target=login, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        committing_app.extensions["password_hasher"] = hasher
    assert most[0] == committing_app.config["ARGON2_MAX_CONCURRENT"] == 1


def test_gunicorn_leaves_no_metrics_directory_behind(server_environ: dict[str, str], tmp_path: Path) -> None:
    with gunicorn_server(server_environ | {"TMPDIR": str(tmp_path), "WEB_CONCURRENCY": "1"}) as url:
        assert url
        assert [path.name.startswith("shop-metrics-") for path in tmp_path.iterdir()] == [True]
    assert list(tmp_path.iterdir()) == []
