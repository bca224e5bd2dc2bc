"""Request ids, one JSON log line per request, and Sentry events that carry no personal data."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import sentry_sdk
import sqlalchemy as sa
from flask import Flask, request

from shop.extensions import db, passwords
from shop.repositories.users import UserRepository
from tests.conftest import AuthActions
from tests.helpers import ADDRESS, add_product


def test_a_well_formed_request_id_is_kept_and_a_bad_one_replaced(client: Any) -> None:
    kept = client.get("/healthz", headers={"X-Request-ID": "proxy-1234-abcd"})
    replaced = client.get("/healthz", headers={"X-Request-ID": "not ok; DROP TABLE"})
    missing = client.get("/api/v1/products/0")  # an error answer gets one too

    assert kept.headers["X-Request-ID"] == "proxy-1234-abcd"
    assert len(replaced.headers["X-Request-ID"]) == 32
    assert replaced.headers["X-Request-ID"].isalnum()
    assert missing.status_code == 422
    assert len(missing.headers["X-Request-ID"]) == 32


def test_each_request_writes_one_json_line(
    make_app: Callable[..., Flask], db_session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(LOG_FORMAT="json")
    client = app.test_client()
    headers = AuthActions(client).headers("ann@example.com")
    capsys.readouterr()

    client.get("/api/v1/users/me", headers=headers | {"X-Request-ID": "req-0001-from-proxy"})

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("name") == "shop.request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["request_id"] == "req-0001-from-proxy"
    assert (line["method"], line["path"], line["status"], line["level"]) == ("GET", "/api/v1/users/me", 200, "INFO")
    assert isinstance(line["user_id"], int)
    assert 0 < line["duration_ms"] < 30_000  # measured, in milliseconds (a request with a query takes some)


def request_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    return [line for line in lines if line.get("name") == "shop.request"]


@pytest.mark.parametrize(("proxies", "client"), [(0, "127.0.0.1"), (1, "203.0.113.7"), (2, "198.51.100.2")])
def test_the_client_address_comes_from_as_many_proxies_as_are_trusted(
    make_app: Callable[..., Flask], capsys: pytest.CaptureFixture[str], proxies: int, client: str
) -> None:
    app = make_app(LOG_FORMAT="json", TRUSTED_PROXIES=proxies)
    capsys.readouterr()

    # the client claims 198.51.100.2, our outer proxy saw 203.0.113.7, the inner one is the test client (127.0.0.1)
    app.test_client().get("/healthz", headers={"X-Forwarded-For": "198.51.100.2, 203.0.113.7"})

    assert [line["client"] for line in request_lines(capsys.readouterr().out)] == [client]


class _Collector(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]]  # set per server by the fixture

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.bodies.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback stand-in for Sentry that keeps every envelope it is sent."""
    bodies: list[bytes] = []
    handler = type("Collector", (_Collector,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public@127.0.0.1:{server.server_address[1]}/1", bodies
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)  # no client at all for the rest of the tests
        server.shutdown()
        server.server_close()


def test_an_unhandled_error_sends_one_event_without_emails_or_tokens(
    make_app: Callable[..., Flask], db_session: Any, sentry_server: tuple[str, list[bytes]]
) -> None:
    dsn, bodies = sentry_server
    app = make_app(SENTRY_DSN=dsn, SENTRY_RELEASE="test-release")

    class LedgerOutOfBalance(RuntimeError):
        pass

    def fail() -> str:
        raise LedgerOutOfBalance("could not settle for ann@example.com with Bearer abc.def-123")

    app.add_url_rule("/boom", "boom", fail, methods=["POST"])
    client = app.test_client()
    token = AuthActions(client).token_for("ann@example.com", "customer")

    response = client.post(
        "/boom", json={"email": "ann@example.com", "password": "hunter2hunter2"},
        headers={"Authorization": f"Bearer {token}", "Cookie": "session=secret-cookie"},
    )  # fmt: skip
    sentry_sdk.flush(timeout=5)

    assert response.status_code == 500
    events = [body for body in bodies if b'"type":"event"' in body or b'"type": "event"' in body]
    assert len(events) == 1
    event = events[0].decode()
    assert "LedgerOutOfBalance" in event
    assert "test-release" in event
    for secret in ("ann@example.com", token, "abc.def-123", "hunter2hunter2", "secret-cookie"):
        assert secret not in event, secret


def test_without_a_dsn_sentry_stays_off(make_app: Callable[..., Flask]) -> None:
    make_app()
    assert sentry_sdk.get_client().dsn is None
    assert sentry_sdk.get_client().transport is None


def test_slow_statements_are_logged_with_their_duration_and_never_their_parameters(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(SLOW_SQL_MS=30)  # its own engine (no db_session): reads only
    with app.app_context(), caplog.at_level(logging.WARNING, logger="shop.sql"):
        db.session.execute(sa.text("SELECT :secret AS fast"), {"secret": "ann@example.com"})
        db.session.execute(sa.text("SELECT pg_sleep(0.05), :secret AS slow"), {"secret": "ann@example.com"})

    slow = [record for record in caplog.records if record.name == "shop.sql"]
    assert len(slow) == 1
    assert slow[0].duration_ms >= 30  # type: ignore[attr-defined]
    assert "pg_sleep" in slow[0].statement  # type: ignore[attr-defined]
    assert "ann@example.com" not in slow[0].getMessage() + str(slow[0].__dict__)


def _events(bodies: list[bytes]) -> list[str]:
    return [body.decode() for body in bodies if b'"type":"event"' in body or b'"type": "event"' in body]


def test_with_sentry_on_authenticated_requests_and_orders_work(
    make_app: Callable[..., Flask], db_session: Any, sentry_server: tuple[str, list[bytes]]
) -> None:
    """The prepared-statement path (the token lookup, the order) fires cursor events Sentry listens to."""
    dsn, bodies = sentry_server
    app = make_app(SENTRY_DSN=dsn, SENTRY_TRACES_SAMPLE_RATE=1.0)  # spans on: every listener runs
    client = app.test_client()
    auth = AuthActions(client)
    lamp = add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("19.99"), stock=5)
    headers = auth.headers("ann@example.com")

    me = client.get("/api/v1/users/me", headers=headers)
    order = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": lamp.id, "quantity": 2}], "shipping_address": ADDRESS},
        headers=headers | {"Idempotency-Key": "sentry-1"},
    )
    sentry_sdk.flush(timeout=5)

    assert me.status_code == 200, me.get_json()
    assert order.status_code == 201, order.get_json()
    assert _events(bodies) == []  # nothing went wrong, so nothing was reported


