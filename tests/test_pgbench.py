"""scripts/pgbench/place_order.sql is the placement's own transaction: up to date with its statements, the same
statements the service sends, in the same order, and it runs (it writes whole orders and takes their stock)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import make_url

from shop.extensions import db
from tests.conftest import statements_sent
from tests.helpers import ADDRESS, make_products, tokens

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import pgbench_placement  # noqa: E402

pytestmark = pytest.mark.commits


def test_the_checked_in_script_is_the_generated_one() -> None:
    assert pgbench_placement.TARGET.read_text(encoding="utf-8") == pgbench_placement.render(), (
        "run .venv/bin/python scripts/pgbench_placement.py"
    )


def test_the_script_runs_the_statements_the_service_sends_in_its_order(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 5, "B": 5, "C": 5})
    headers = tokens(committing_app, 1)[0] | {"Idempotency-Key": "compare-1"}
    body = {"items": [{"product_id": i, "quantity": 1} for i in ids.values()], "shipping_address": ADDRESS}
    client = committing_app.test_client()

    with statements_sent(committing_app) as messages:
        assert client.post("/api/v1/orders", json=body, headers=headers).status_code == 201

    sent = [name for message in messages for name in re.findall(r"EXECUTE (\w+)\(", message)]
    assert sent[1:] == pgbench_placement.statement_names()  # after the token lookup, the order's statements


def pgbench_binary() -> str:
    """The machine's pgbench, or the embedded PostgreSQL's (found without importing pgserver, which starts nothing
    but warns)."""
    spec = importlib.util.find_spec("pgserver")
    embedded = Path(spec.origin).parent / "pginstall" / "bin" / "pgbench" if spec and spec.origin else None
    return shutil.which("pgbench") or str(embedded)


def test_pgbench_places_whole_orders_with_it(committing_app: Flask, database_url: str) -> None:
    ids = make_products(committing_app, {"A": 50, "B": 50, "C": 50})
    tokens(committing_app, 2)  # a customer for each pgbench client
    with committing_app.app_context():
        user_id = db.session.scalar(sa.text("SELECT min(id) FROM users"))
    first = min(ids.values())
    assert sorted(ids.values()) == [first, first + 1, first + 2]
    with committing_app.app_context():
        changes_before = db.session.scalar(sa.text("SELECT count(*) FROM catalog_changes"))
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    finished = subprocess.run(
        [pgbench_binary(), "-n", "-M", "prepared", "-c", "2", "-t", "5", "-D", f"uid0={user_id}",
         "-D", f"first={first}", "-D", "span=1", "-f", str(pgbench_placement.TARGET), url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr
    with committing_app.app_context(), db.engine.connect() as connection:
        stocks = connection.execute(
            sa.text("SELECT stock FROM products WHERE id = ANY(:ids)"), {"ids": list(ids.values())}
        )
        assert sorted(stocks.scalars()) == [40, 40, 40]
        counts = connection.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items),"
                " (SELECT count(*) FROM idempotency_records WHERE response_status = 201),"
                " (SELECT count(*) FROM catalog_changes)"
            )
        ).one()
        assert tuple(counts) == (10, 30, 10, changes_before + 10)
