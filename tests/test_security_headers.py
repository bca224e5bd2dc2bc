from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import load_config

STOREFRONT = "https://store.example"


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/nope", "/api/v1/openapi.json", "/api/v1/users/me"])
def test_every_response_carries_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # only where HSTS is configured


def test_hsts_is_sent_when_configured(make_app: Callable[..., Flask], db_session: Any) -> None:
    response = make_app(HSTS_SECONDS=63_072_000).test_client().get("/healthz")

    assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


def test_production_turns_hsts_on_by_default() -> None:
    settings = load_config(
        {
            "APP_ENV": "production",
            "SECRET_KEY": "k" * 40,
            "DATABASE_URL": "postgresql://db/shop",
            "REDIS_URL": "redis://cache:6379/0",
        }
    )

    assert settings["HSTS_SECONDS"] == 63_072_000


def test_no_cors_headers_unless_origins_are_configured(client: FlaskClient) -> None:
    response = client.options(
        "/api/v1/auth/tokens", headers={"Origin": STOREFRONT, "Access-Control-Request-Method": "POST"}
    )

    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_configured_storefront_origin_may_call_the_api(make_app: Callable[..., Flask], db_session: Any) -> None:
    client = make_app(CORS_ORIGINS=[STOREFRONT]).test_client()

    preflight = client.options(
        "/api/v1/auth/tokens",
        headers={
            "Origin": STOREFRONT,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    stranger = client.get("/api/v1/openapi.json", headers={"Origin": "https://evil.example"})

    assert preflight.headers["Access-Control-Allow-Origin"] == STOREFRONT
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_a_wildcard_origin_is_refused_by_the_configuration() -> None:
    from config import ConfigError

    with pytest.raises(ConfigError, match="CORS_ORIGINS must list storefront origins, not"):
        load_config({"DATABASE_URL": "postgresql://db/shop", "REDIS_URL": "redis://c/0", "CORS_ORIGINS": "*"})