def test_an_error_inside_registration_sends_no_password_hash_email_or_name(
    make_app: Callable[..., Flask],
    db_session: Any,
    sentry_server: tuple[str, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn, bodies = sentry_server
    app = make_app(SENTRY_DSN=dsn, LOG_FORMAT="json")
    hashes: list[str] = []
    real_hash = passwords.hash

    def hash_and_keep(password: str) -> str:
        hashes.append(real_hash(password))
        return hashes[-1]

    def fail_to_add(self: Any, user: Any) -> None:
        raise RuntimeError("the user table is on fire")

    monkeypatch.setattr(passwords, "hash", hash_and_keep)
    monkeypatch.setattr(UserRepository, "add", fail_to_add)
    capsys.readouterr()

    response = app.test_client().post(
        "/api/v1/auth/register",
        json={"email": "zelda.private@example.com", "password": "Pa55-secret-words", "name": "Zelda Quimby"},
    )
    sentry_sdk.flush(timeout=5)
    logged = capsys.readouterr().out

    assert response.status_code == 500
    assert len(hashes) == 1
    events = _events(bodies)
    assert len(events) == 1
    assert "the user table is on fire" in events[0]
    assert "the user table is on fire" in logged
    for secret in ("Pa55-secret-words", hashes[0], hashes[0].split("$")[-1], "zelda.private", "Zelda", "Quimby"):
        assert secret not in events[0], secret
        assert secret not in logged, secret


def test_a_database_error_sends_and_logs_no_row_values(
    make_app: Callable[..., Flask],
    db_session: Any,
    sentry_server: tuple[str, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """PostgreSQL's DETAIL ('Failing row contains (...)') and SQLAlchemy's parameters hold names and addresses."""
    dsn, bodies = sentry_server
    app = make_app(SENTRY_DSN=dsn, LOG_FORMAT="json")

    def fail() -> str:
        # the values come from the request, as they would: the event's source lines must not hold them either
        db.session.execute(
            sa.text("INSERT INTO users (email, name, password_hash, role) VALUES (:email, :name, NULL, 'customer')"),
            request.get_json(),
        )
        return "unreachable"

    app.add_url_rule("/boom-db", "boom_db", fail, methods=["POST"])
    capsys.readouterr()

    response = app.test_client().post(
        "/boom-db", json={"email": "yara.hidden@example.org", "name": "Yara Street 12 Springfield"}
    )
    sentry_sdk.flush(timeout=5)
    logged = capsys.readouterr().out

    assert response.status_code == 500
    events = _events(bodies)
    assert len(events) == 1
    assert "NotNullViolation" in events[0]
    assert "NotNullViolation" in logged
    for secret in ("yara.hidden", "Yara", "Street 12"):
        assert secret not in events[0], secret
        assert secret not in logged, secret
