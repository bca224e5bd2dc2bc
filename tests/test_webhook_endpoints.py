"""Staff register webhook endpoints: secrets shown once and kept sealed, rotation, and no URL that reaches inside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.webhooks.secrets import unseal
from tests.conftest import AuthActions

WEBHOOKS = "/api/v1/webhooks"
GOOD = {"url": "http://127.0.0.1:9000/hooks", "event_types": ["order.placed", "order.paid"]}


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


def stored(db_session: Any, endpoint_id: int) -> Any:
    return db_session.execute(
        sa.text("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = :id"), {"id": endpoint_id}
    ).one()


def test_a_new_endpoint_shows_its_secret_once_and_keeps_it_sealed(
    client: FlaskClient, staff: dict[str, str], db_session: Any, app: Flask
) -> None:
    made = client.post(WEBHOOKS, json=GOOD, headers=staff)

    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["secret"].startswith("whsec_")
    assert (body["url"], body["event_types"], body["is_active"]) == (GOOD["url"], ["order.paid", "order.placed"], True)
    assert made.headers["Location"] == f"{WEBHOOKS}/{body['id']}"
    assert made.headers["Cache-Control"] == "no-store"
    shown = client.get(f"{WEBHOOKS}/{body['id']}", headers=staff).get_json()
    listed = client.get(WEBHOOKS, headers=staff).get_json()["items"]
    assert "secret" not in shown
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    sealed = stored(db_session, body["id"]).secret
    assert body["secret"] not in sealed  # a dump of the table does not give it away
    with app.app_context():
        assert unseal(sealed) == body["secret"]


def test_rotating_gives_a_new_secret_and_keeps_the_old_one_signing_for_a_day(
    client: FlaskClient, staff: dict[str, str], db_session: Any, app: Flask
) -> None:
    made = client.post(WEBHOOKS, json=GOOD, headers=staff).get_json()

    rotated = client.post(f"{WEBHOOKS}/{made['id']}/rotate-secret", headers=staff)

    assert rotated.status_code == 200
    body = rotated.get_json()
    assert body["secret"] != made["secret"]
    until = datetime.fromisoformat(body["previous_secret_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    row = stored(db_session, made["id"])
    with app.app_context():
        assert (unseal(row.secret), unseal(row.previous_secret)) == (body["secret"], made["secret"])


def test_staff_change_turn_off_turn_on_and_delete_an_endpoint(
    client: FlaskClient, staff: dict[str, str], db_session: Any
) -> None:
    made = client.post(WEBHOOKS, json=GOOD, headers=staff).get_json()
    path = f"{WEBHOOKS}/{made['id']}"

    retyped = client.patch(path, json={"event_types": ["order.shipped"]}, headers=staff).get_json()
    off = client.patch(path, json={"is_active": False}, headers=staff).get_json()
    db_session.execute(sa.text("UPDATE webhook_endpoints SET disabled_reason = 'failing for 3 days'"))
    on = client.patch(path, json={"is_active": True}, headers=staff).get_json()
    deleted = client.delete(path, headers=staff)

    assert retyped["event_types"] == ["order.shipped"]
    assert off["is_active"] is False
    assert (on["is_active"], on["disabled_reason"]) == (True, None)
    assert deleted.status_code == 204
    assert client.get(path, headers=staff).status_code == 404
    assert client.delete(path, headers=staff).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://localhost/hooks",  # a name that resolves to this machine
        "https://10.0.0.5/hooks",
        "https://[::1]/hooks",
    ],
)
def test_production_settings_refuse_urls_that_reach_inside(
    client: FlaskClient, staff: dict[str, str], app: Flask, monkeypatch: pytest.MonkeyPatch, url: str, db_session: Any
) -> None:
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
    monkeypatch.setitem(app.config, "WEBHOOK_REQUIRE_HTTPS", True)

    response = client.post(WEBHOOKS, json=GOOD | {"url": url}, headers=staff)

    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["url"]
    assert db_session.scalar(sa.text("SELECT count(*) FROM webhook_endpoints")) == 0


def test_production_settings_refuse_an_unsafe_url_in_a_change_too(
    client: FlaskClient, staff: dict[str, str], app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = client.post(WEBHOOKS, json=GOOD, headers=staff).get_json()
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)

    response = client.patch(f"{WEBHOOKS}/{made['id']}", json={"url": "http://192.168.0.10/x"}, headers=staff)

    assert response.status_code == 422
    assert client.get(f"{WEBHOOKS}/{made['id']}", headers=staff).get_json()["url"] == GOOD["url"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["order.placed"]}, "url"),
        (GOOD | {"event_types": []}, "event_types"),
        (GOOD | {"event_types": ["order.exploded"]}, "event_types.0"),
        (GOOD | {"url": "not a url"}, "url"),
        (GOOD | {"url": "ftp://example.com/x"}, "url"),
        (GOOD | {"is_active": "maybe"}, "is_active"),
        (GOOD | {"secret": "mine"}, "secret"),
    ],
)
def test_bad_bodies_are_a_422_naming_the_field(
    client: FlaskClient, staff: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = client.post(WEBHOOKS, json=body, headers=staff)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_an_empty_change_and_a_bad_id_are_refused(client: FlaskClient, staff: dict[str, str]) -> None:
    made = client.post(WEBHOOKS, json=GOOD, headers=staff).get_json()

    assert client.patch(f"{WEBHOOKS}/{made['id']}", json={}, headers=staff).status_code == 422
    assert client.get(f"{WEBHOOKS}/abc", headers=staff).status_code == 422  # as for any id that is not one
    assert client.post(f"{WEBHOOKS}/999999/rotate-secret", headers=staff).status_code == 404


def test_only_staff_manage_webhooks(client: FlaskClient, auth: AuthActions) -> None:
    customer = auth.headers("ann@example.com")
    integration = auth.headers("warehouse@example.com", "integration")

    assert client.get(WEBHOOKS).status_code == 401
    assert client.get(WEBHOOKS, headers=customer).status_code == 403
    assert client.post(WEBHOOKS, json=GOOD, headers=integration).status_code == 403
