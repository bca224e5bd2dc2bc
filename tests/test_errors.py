"""Every error is an application/problem+json document; nothing leaks, nothing half-written stays."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import marshmallow as ma
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_smorest import Blueprint

from shop.errors import Conflict
from shop.extensions import db
from shop.models import Product

PROBLEM = "application/problem+json"

probe = Blueprint("probe", __name__)


class WidgetSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    quantity = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=1000))


@probe.post("/widgets")
@probe.arguments(WidgetSchema)
def create_widget(widget: dict[str, Any]) -> tuple[dict[str, Any], int]:
    return widget, 201


@probe.post("/conflict")
def raise_conflict() -> None:
    raise Conflict("Widget 7 is already shipped.", current_status="shipped")


@probe.get("/boom")
def boom() -> None:
    db.session.add(Product(sku="HALF-WRITTEN", name="x", category="c", price=Decimal("1.00"), stock=1))
    db.session.flush()
    raise RuntimeError("secret internals: password=hunter2")


@pytest.fixture
def probe_app(make_app: Callable[..., Flask], app: Flask) -> Flask:
    # a separate app: routes cannot be added to one that has served requests
    probe_app = make_app(MAX_CONTENT_LENGTH=1024)
    probe_app.register_blueprint(probe, url_prefix="/api/v1/probe")
    return probe_app


@pytest.fixture
def probe_client(probe_app: Flask, db_session: Any) -> FlaskClient:
    return probe_app.test_client()


def assert_problem(response: Any, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] == title
    assert isinstance(body["type"], str)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def test_unknown_route_is_a_404_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/nope")

    body = assert_problem(response, 404, "Not Found")
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No resource at /api/v1/nope.",
    }


def test_unknown_route_outside_the_api_is_a_problem_too_never_html(client: FlaskClient) -> None:
    response = client.get("/nope.html")

    assert_problem(response, 404, "Not Found")


def test_wrong_method_is_a_405_problem_with_allow(client: FlaskClient) -> None:
    response = client.post("/healthz")

    assert_problem(response, 405, "Method Not Allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD", "OPTIONS"}


def test_unexpected_exception_is_a_500_problem_without_internals(
    probe_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = probe_client.get("/api/v1/probe/boom")

    body = assert_problem(response, 500, "Internal Server Error")
    assert body == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "An unexpected error occurred. It has been logged.",
    }
    assert b"hunter2" not in response.data
    assert b"Traceback" not in response.data
    assert b"RuntimeError" not in response.data
    # ...but the log has the whole traceback for the operator
    logged = [record for record in caplog.records if record.exc_info]
    assert logged
    assert "hunter2" in caplog.text
    assert "Traceback" in caplog.text


def test_unexpected_exception_rolls_back_what_the_request_wrote(
    probe_client: FlaskClient, db_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL):
        probe_client.get("/api/v1/probe/boom")

    count = db_session.scalar(sa.select(sa.func.count()).select_from(Product).where(Product.sku == "HALF-WRITTEN"))
    assert count == 0


def test_domain_error_is_a_problem_with_its_type_and_extra_members(probe_client: FlaskClient) -> None:
    response = probe_client.post("/api/v1/probe/conflict")

    body = assert_problem(response, 409, "Conflict")
    assert body == {
        "type": "/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "Widget 7 is already shipped.",
        "current_status": "shipped",
    }


def test_invalid_fields_are_a_422_problem_naming_each_field(probe_client: FlaskClient) -> None:
    response = probe_client.post("/api/v1/probe/widgets", json={"name": "", "quantity": 0, "colour": "red"})

    body = assert_problem(response, 422, "Validation failed")
    assert body["type"] == "/problems/validation-failed"
    assert set(body["errors"]) == {"name", "quantity", "colour"}
    assert body["errors"]["quantity"] == ["Must be greater than or equal to 1 and less than or equal to 1000."]
    assert body["errors"]["colour"] == ["Unknown field."]


def test_missing_required_fields_are_a_422_problem(probe_client: FlaskClient) -> None:
    response = probe_client.post("/api/v1/probe/widgets", json={})

    body = assert_problem(response, 422, "Validation failed")
    assert body["errors"] == {
        "name": ["Missing data for required field."],
        "quantity": ["Missing data for required field."],
    }


def test_valid_body_passes_validation(probe_client: FlaskClient) -> None:
    response = probe_client.post("/api/v1/probe/widgets", json={"name": "bolt", "quantity": 3})

    assert response.status_code == 201
    assert response.get_json() == {"name": "bolt", "quantity": 3}


def test_malformed_json_is_a_400_problem(probe_client: FlaskClient) -> None:
    response = probe_client.post(
        "/api/v1/probe/widgets", data='{"name": "bolt", "quantity":', content_type="application/json"
    )

    body = assert_problem(response, 400, "Bad request")
    assert body["detail"] == "The request body is not valid JSON."


def test_a_body_that_is_not_json_is_a_415_problem(probe_client: FlaskClient) -> None:
    response = probe_client.post("/api/v1/probe/widgets", data="name=bolt&quantity=3", content_type="text/plain")

    body = assert_problem(response, 415, "Unsupported Media Type")
    assert "application/json" in body["detail"]


def test_a_body_over_the_limit_is_a_413_problem(probe_client: FlaskClient) -> None:
    response = probe_client.post("/api/v1/probe/widgets", json={"name": "x" * 2048, "quantity": 1})

    assert_problem(response, 413, "Request Entity Too Large")


def test_problem_members_keep_the_rfc_order(client: FlaskClient) -> None:
    response = client.get("/api/v1/nope")

    assert list(response.get_json()) == ["type", "title", "status", "detail"]
