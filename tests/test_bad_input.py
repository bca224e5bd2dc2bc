"""Input that once answered 500: each is now a 4xx problem document that names the field, and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from shop.catalog.queries import ProductFilters
from shop.models import Order, OrderStatusChange, Product, User
from tests.conftest import AuthActions
from tests.helpers import ADDRESS, add_product

PROBLEM = "application/problem+json"
NUL = "\x00"
SURROGATE = "\ud800"  # JSON can spell it ("\\ud800"); UTF-8 cannot encode it


def assert_refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    if field is not None:
        assert field in body["errors"], body
    return body


def counts(session: Any) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
        for model in (User, Product, Order, OrderStatusChange)
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=%00", "q"),
        ("q=lamp%00shade", "q"),
        ("category=%00", "category"),
        ("min_price=1E-20000", "min_price"),
        ("max_price=1E-20000", "max_price"),
        ("min_price=0.001", "min_price"),
        ("max_price=1E%2B400", "max_price"),
        ("q=%ED%A0%80", None),  # an encoded surrogate is not UTF-8: it is read as replacement characters, a search
    ],
)
def test_catalog_arguments_postgresql_cannot_take_are_refused(
    client: FlaskClient, db_session: Any, query: str, field: str | None
) -> None:
    add_product(db_session, "LAMP", name="Desk lamp")
    response = client.get(f"/api/v1/products?{query}")
    if field is None:
        assert response.status_code == 200
    else:
        assert_refused(response, 422, field)


def test_prices_with_trailing_zeros_are_still_two_places(client: FlaskClient, db_session: Any) -> None:
    add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("19.99"))
    response = client.get("/api/v1/products?min_price=19.9900&max_price=20")
    assert response.status_code == 200
    assert [item["sku"] for item in response.get_json()["items"]] == ["LAMP"]


def test_a_deeply_nested_json_body_is_a_400(client: FlaskClient, auth: AuthActions, db_session: Any) -> None:
    headers = auth.headers()
    before = counts(db_session)
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/v1/orders", "/api/v1/auth/register", "/api/v1/auth/tokens"):
        response = client.post(path, data=deep, content_type="application/json", headers=headers)
        assert_refused(response, 400)
    deep_object = '{"items": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"
    response = client.post("/api/v1/orders", data=deep_object, content_type="application/json", headers=headers)
    assert_refused(response, 400)
    assert counts(db_session) == before


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
def test_unstorable_text_in_a_registration_is_refused(client: FlaskClient, db_session: Any, bad: str) -> None:
    before = counts(db_session)
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "zoe@example.com", "password": "long enough password", "name": f"Zo{bad}e"},
    )
    assert_refused(response, 422, "name")
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "zoe@example.com", "password": f"long enough{bad} password", "name": "Zoe"},
    )
    assert_refused(response, 422, "password")
    response = client.post("/api/v1/auth/tokens", json={"email": "zoe@example.com", "password": f"x{bad}"})
    assert_refused(response, 422, "password")
    assert counts(db_session) == before


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
@pytest.mark.parametrize("field", ["name", "line1", "line2", "city", "postal_code"])
def test_unstorable_text_in_a_shipping_address_places_nothing(
    client: FlaskClient, auth: AuthActions, db_session: Any, bad: str, field: str
) -> None:
    lamp = add_product(db_session, "LAMP", stock=5)
    headers = auth.headers()
    before = counts(db_session)
    body = {"items": [{"product_id": lamp.id, "quantity": 1}], "shipping_address": ADDRESS | {field: f"x{bad}y"}}
    response = client.post("/api/v1/orders", json=body, headers=headers)
    assert_refused(response, 422, f"shipping_address.{field}")
    assert counts(db_session) == before
    db_session.refresh(lamp)
    assert lamp.stock == 5


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
def test_unstorable_text_in_a_transition_changes_nothing(
    client: FlaskClient, auth: AuthActions, db_session: Any, bad: str
) -> None:
    lamp = add_product(db_session, "LAMP", stock=5)
    headers = auth.headers()
    body = {"items": [{"product_id": lamp.id, "quantity": 1}], "shipping_address": ADDRESS}
    order = client.post("/api/v1/orders", json=body, headers=headers).get_json()
    staff = auth.headers("staff@example.com", "staff")
    before = counts(db_session)

    pay = client.post(f"/api/v1/orders/{order['id']}/payments", json={"reference": f"ref{bad}"}, headers=staff)
    cancel = client.post(f"/api/v1/orders/{order['id']}/cancel", json={"reason": f"no{bad}"}, headers=headers)

    assert_refused(pay, 422, "reference")
    assert_refused(cancel, 422, "reason")
    assert counts(db_session) == before
    assert client.get(f"/api/v1/orders/{order['id']}", headers=headers).get_json()["status"] == "pending"


def test_unstorable_text_in_a_product_is_refused(client: FlaskClient, auth: AuthActions, db_session: Any) -> None:
    staff = auth.headers("sam@example.com", "staff")
    before = counts(db_session)
    fields = {"sku": "LAMP", "name": "Lamp", "category": "Home", "price": "1.00"}
    for field in ("name", "category", "description"):
        response = client.post("/api/v1/products", json=fields | {field: f"a{NUL}b"}, headers=staff)
        assert_refused(response, 422, field)
    assert counts(db_session) == before


def test_an_unstorable_field_name_is_refused(client: FlaskClient, auth: AuthActions, db_session: Any) -> None:
    staff = auth.headers("sam@example.com", "staff")
    response = client.post(
        "/api/v1/products", json={f"na{NUL}me": "Lamp", "sku": "L", "category": "H", "price": "1.00"}, headers=staff
    )
    assert_refused(response, 422)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start=9996-01-01&end=9996-12-31", "start"),
        ("start=2026-01-01&end=9999-12-31", "end"),
        ("start=0001-01-01&end=0001-12-31", "start"),
        ("start=2026-01-01&end=2026-01-31&tz=Europe/Berlin%00", "tz"),
    ],
)
def test_report_dates_far_from_today_are_refused(
    client: FlaskClient, auth: AuthActions, query: str, field: str
) -> None:
    staff = auth.headers("sam@example.com", "staff")
    for report in ("revenue", "revenue-by-category", "top-products", "top-customers"):
        assert_refused(client.get(f"/api/v1/reports/{report}?{query}", headers=staff), 422, field)


def test_the_last_allowed_report_year_answers(client: FlaskClient, auth: AuthActions) -> None:
    staff = auth.headers("sam@example.com", "staff")
    for granularity in ("day", "week", "month"):
        response = client.get(
            f"/api/v1/reports/revenue?start=8996-01-02&end=9000-12-31&granularity={granularity}&tz=Pacific/Kiritimati",
            headers=staff,
        )
        assert response.status_code == 200, response.get_json()


def test_listing_cache_keys_cannot_collide() -> None:
    """The key once joined the filters with '|': q 'a|b' and q 'a' in category 'b' shared one entry."""
    assert ProductFilters(q="a|b").cache_key_part() != ProductFilters(q="a", category="b").cache_key_part()
    assert ProductFilters(q="a", category="").cache_key_part() != ProductFilters(q="a").cache_key_part()
    assert (
        ProductFilters(min_price=Decimal("5")).cache_key_part()
        == ProductFilters(min_price=Decimal("5.00")).cache_key_part()
    )


def test_one_search_cannot_answer_for_another(client: FlaskClient, db_session: Any) -> None:
    add_product(db_session, "LAMP", name="Brass lamp", category="desk")
    add_product(db_session, "DESKLAMP", name="Brass lamp for a desk", category="Home")
    first = client.get("/api/v1/products?q=lamp|desk").get_json()
    second = client.get("/api/v1/products?q=lamp&category=desk").get_json()
    assert [item["sku"] for item in first["items"]] == ["DESKLAMP"]
    assert [item["sku"] for item in second["items"]] == ["LAMP"]


def test_the_time_zone_names_remembered_are_bounded(client: FlaskClient, auth: AuthActions) -> None:
    """Each distinct tz argument was remembered for good: a caller could grow the process without bound."""
    from shop.api.reports import _known_zone

    staff = auth.headers("sam@example.com", "staff")
    for n in range(1100):
        response = client.get(f"/api/v1/reports/revenue?start=2026-01-01&end=2026-01-02&tz=Nowhere/Z{n}", headers=staff)
        assert response.status_code == 422
    assert _known_zone.cache_info().currsize <= 1024
