"""HTTP API: one blueprint per resource, validated at the edge with marshmallow schemas."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import UnsupportedMediaType

from shop.api import (
    auth,
    categories,
    docs,
    events,
    health,
    order_money,
    orders,
    payments,
    products,
    reports,
    users,
    webhooks,
)
from shop.extensions import api

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def require_json_body() -> None:
    """A request that carries a body must say it is JSON; anything else is a 415, never parsed."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding", "") == "chunked"
    if has_body and not request.is_json:
        raise UnsupportedMediaType(
            f"Send the request body as application/json, not {request.mimetype or 'an unspecified type'}."
        )


def register_blueprints(app: Flask) -> None:
    app.before_request(require_json_body)
    api.register_blueprint(health.blp)
    api.register_blueprint(auth.blp)
    api.register_blueprint(users.blp)
    api.register_blueprint(products.blp)
    api.register_blueprint(categories.blp)
    api.register_blueprint(orders.blp)
    api.register_blueprint(order_money.blp)
    api.register_blueprint(payments.blp)
    api.register_blueprint(reports.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(webhooks.blp)
    app.register_blueprint(docs.blp)  # a plain Flask blueprint: the docs page is not part of the API it documents
