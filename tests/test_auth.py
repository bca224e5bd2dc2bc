"""Accounts: registration, tokens, logout, /users/me, and the failures of each."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.models import ApiToken, User
from tests.conftest import AuthActions

PROBLEM = "application/problem+json"


def users_in_db(session: Any) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in session.execute(sa.select(User.email, User.name, User.role).order_by(User.id))]


def test_register_login_me_logout_then_the_token_is_refused(client: FlaskClient, auth: AuthActions) -> None:
    registered = auth.register("Ann@Example.com", "Ann Smith")
    assert registered.status_code == 201
    user = registered.get_json()
    assert set(user) == {"id", "email", "name", "role", "created_at"}
    assert user["email"] == "Ann@Example.com"
    assert user["name"] == "Ann Smith"
    assert user["role"] == "customer"
    assert user["created_at"].endswith("+00:00")

    # emails compare case-insensitively
    login = auth.login("ann@EXAMPLE.com")
    assert login.status_code == 201
    issued = login.get_json()
    assert issued["user"] == user
    assert len(issued["token"]) >= 43  # 32 random bytes, URL-safe base64
    headers = {"Authorization": f"Bearer {issued['token']}"}

    me = client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 200
    assert me.get_json() == user

    logout = client.delete("/api/v1/auth/tokens/current", headers=headers)
    assert logout.status_code == 204
    assert logout.data == b""

    after = client.get("/api/v1/users/me", headers=headers)
    assert after.status_code == 401
    assert after.mimetype == PROBLEM
    assert after.get_json()["detail"] == "The token is invalid, expired or revoked."
    assert client.delete("/api/v1/auth/tokens/current", headers=headers).status_code == 401


def test_logout_revokes_only_that_token(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    first = {"Authorization": f"Bearer {auth.login().get_json()['token']}"}
    second = {"Authorization": f"Bearer {auth.login().get_json()['token']}"}

    client.delete("/api/v1/auth/tokens/current", headers=first)

    assert client.get("/api/v1/users/me", headers=first).status_code == 401
    assert client.get("/api/v1/users/me", headers=second).status_code == 200


def test_tokens_are_stored_only_as_sha256_digests(client: FlaskClient, auth: AuthActions, db_session: Any) -> None:
    auth.register()
    token = auth.login().get_json()["token"]

    stored = db_session.scalars(sa.select(ApiToken.token_digest)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in stored


def test_token_expiry_defaults_to_seven_days(auth: AuthActions) -> None:
    auth.register()
    issued = auth.login().get_json()

    from datetime import datetime

    expires_at = datetime.fromisoformat(issued["expires_at"])
    remaining = expires_at.timestamp() - time.time()
    assert 7 * 86400 - 60 < remaining <= 7 * 86400


def test_an_expired_token_is_refused(make_app: Callable[..., Flask], db_session: Any) -> None:
    client = make_app(TOKEN_TTL_SECONDS=0.5).test_client()
    auth = AuthActions(client)
    auth.register()
    headers = {"Authorization": f"Bearer {auth.login().get_json()['token']}"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200

    time.sleep(0.6)

    response = client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop", error="invalid_token"'


def test_a_deactivated_users_token_stops_working(client: FlaskClient, auth: AuthActions, db_session: Any) -> None:
    headers = auth.headers()
    db_session.execute(sa.update(User).values(is_active=False))

    assert client.get("/api/v1/users/me", headers=headers).status_code == 401


# --- registration failures --------------------------------------------------------------------------


def test_registering_a_taken_email_in_any_case_is_a_409(auth: AuthActions, db_session: Any) -> None:
    auth.register("ann@example.com")

    response = auth.register("ANN@example.COM", "Other Ann")

    assert response.status_code == 409
    assert response.mimetype == PROBLEM
    assert response.get_json() == {
        "type": "/problems/email-taken",
        "title": "Email already registered",
        "status": 409,
        "detail": "An account with the email ANN@example.COM already exists.",
    }
    assert users_in_db(db_session) == [("ann@example.com", "Ann", "customer")]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "ann@example.com", "password": "short77", "name": "Ann"}, "password", "Length must be between 8"),
        ({"email": "ann@example.com", "password": "x" * 129, "name": "Ann"}, "password", "Length must be between 8"),
        ({"email": "not-an-email", "password": "long enough", "name": "Ann"}, "email", "Not a valid email address."),
        ({"email": "ann@example.com", "password": "long enough", "name": "   "}, "name", "Must not be blank."),
        ({"email": "ann@example.com", "password": "long enough"}, "name", "Missing data for required field."),
        ({"email": "ann@example.com", "password": 12345678, "name": "Ann"}, "password", "Not a valid string."),
        (
            {"email": "ann@example.com", "password": "long enough", "name": "Ann", "nickname": "A"},
            "nickname",
            "Unknown field.",
        ),
    ],
)
def test_invalid_registrations_are_422_and_write_nothing(
    client: FlaskClient, db_session: Any, body: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/api/v1/auth/register", json=body)

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    errors = response.get_json()["errors"]
    assert field in errors
    assert errors[field][0].startswith(message)
    assert users_in_db(db_session) == []


def test_a_role_in_the_registration_body_never_makes_an_admin(client: FlaskClient, db_session: Any) -> None:
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "eve@example.com", "password": "long enough", "name": "Eve", "role": "admin"},
    )

    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "role": ["Roles are assigned by staff; registration always makes a customer account."]
    }
    assert users_in_db(db_session) == []


def test_registration_without_a_json_body_is_refused(client: FlaskClient, db_session: Any) -> None:
    assert client.post("/api/v1/auth/register", data="email=a@b.c", content_type="text/plain").status_code == 415
    assert client.post("/api/v1/auth/register", data="{", content_type="application/json").status_code == 400
    assert users_in_db(db_session) == []


# --- login failures ---------------------------------------------------------------------------------


def test_wrong_password_and_unknown_email_get_the_same_401(auth: AuthActions, db_session: Any) -> None:
    auth.register()

    wrong_password = auth.login("ann@example.com", "not the password")
    unknown_email = auth.login("nobody@example.com", "not the password")

    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.mimetype == PROBLEM
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop"'
    assert wrong_password.get_json() == unknown_email.get_json()
    assert wrong_password.get_json() == {
        "type": "/problems/invalid-credentials",
        "title": "Invalid credentials",
        "status": 401,
        "detail": "The email or password is incorrect.",
    }
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_a_deactivated_account_cannot_log_in(auth: AuthActions, db_session: Any) -> None:
    auth.register()
    db_session.execute(sa.update(User).values(is_active=False))

    response = auth.login()

    assert response.status_code == 401
    assert response.get_json()["detail"] == "The email or password is incorrect."


@pytest.mark.parametrize(
    "body",
    [{}, {"email": "ann@example.com"}, {"email": "ann@example.com", "password": ""}, {"email": [], "password": "x"}],
)
def test_malformed_login_bodies_are_422(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/auth/tokens", json=body)

    assert response.status_code == 422
    assert response.mimetype == PROBLEM


# --- passwords --------------------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_and_never_returned(
    client: FlaskClient, auth: AuthActions, db_session: Any
) -> None:
    responses = [auth.register(), auth.login()]
    token = responses[1].get_json()["token"]
    responses.append(client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}))

    stored_hash = db_session.scalar(sa.select(User.password_hash))
    assert stored_hash.startswith("$argon2id$")
    for response in responses:
        assert auth.password.encode() not in response.data
        assert b"argon2" not in response.data
        assert b"password" not in response.data


def test_a_hash_with_old_parameters_is_replaced_at_the_next_login(
    make_app: Callable[..., Flask], db_session: Any
) -> None:
    AuthActions(make_app().test_client()).register()
    old_hash = db_session.scalar(sa.select(User.password_hash))
    assert "m=1024,t=1,p=1" in old_hash

    stronger = make_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=2048)
    assert AuthActions(stronger.test_client()).login().status_code == 201

    new_hash = db_session.scalar(sa.select(User.password_hash))
    assert new_hash.startswith("$argon2id$")
    assert "m=2048,t=2,p=1" in new_hash
    # and the password still works under the new parameters
    assert AuthActions(stronger.test_client()).login().status_code == 201


# --- bearer token handling --------------------------------------------------------------------------


def test_no_token_is_a_401_with_a_bearer_challenge(client: FlaskClient) -> None:
    response = client.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop"'
    assert response.get_json()["type"] == "/problems/unauthenticated"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic YW5uOnNlY3JldA==",
        "Token abc",
        "bearer not-a-real-token",
        "Bearer " + "x" * 10_000,
        "Bearer \u00e9\u00e8\u00ea",
        "Bearer a b c",
        "",
    ],
)
def test_malformed_or_unknown_authorization_headers_are_401_never_500(client: FlaskClient, header: str) -> None:
    response = client.get("/api/v1/users/me", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="shop"')


def test_auth_responses_are_never_cached(client: FlaskClient, auth: AuthActions) -> None:
    responses = [auth.register(), auth.login(), auth.login("ann@example.com", "wrong password")]
    token = responses[1].get_json()["token"]
    responses.append(client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}))

    for response in responses:
        assert response.headers["Cache-Control"] == "no-store"
