"""A pooled connection whose server session died while it sat idle is replaced before a request uses it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from tests.conftest import AuthActions, statements_sent


def pooled_backend_pid(app: Flask) -> int:
    """The server process behind the one connection the app's pool holds (a pool of one, for the test)."""
    with app.app_context(), db.engine.connect() as connection:
        pid: int = connection.scalar(sa.text("SELECT pg_backend_pid()"))
    return pid


def terminate(pid: int, *, by: Flask) -> None:
    with by.app_context(), db.engine.connect() as other:
        assert other.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.mark.commits
def test_a_connection_killed_while_idle_in_the_pool_is_replaced_before_the_next_request(
    committing_app: Flask, make_app: Callable[..., Flask]
) -> None:
    headers = AuthActions(committing_app.test_client()).headers("ann@example.com")
    options = {"pool_size": 1, "max_overflow": 1, "pool_pre_ping": False}
    app = make_app(DB_PING_AFTER_IDLE_SECONDS=0.2, SQLALCHEMY_ENGINE_OPTIONS=options)
    client = app.test_client()
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    idle = pooled_backend_pid(app)

    terminate(idle, by=committing_app)  # from another app's pool: this one's only connection is the victim
    time.sleep(0.3)  # idle past the threshold: the next checkout pings, finds it dead, and connects anew

    response = client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["email"] == "ann@example.com"
    assert pooled_backend_pid(app) != idle
    with app.app_context():
        db.engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(make_app: Callable[..., Flask], db_session: Any) -> None:
    app = make_app(DB_PING_AFTER_IDLE_SECONDS=60.0)
    with app.app_context():
        engine = db.engine
        with engine.connect() as connection:
            connection.scalar(sa.text("SELECT 1 + 1"))  # into the pool, just now
        with statements_sent(app) as statements, engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT 2 + 2")) == 4
        engine.dispose()
    assert statements == ["SELECT 2 + 2"]
