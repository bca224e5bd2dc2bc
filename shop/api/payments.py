"""Payments: providers' signed notifications (no bearer token: the signature is the credential), and for staff the
notifications flagged for them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import Response, current_app
from flask import request as http_request

from shop.api.pagination import MAX_ID, PageArgsSchema, envelope_json, link_header
from shop.api.policy import authenticated
from shop.api.schemas import Blueprint, InputSchema
from shop.errors import ValidationFailed
from shop.extensions import db
from shop.models import NotificationKind, Role
from shop.repositories.money import MoneyRepository
from shop.security.provider_signatures import SIGNATURE_HEADER, BadSignature, verify
from shop.services.money_documents import notification_document
from shop.services.payments import Notification, process_notification

blp = Blueprint("payments", __name__, url_prefix="/api/v1/payments", description="Payments")

MONEY = r"^\d{1,10}(\.\d{1,2})?$"


class NotificationSchema(InputSchema):
    provider = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=40))
    reference = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    kind = ma.fields.Enum(NotificationKind, by_value=True, required=True)
    order_id = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    amount = ma.fields.String(
        required=True, validate=ma.validate.Regexp(MONEY, error="An amount like 12.34, in the currency's units.")
    )
    currency = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Z]{3}$", error="An ISO 4217 code, like USD.")
    )
    refund_id = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=1, max=MAX_ID), load_default=None)


class ProcessedSchema(ma.Schema):
    status = ma.fields.String(metadata={"enum": ["processed", "already processed"]})
    notification = ma.fields.Dict()


@blp.post("/notifications")
@blp.response(200, ProcessedSchema)
@blp.alt_response(401, description="bad-signature: unsigned, signed wrongly, by an unknown provider, or too old")
@blp.alt_response(422, description="validation-failed: the notification's fields")
@blp.doc(
    parameters=[{"in": "header", "name": SIGNATURE_HEADER, "required": True, "schema": {"type": "string"}}],
    requestBody={"content": {"application/json": {"schema": NotificationSchema}}},
)
def notify() -> Response:
    """A payment provider's notification (authorized, captured, failed, refunded), signed with the provider's secret.

    The same (provider, reference, kind) twice is answered `already processed` and changes nothing. One that does not
    fit its order is kept and flagged for staff (`outcome: flagged`), still with a 200: the provider need not retry."""
    raw = http_request.get_data(cache=True)
    body = _json_object(raw)
    provider = body.get("provider")
    secrets = current_app.config["PAYMENT_PROVIDER_SECRETS"].get(provider) if isinstance(provider, str) else None
    if not secrets:
        raise BadSignature(f"shop has no secret for the provider {provider!r}: it cannot check the signature.")
    tolerance = current_app.config["PAYMENT_NOTIFICATION_TOLERANCE_SECONDS"]
    verify(http_request.headers.get(SIGNATURE_HEADER), raw, secrets, tolerance=tolerance)
    try:
        fields = NotificationSchema().load(body)
    except ma.ValidationError as error:
        raise ValidationFailed(_messages(error.messages_dict)) from None
    processed = process_notification(
        Notification(
            provider=fields["provider"],
            reference=fields["reference"],
            kind=fields["kind"],
            order_id=fields["order_id"],
            amount=Decimal(fields["amount"]),
            currency=fields["currency"],
            refund_id=fields["refund_id"],
        )
    )
    status = "already processed" if processed.already_processed else "processed"
    return Response(json.dumps({"status": status, "notification": processed.notification}), mimetype="application/json")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValidationFailed({"_request": ["The body is not JSON."]}) from None
    if not isinstance(body, dict):
        raise ValidationFailed({"_request": ["The body must be a JSON object."]})
    return body


def _messages(messages: dict[str, Any]) -> dict[str, list[str]]:
    return {field: value if isinstance(value, list) else [str(value)] for field, value in messages.items()}


@blp.get("/flagged")
@authenticated(Role.STAFF)
@blp.arguments(PageArgsSchema(), location="query", unknown=ma.RAISE)
@blp.response(200, description="A page of flagged notifications, newest first, with a Link header")
def flagged(arguments: dict[str, Any]) -> Response:
    """Notifications that changed nothing and need a person: an amount or currency that does not fit, a capture for
    an order no longer pending, an unknown order, a refund shop did not ask for."""
    page, per_page = arguments["page"], arguments["per_page"]
    rows, total = MoneyRepository(db.session()).flagged(page=page, per_page=per_page)
    body = envelope_json([json.dumps(notification_document(row)) for row in rows], page, per_page, total)
    return Response(body, mimetype="application/json", headers={"Link": link_header(page, per_page, total)})
