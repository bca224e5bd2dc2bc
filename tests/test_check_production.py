"""scripts/check_production.py: every problem named, exit 1; a ready environment, exit 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from tests.conftest import PROJECT_ROOT, create_fresh_database, drop_database

SCRIPT = PROJECT_ROOT / "scripts" / "check_production.py"
GOOD_SECRET = "s" * 64


def check(**environment: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "SECRET_KEY"))}
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=base | environment, capture_output=True, text=True, timeout=60, check=False
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def production_database(server_url: URL) -> Iterator[str]:
    """A database with a production-like name (no "test" in it), dropped afterwards."""
    name = f"shop_checkprod_{uuid.uuid4().hex[:8]}"
    yield create_fresh_database(server_url, name).render_as_string(hide_password=False)
    drop_database(server_url, name)


def test_every_problem_is_named_and_the_exit_status_is_1() -> None:
    result = check(
        SECRET_KEY="short", DATABASE_URL="sqlite:///shop.db", DEBUG="true",
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
    )  # fmt: skip

    assert result.returncode == 1
    for expected in (
        "SECRET_KEY is 5 characters long",
        "must be a PostgreSQL URL",
        "DEBUG is on",
        "Redis at REDIS_URL",
    ):
        assert expected in result.stderr, expected


def test_an_unmigrated_database_is_a_problem(production_database: str, service_urls: dict[str, str]) -> None:
    result = check(SECRET_KEY=GOOD_SECRET, DATABASE_URL=production_database, REDIS_URL=service_urls["REDIS_URL"])

    assert result.returncode == 1
    assert "no migrations applied" in result.stderr


def test_a_migrated_database_and_a_live_redis_are_ready(production_database: str, service_urls: dict[str, str]) -> None:
    environment = {
        "SECRET_KEY": GOOD_SECRET,
        "DATABASE_URL": production_database,
        "REDIS_URL": service_urls["REDIS_URL"],
    }
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shop", "db", "upgrade"],
        env=os.environ | environment, cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=120,
    )  # fmt: skip

    result = check(**environment)

    assert result.returncode == 0, result.stderr
    assert "Ready for production" in result.stdout


def test_the_test_database_is_refused_by_name(
    server_url: URL, service_urls: dict[str, str], test_database_name: str
) -> None:
    test_database = server_url.set(database=test_database_name).render_as_string(hide_password=False)

    result = check(SECRET_KEY=GOOD_SECRET, DATABASE_URL=test_database, REDIS_URL=service_urls["REDIS_URL"])

    assert result.returncode == 1
    assert "looks like a test database" in result.stderr
