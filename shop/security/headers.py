"""Security headers on every response, and no caching of anything that belongs to one account."""

from __future__ import annotations

from flask import Flask, Response, current_app, request


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    hsts_seconds = current_app.config["HSTS_SECONDS"]
    if hsts_seconds:
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts_seconds}; includeSubDomains")
    # tokens, accounts and anything answered to a signed-in caller must never sit in a shared cache
    if request.blueprint in {"auth", "users"} or "Authorization" in request.headers:
        headers["Cache-Control"] = "no-store"
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
