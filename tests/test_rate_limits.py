"""Login and registration are rate limited per client address and per email; 429 problems carry Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
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


def login_from(client: FlaskClient, address: str, email: str, password: str) -> int:
    response = client.post(
        "/api/v1/auth/tokens", json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )
    if response.status_code == 429:
        assert response.get_json()["type"] == "/problems/rate-limited"
        assert int(response.headers["Retry-After"]) >= 1
    return int(response.status_code)


def test_failed_logins_for_one_email_from_one_address_are_limited_there_only(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    statuses = [login_from(client, "203.0.113.1", "Ann@Example.com", "wrong password") for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # from that address even the right password waits for the window; from any other it works
    assert login_from(client, "203.0.113.1", "ann@example.com", auth.password) == 429
    assert login_from(client, "198.51.100.7", "ann@example.com", auth.password) == 201


def test_a_stranger_cannot_lock_a_customer_out(make_app: Callable[..., Flask], db_session: Any) -> None:
    client = make_app(LOGIN_LIMIT_PER_EMAIL_ANYWHERE="20 per hour").test_client()
    auth = AuthActions(client)
    auth.register()
    # an attacker spreads wrong passwords for ann over many addresses, five each, past the account-wide limit
    statuses = [
        login_from(client, f"203.0.113.{address}", "ann@example.com", f"guess {n}")
        for address in range(6)
        for n in range(5)
    ]
    # past the account-wide limit, an address that has no failure for ann gets one guess, and then it has one
    assert statuses[:20] == [401] * 20
    assert statuses[20:] == [401, 429, 429, 429, 429] * 2
    # an address that has already failed for ann is refused even with one guess left there ...
    assert login_from(client, "203.0.113.0", "ann@example.com", "one more guess") == 429
    # ... and so is a new address after its one guess
    assert login_from(client, "203.0.113.99", "ann@example.com", "a guess") == 401
    assert login_from(client, "203.0.113.99", "ann@example.com", "another") == 429
    # and ann, at home, signs in
    assert login_from(client, "198.51.100.7", "ann@example.com", auth.password) == 201


def test_successful_logins_are_limited_per_account_and_address(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    statuses = [login_from(client, "203.0.113.1", "ann@example.com", auth.password) for _ in range(11)]
    assert statuses == [201] * 10 + [429]
    assert login_from(client, "203.0.113.2", "ann@example.com", auth.password) == 201


def test_every_token_request_from_one_address_is_limited(make_app: Callable[..., Flask], db_session: Any) -> None:
    client = make_app(TOKEN_REQUESTS_PER_ADDRESS="4 per minute").test_client()
    auth = AuthActions(client)
    for n in range(3):
        auth.register(f"user{n}@example.com")
    statuses = [login_from(client, "203.0.113.1", f"user{n % 3}@example.com", auth.password) for n in range(5)]
    assert statuses == [201] * 4 + [429]


def test_a_user_keeps_at_most_the_newest_tokens(make_app: Callable[..., Flask], db_session: Any) -> None:
    client = make_app(MAX_TOKENS_PER_USER=3, TOKEN_REQUESTS_PER_ACCOUNT="100 per minute").test_client()
    auth = AuthActions(client)
    auth.register()
    tokens = [auth.login().get_json()["token"] for _ in range(5)]

    alive = [client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {t}"}).status_code for t in tokens]

    assert alive == [401, 401, 200, 200, 200]
    count = db_session.scalar(sa.text("SELECT count(*) FROM api_tokens"))
    assert count == 3


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
