"""The staff pages through Flask's test client: who may see them, the session cookie, CSRF on every form, the
sign-in limits, and figures that are the API's own. In a real browser: tests/test_staff_browser.py."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import load_config
from tests.conftest import AuthActions
from tests.helpers import add_product
from tests.test_reports import NEW_YORK, REPORTS, add_order, add_user, utc

STAFF_EMAIL = "boss@example.com"


def form_token(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, page[:300]
    return found.group(1).decode()


def sign_in(client: FlaskClient, email: str, password: str = AuthActions.password, **extra: str) -> Any:
    token = form_token(client.get("/staff/login").data)
    return client.post("/staff/login", data={"email": email, "password": password, "csrf_token": token} | extra)


@pytest.fixture
def staff_client(app: Flask, auth: AuthActions, db_session: Any) -> FlaskClient:
    auth.token_for(STAFF_EMAIL, "staff")
    client = app.test_client()
    assert sign_in(client, STAFF_EMAIL).status_code == 302
    return client


def test_anonymous_callers_are_sent_to_sign_in_and_back(app: Flask, auth: AuthActions, db_session: Any) -> None:
    auth.token_for(STAFF_EMAIL, "staff")
    client = app.test_client()

    response = client.get("/staff/sales?tz=UTC")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/sales?tz%3DUTC"

    signed = sign_in(client, STAFF_EMAIL, next="/staff/sales?tz=UTC")
    assert (signed.status_code, signed.headers["Location"]) == (302, "/staff/sales?tz=UTC")
    assert client.get("/staff/sales?tz=UTC").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/staff/", "/api/v1/users", "/staff\\..\\x"])
def test_sign_in_never_sends_anyone_off_the_staff_pages(
    app: Flask, auth: AuthActions, db_session: Any, target: str
) -> None:
    auth.token_for(STAFF_EMAIL, "staff")
    response = sign_in(app.test_client(), STAFF_EMAIL, next=target)
    assert (response.status_code, response.headers["Location"]) == (302, "/staff/")


def test_a_customer_can_sign_in_but_never_see_the_pages(app: Flask, auth: AuthActions, db_session: Any) -> None:
    auth.token_for("carol@example.com")
    client = app.test_client()

    refused = sign_in(client, "carol@example.com")
    assert refused.status_code == 403
    # a customer's live session cookie does not open them either
    assert sign_in(client, "carol@example.com").status_code == 403
    for path in ("/staff/", "/staff/attention", "/staff/export/revenue.csv?start=2025-01-01&end=2025-01-31"):
        page = client.get(path)
        assert page.status_code == 403, path
        assert b"for staff accounts" in page.data


def test_the_session_cookie_is_http_only_same_site_and_scoped_to_the_pages(
    app: Flask, auth: AuthActions, db_session: Any
) -> None:
    auth.token_for(STAFF_EMAIL, "staff")
    cookie = sign_in(app.test_client(), STAFF_EMAIL).headers["Set-Cookie"]

    assert cookie.startswith("shop_staff=")
    assert "; HttpOnly" in cookie
    assert "; SameSite=Lax" in cookie
    assert "; Path=/staff" in cookie
    assert "Secure" not in cookie  # tests run over plain HTTP; production sets it:
    assert load_config({"APP_ENV": "production", "SECRET_KEY": "x" * 40, "DATABASE_URL": "postgresql://h/d",
                        "REDIS_URL": "redis://h"})["SESSION_COOKIE_SECURE"] is True  # fmt: skip
    app.config["SESSION_COOKIE_SECURE"] = True
    try:
        assert "; Secure" in sign_in(app.test_client(), STAFF_EMAIL).headers["Set-Cookie"]
    finally:
        app.config["SESSION_COOKIE_SECURE"] = False


def test_the_api_never_reads_or_sets_the_cookie(staff_client: FlaskClient) -> None:
    response = staff_client.get(f"{REPORTS}/revenue", query_string={"start": "2025-01-01", "end": "2025-01-02"})
    assert response.status_code == 401  # the staff cookie is no bearer token
    assert "Set-Cookie" not in response.headers


def test_every_form_needs_the_csrf_token(app: Flask, staff_client: FlaskClient, db_session: Any) -> None:
    lamp = add_product(db_session, "LAMP", price=Decimal("10.00"))
    order = add_order(db_session, add_user(db_session, "dan@example.com"), utc("2025-01-10T12:00"), "paid", [(lamp, 1)])
    token = form_token(staff_client.get(f"/staff/orders/{order.id}").data)

    for path, data in [
        (f"/staff/orders/{order.id}/ship", {}),
        (f"/staff/orders/{order.id}/cancel", {"reason": "x"}),
        (f"/staff/orders/{order.id}/payment", {"reference": "r"}),
        ("/staff/logout", {}),
    ]:
        for sent in ({}, {"csrf_token": "forged"}):
            refused = staff_client.post(path, data=data | sent)
            assert refused.status_code == 400, (path, sent)
            assert b"security token" in refused.data
    assert b'id="order-status">paid<' in staff_client.get(f"/staff/orders/{order.id}").data  # nothing changed
    # and a sign-in from another site's form: no session, so no token to send
    assert app.test_client().post("/staff/login", data={"email": STAFF_EMAIL, "password": "x"}).status_code == 400

    shipped = staff_client.post(f"/staff/orders/{order.id}/ship", data={"csrf_token": token})
    assert (shipped.status_code, shipped.headers["Location"]) == (302, f"/staff/orders/{order.id}?done=ship")
    assert b'id="order-status">shipped<' in staff_client.get(shipped.headers["Location"]).data


def test_an_action_the_order_does_not_allow_is_a_409_page(staff_client: FlaskClient, db_session: Any) -> None:
    lamp = add_product(db_session, "LAMP", price=Decimal("10.00"))
    order = add_order(db_session, add_user(db_session, "eve@example.com"), utc("2025-01-10T12:00"), "delivered",
                      [(lamp, 1)])  # fmt: skip
    token = form_token(staff_client.get(f"/staff/orders/{order.id}").data)

    refused = staff_client.post(f"/staff/orders/{order.id}/ship", data={"csrf_token": token})
    assert refused.status_code == 409
    assert b"delivered" in refused.data
    assert staff_client.post(f"/staff/orders/{order.id}/payment", data={"csrf_token": token}).status_code == 422
    assert staff_client.post(f"/staff/orders/{order.id}/launch", data={"csrf_token": token}).status_code == 404
    assert staff_client.get("/staff/orders/999999").status_code == 404


def test_signing_out_revokes_the_session_for_good(staff_client: FlaskClient) -> None:
    stolen = staff_client.get_cookie("shop_staff", path="/staff")
    assert stolen is not None
    token = form_token(staff_client.get("/staff/attention").data)

    out = staff_client.post("/staff/logout", data={"csrf_token": token})
    assert (out.status_code, out.headers["Location"]) == (302, "/staff/login")
    # a copy of the old cookie is worth nothing: its token was revoked
    staff_client.set_cookie("shop_staff", stolen.value, path="/staff")
    assert staff_client.get("/staff/").status_code == 302


def test_wrong_passwords_are_refused_and_sign_in_is_limited_like_the_api(
    app: Flask, auth: AuthActions, db_session: Any
) -> None:
    auth.token_for(STAFF_EMAIL, "staff")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"

    wrong = sign_in(client, STAFF_EMAIL, password="not the password")
    assert wrong.status_code == 401
    assert b"Wrong email or password." in wrong.data
    statuses = [sign_in(client, STAFF_EMAIL, password="not the password").status_code for _ in range(10)]
    assert 429 in statuses  # LOGIN_LIMIT_PER_EMAIL: 5 a minute, as for POST /api/v1/auth/tokens
    limited = sign_in(client, STAFF_EMAIL)  # even the right password, until the window ends
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    # and the API counts the same attempts
    api = client.post("/api/v1/auth/tokens", json={"email": STAFF_EMAIL, "password": AuthActions.password})
    assert api.status_code == 429


@pytest.fixture
def sales(db_session: Any) -> None:
    books = add_product(db_session, "S1", category="Books", price=Decimal("10.00"))
    ann, bob = add_user(db_session, "ann@example.com"), add_user(db_session, "bob@example.com")
    add_order(db_session, ann, utc("2025-03-09T04:30"), "delivered", [(books, 1)])  # 8 March in New York
    add_order(db_session, bob, utc("2025-03-10T03:30"), "paid", [(books, 2)])  # 9 March (23 hours long) there
    add_order(db_session, ann, utc("2025-03-03T12:00"), "shipped", [(books, 4)])  # the week before


def test_the_overview_shows_the_apis_figures(staff_client: FlaskClient, auth: AuthActions, sales: None) -> None:
    query = {"start": "2025-03-08", "end": "2025-03-09", "tz": NEW_YORK, "granularity": "day",
             "compare": "previous_period"}  # fmt: skip
    page = staff_client.get("/staff/", query_string=query).get_data(as_text=True)
    api = (
        staff_client.application.test_client()
        .get(f"{REPORTS}/revenue", query_string=query, headers=auth.headers("staff2@example.com", "staff"))
        .get_json()
    )

    assert f'id="kpi-revenue">{api["totals"]["revenue"]}<' in page  # 30.00
    assert api["totals"]["revenue"] == "30.00"
    # ann's first order was the week before: only bob is new
    assert 'id="kpi-orders">2<' in page
    assert 'id="kpi-new_customers">1<' in page
    for row in api["rows"]:
        assert f'<tr data-period="{row["period"]}"><th scope="row">{row["period"]}</th><td data-key="orders">' \
               f'{row["orders"]}</td><td data-key="revenue">{row["revenue"]}</td>' in page  # fmt: skip
    assert "<svg" in page
    assert "Compared range" in page


def test_the_csv_download_is_the_apis_csv(staff_client: FlaskClient, auth: AuthActions, sales: None) -> None:
    query = {"start": "2025-03-01", "end": "2025-03-31", "tz": NEW_YORK}
    mine = staff_client.get("/staff/export/revenue-by-category.csv", query_string=query)
    api = staff_client.application.test_client().get(
        f"{REPORTS}/revenue-by-category", query_string=query | {"format": "csv"},
        headers=auth.headers("staff2@example.com", "staff"),
    )  # fmt: skip
    assert mine.status_code == 200
    assert mine.mimetype == "text/csv"
    assert mine.get_data(as_text=True) == api.get_data(as_text=True)
    assert "attachment" in mine.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/staff/", {"start": "2025-03-09", "end": "2025-03-01"}, "Must not be after end."),
        ("/staff/sales", {"tz": "Mars/Base"}, "Unknown time zone"),
        ("/staff/customers", {"granularity": "fortnight"}, "Must be one of"),
        ("/staff/export/cohorts.csv", {"start": "soon", "end": "2025-01-01"}, "Not a valid date"),
    ],
)
def test_a_bad_range_is_a_422_that_says_why(
    staff_client: FlaskClient, path: str, query: dict[str, str], message: str
) -> None:
    response = staff_client.get(path, query_string=query)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_every_page_renders_for_an_empty_store(staff_client: FlaskClient) -> None:
    for path in ("/staff/", "/staff/sales", "/staff/customers", "/staff/attention"):
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert "script-src" not in response.headers["Content-Security-Policy"]  # no script at all
    css = staff_client.get("/staff/static/staff.css")
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    css.close()
