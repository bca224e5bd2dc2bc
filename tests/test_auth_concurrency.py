"""Accounts under concurrency and with Redis gone: real commits, real threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db, passwords
from tests.conftest import AuthActions
from tests.helpers import DEAD_REDIS, run_together

pytestmark = pytest.mark.commits


def test_racing_registrations_of_one_email_make_one_account(committing_app: Flask) -> None:
    racers = 5  # the per-email registration limit (5 per hour) would refuse a sixth

    def register(n: int) -> int:
        client = committing_app.test_client()
        response = client.post(
            "/api/v1/auth/register",
            json={"email": "Race@Example.com" if n % 2 else "race@example.com", "password": "long enough", "name": "R"},
            environ_base={"REMOTE_ADDR": f"203.0.113.{n}"},
        )
        return int(response.status_code)

    statuses = run_together(racers, register)

    assert sorted(statuses) == [201] + [409] * (racers - 1)
    with committing_app.app_context(), db.engine.connect() as connection:
        count = connection.scalar(sa.text("SELECT count(*) FROM users WHERE lower(email) = 'race@example.com'"))
    assert count == 1


def test_login_and_tokens_keep_working_with_redis_down(make_app: Callable[..., Flask], db_session: Any) -> None:
    client = make_app(REDIS_URL=DEAD_REDIS).test_client()
    auth = AuthActions(client)

    assert auth.register().status_code == 201
    login = auth.login()
    assert login.status_code == 201
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {login.get_json()['token']}"})
    assert me.status_code == 200
    # limits fall back to this process's memory instead of vanishing
    statuses = [auth.login(f"guess{n}@example.com", "wrong password").status_code for n in range(11)]
    assert statuses == [401] * 10 + [429]


def test_concurrent_wrong_passwords_get_no_more_checks_than_the_limit(
    committing_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each failure is counted before the password is checked: 16 at once against a limit of 5 get 5 checks."""
    AuthActions(committing_app.test_client()).register()
    checks: list[int] = []
    real_verify = passwords.verify

    def counted_verify(password_hash: str | None, password: str) -> bool:
        checks.append(1)
        return real_verify(password_hash, password)

    monkeypatch.setattr(passwords, "verify", counted_verify)

    def guess(n: int) -> int:
        client = committing_app.test_client()
        response = client.post("/api/v1/auth/tokens", json={"email": "ann@example.com", "password": f"guess {n}"})
        return int(response.status_code)

    statuses = run_together(16, guess)

    assert sorted(statuses) == [401] * 5 + [429] * 11
    assert len(checks) == 5
