"""Login and registration are rate limited per client address and per email; 429 problems carry Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions


def test_the_eleventh_failed_login_in_a_minute_from_one_address_is_429(client: FlaskClient, auth: AuthActions) -> None:
    # different emails, so only the per-address limit (10 per minute by default) can trip
    for attempt in range(10):
        assert auth.login(f"guess{attempt}@example.com", "wrong password").status_code == 401

    response = auth.login("guess10@example.com", "wrong password")

    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == "/problems/rate-limited"
    assert body["title"] == "Too Many Requests"
    assert "10 per 1 minute" in body["detail"]
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_the_limit_follows_the_configuration(make_app: Callable[..., Flask], db_session: Any) -> None:
    auth = AuthActions(make_app(LOGIN_LIMIT_PER_ADDRESS="3 per minute").test_client())

    statuses = [auth.login(f"guess{n}@example.com", "wrong password").status_code for n in range(4)]

    assert statuses == [401, 401, 401, 429]


def test_failed_logins_for_one_email_are_limited_across_addresses(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    statuses = []
    for attempt in range(6):
        response = client.post(
            "/api/v1/auth/tokens",
            json={"email": "Ann@Example.com", "password": "wrong password"},
            environ_base={"REMOTE_ADDR": f"203.0.113.{attempt}"},
        )
        statuses.append(response.status_code)

    assert statuses == [401] * 5 + [429]
    # the right password from yet another address is still refused until the window passes
    locked = client.post(
        "/api/v1/auth/tokens",
        json={"email": "ann@example.com", "password": auth.password},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert locked.status_code == 429


def test_successful_logins_do_not_count_against_the_limit(auth: AuthActions) -> None:
    auth.register()

    statuses = {auth.login().status_code for _ in range(15)}

    assert statuses == {201}


def test_registration_is_limited_per_email(client: FlaskClient, auth: AuthActions) -> None:
    statuses = [
        client.post(
            "/api/v1/auth/register",
            json={"email": "same@example.com", "password": "short", "name": "Same"},
            environ_base={"REMOTE_ADDR": f"203.0.113.{n}"},
        ).status_code
        for n in range(6)
    ]

    assert statuses == [422] * 5 + [429]


def test_registration_is_limited_per_address(make_app: Callable[..., Flask], db_session: Any) -> None:
    auth = AuthActions(make_app(REGISTER_LIMIT_PER_ADDRESS="2 per hour").test_client())

    statuses = [auth.register(f"user{n}@example.com").status_code for n in range(3)]

    assert statuses == [201, 201, 429]
