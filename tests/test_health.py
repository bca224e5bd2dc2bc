from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import DEAD_REDIS

# nothing listens on port 1 of the loopback: connections are refused at once
DEAD_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"


def test_healthz_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_touches_nothing_so_it_answers_with_both_servers_down(make_app: Callable[..., Flask]) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=DEAD_POSTGRES, REDIS_URL=DEAD_REDIS)

    response = app.test_client().get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_200_when_postgres_and_redis_answer(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_when_postgres_does_not_answer(make_app: Callable[..., Flask]) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=DEAD_POSTGRES)

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "redis": "ok"},
    }


def test_readyz_stays_200_with_redis_degraded_when_redis_is_down(make_app: Callable[..., Flask]) -> None:
    app = make_app(REDIS_URL=DEAD_REDIS)

    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "degraded"}}
