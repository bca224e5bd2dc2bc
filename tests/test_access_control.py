"""Roles are enforced by one decorator: 401 without a live token, 403 below the route's role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_smorest import Blueprint

from shop.api.policy import authenticated, current_user
from shop.models import Role
from tests.conftest import AuthActions

staff_only = Blueprint("staff_probe", __name__)


@staff_only.get("/staff-area")
@authenticated(Role.STAFF)
def staff_area() -> dict[str, Any]:
    return {"hello": current_user().email}


@staff_only.get("/admin-area")
@authenticated(Role.ADMIN)
def admin_area() -> dict[str, Any]:
    return {"hello": current_user().email}


@pytest.fixture
def probe_client(make_app: Callable[..., Flask], db_session: Any) -> FlaskClient:
    app = make_app()
    app.register_blueprint(staff_only, url_prefix="/api/v1/probe")
    return app.test_client()


@pytest.mark.parametrize(
    ("role", "staff_status", "admin_status"),
    [("customer", 403, 403), ("staff", 200, 403), ("admin", 200, 200)],
)
def test_each_role_reaches_exactly_its_routes(
    probe_client: FlaskClient, role: str, staff_status: int, admin_status: int
) -> None:
    headers = AuthActions(probe_client).headers(f"{role}@example.com", role)

    staff = probe_client.get("/api/v1/probe/staff-area", headers=headers)
    admin = probe_client.get("/api/v1/probe/admin-area", headers=headers)

    assert (staff.status_code, admin.status_code) == (staff_status, admin_status)
    if staff_status == 200:
        assert staff.get_json() == {"hello": f"{role}@example.com"}


def test_a_customer_on_a_staff_route_gets_a_403_problem(probe_client: FlaskClient) -> None:
    headers = AuthActions(probe_client).headers("cus@example.com", "customer")

    response = probe_client.get("/api/v1/probe/staff-area", headers=headers)

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json() == {
        "type": "/problems/forbidden",
        "title": "Forbidden",
        "status": 403,
        "detail": "This route is for staff accounts; yours is customer.",
    }


def test_no_token_on_a_staff_route_is_401_not_403(probe_client: FlaskClient) -> None:
    response = probe_client.get("/api/v1/probe/staff-area")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop"'


def test_protected_routes_are_documented_with_bearer_security(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()

    assert document["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    me = document["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "401" in me["responses"]
    register = document["paths"]["/api/v1/auth/register"]["post"]
    assert "security" not in register
