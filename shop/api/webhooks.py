"""Webhook endpoints, for staff: where events are delivered, signed (the secret is in the answer once)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, cast

import marshmallow as ma
from flask import Response, url_for

from shop.api.pagination import PageArgsSchema, envelope_json, link_header, page_schema, parse_id
from shop.api.policy import authenticated, current_user
from shop.api.responses import json_response
from shop.api.schemas import Blueprint, InputSchema
from shop.errors import ValidationFailed
from shop.models import EventType, Role, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from shop.services import webhooks as service
from shop.webhooks.urls import MAX_URL_LENGTH

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks", description="Webhooks")


class WebhookCreateSchema(InputSchema):
    url = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=MAX_URL_LENGTH))
    event_types = ma.fields.List(
        ma.fields.Enum(EventType, by_value=True), required=True, validate=ma.validate.Length(min=1, max=20)
    )
    is_active = ma.fields.Boolean(load_default=True)


class WebhookPatchSchema(WebhookCreateSchema):
    """Any of the fields (loaded with partial=True); is_active true also clears what disabled it."""

    @ma.validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Send at least one field to change.", field_name="_request")


class WebhookSchema(ma.Schema):
    """An endpoint (documentation; responses come from `_document`)."""

    id = ma.fields.Integer()
    url = ma.fields.String()
    event_types = ma.fields.List(ma.fields.String(metadata={"enum": [t.value for t in EventType]}))
    is_active = ma.fields.Boolean()
    disabled_reason = ma.fields.String(allow_none=True, metadata={"description": "why shop stopped delivering"})
    previous_secret_until = ma.fields.String(
        allow_none=True, metadata={"format": "date-time", "description": "the rotated-out secret signs until then"}
    )
    secret = ma.fields.String(metadata={"description": "only when made or rotated: store it, it is not shown again"})
    created_at = ma.fields.String(metadata={"format": "date-time"})
    updated_at = ma.fields.String(metadata={"format": "date-time"})


class WebhookListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WebhookSchema))


def _document(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    until = endpoint.previous_secret_until
    document: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "is_active": endpoint.is_active,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_until": until.isoformat() if until is not None else None,
        "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
    }
    if secret is not None:
        document["secret"] = secret
    return document


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # no-store: an answer may carry a secret
    return json_response(body, status, {"Cache-Control": "no-store"} | (headers or {}))


def _id(raw: str) -> int:
    return parse_id(raw, "webhook_id")


@blp.post("")
@authenticated(Role.STAFF)
@blp.arguments(WebhookCreateSchema())
@blp.response(201, WebhookSchema)
def create_webhook(body: dict[str, Any]) -> Response:
    """Register an endpoint; the answer holds its signing secret, once."""
    made = service.create_webhook(
        body["url"], body["event_types"], is_active=body["is_active"], created_by=current_user().id
    )
    location = url_for("webhooks.get_webhook", webhook_id=made.endpoint.id)
    return _json(_document(made.endpoint, made.secret), 201, {"Location": location})


@blp.get("")
@authenticated(Role.STAFF)
@blp.response(200, WebhookListSchema)
def list_webhooks() -> Response:
    """Every endpoint, oldest first (no secrets)."""
    return _json({"items": [_document(endpoint) for endpoint in service.list_webhooks()]})


@blp.get("/<webhook_id>")
@authenticated(Role.STAFF)
@blp.response(200, WebhookSchema)
@blp.alt_response(404, description="No such webhook")
def get_webhook(webhook_id: str) -> Response:
    return _json(_document(service.get_webhook(_id(webhook_id))))


@blp.patch("/<webhook_id>")
@authenticated(Role.STAFF)
@blp.arguments(WebhookPatchSchema(partial=True))
@blp.response(200, WebhookSchema)
@blp.alt_response(404, description="No such webhook")
def update_webhook(body: dict[str, Any], webhook_id: str) -> Response:
    """Change the URL, the event types, or turn it off and on (on again also clears why shop disabled it)."""
    changes = cast(service.WebhookChanges, body)
    return _json(_document(service.update_webhook(_id(webhook_id), changes)))


@blp.delete("/<webhook_id>")
@authenticated(Role.STAFF)
@blp.response(204)
@blp.alt_response(404, description="No such webhook")
def delete_webhook(webhook_id: str) -> Response:
    service.delete_webhook(_id(webhook_id))
    return Response(status=204)


@blp.post("/<webhook_id>/rotate-secret")
@authenticated(Role.STAFF)
@blp.response(200, WebhookSchema)
@blp.alt_response(404, description="No such webhook")
def rotate_secret(webhook_id: str) -> Response:
    """A new signing secret, in this answer only; the previous one keeps signing beside it for a while."""
    rotated = service.rotate_secret(_id(webhook_id))
    return _json(_document(rotated.endpoint, rotated.secret))


DELIVERY_STATUSES = ("pending", "delivered", "dead")


class DeliveryQuerySchema(PageArgsSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(DELIVERY_STATUSES))


class AttemptSchema(ma.Schema):
    attempted_at = ma.fields.String(metadata={"format": "date-time"})
    status_code = ma.fields.Integer(allow_none=True, metadata={"description": "the answer's; none: no answer"})
    error = ma.fields.String(allow_none=True)
    duration_ms = ma.fields.Integer()


class DeliverySchema(ma.Schema):
    id = ma.fields.UUID(metadata={"description": "sent as Shop-Delivery-Id; the same on every attempt"})
    event_id = ma.fields.UUID()
    resource = ma.fields.Dict(metadata={"example": {"type": "order", "id": 42}})
    sequence = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    next_attempt_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    give_up_at = ma.fields.String(metadata={"format": "date-time"})
    delivered_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    attempts = ma.fields.List(ma.fields.Nested(AttemptSchema))


DeliveryPageSchema = page_schema("DeliveryPage", DeliverySchema)


def _delivery_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed({"delivery_id": ["Must be a delivery's id (a UUID)."]}) from None


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "resource": {"type": delivery.resource_type, "id": delivery.resource_id},
        "sequence": delivery.sequence,
        "status": delivery.status,
        "next_attempt_at": _when(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "give_up_at": _when(delivery.give_up_at),
        "delivered_at": _when(delivery.delivered_at),
        "attempts": [
            {
                "attempted_at": _when(attempt.attempted_at),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
            }
            for attempt in attempts
        ],
    }


@blp.get("/<webhook_id>/deliveries")
@authenticated(Role.STAFF)
@blp.arguments(DeliveryQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, DeliveryPageSchema)
@blp.alt_response(404, description="No such webhook")
def list_deliveries(arguments: dict[str, Any], webhook_id: str) -> Response:
    """The endpoint's deliveries, newest first, each with its attempts and what the endpoint answered."""
    page, per_page = arguments["page"], arguments["per_page"]
    found = service.list_deliveries(_id(webhook_id), status=arguments.get("status"), page=page, per_page=per_page)
    items = [json.dumps(_delivery(view.delivery, view.attempts)) for view in found.deliveries]
    return Response(
        envelope_json(items, page, per_page, found.total),
        mimetype="application/json",
        headers={"Link": link_header(page, per_page, found.total), "Cache-Control": "no-store"},
    )


@blp.post("/<webhook_id>/deliveries/<delivery_id>/redeliver")
@authenticated(Role.STAFF)
@blp.response(200, DeliverySchema)
@blp.alt_response(404, description="No such webhook or delivery")
def redeliver(webhook_id: str, delivery_id: str) -> Response:
    """Send a delivery again now (a dead one too), with another day of retries."""
    again = service.redeliver(_id(webhook_id), _delivery_id(delivery_id))
    return _json(_delivery(again.delivery, again.attempts))
