"""Orders: customers place and see their own; staff see all. Another customer's order is a 404."""

from __future__ import annotations

import json
import re
from typing import Any

import marshmallow as ma
from flask import Response, url_for
from flask import request as http_request

from shop.api.pagination import MAX_ID, PageArgsSchema, envelope_json, link_header, page_schema, parse_id
from shop.api.policy import authenticated, current_user, require_at_least
from shop.api.responses import json_response
from shop.api.schemas import Blueprint, InputSchema
from shop.errors import Gone, ValidationFailed, handle_domain_error
from shop.models import Order, OrderStatus, OrderStatusChange, Role
from shop.services import cancelling
from shop.services.order_documents import order_document
from shop.services.order_lifecycle import Action, transition
from shop.services.order_reads import read_order, read_order_page
from shop.services.ordering import NotEnoughStockForOrder, OrderLine, OrderPlaced, OrderRequest, place_order

blp = Blueprint("orders", __name__, url_prefix="/api/v1/orders", description="Orders")

MAX_LINES = 50
MAX_QUANTITY = 1000
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as header values should be


class OrderLineSchema(InputSchema):
    product_id = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    quantity = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_QUANTITY))


class AddressSchema(InputSchema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    line1 = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    line2 = ma.fields.String(load_default="", validate=ma.validate.Length(max=200))
    city = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    postal_code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=20))
    country = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Z]{2}$", error="Use an ISO 3166 two-letter code, like US.")
    )


class PlaceOrderSchema(InputSchema):
    items = ma.fields.List(
        ma.fields.Nested(OrderLineSchema), required=True, validate=ma.validate.Length(min=1, max=MAX_LINES)
    )
    shipping_address = ma.fields.Nested(AddressSchema, required=True)
    allow_partial = ma.fields.Boolean(load_default=False)

    @ma.validates_schema
    def each_product_once(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen: set[int] = set()
        for line in data.get("items", []):
            if line["product_id"] in seen:
                raise ma.ValidationError(
                    f"Product {line['product_id']} appears twice; send one line per product with the total quantity.",
                    field_name="items",
                )
            seen.add(line["product_id"])


class OrderItemSchema(ma.Schema):
    product_id = ma.fields.Integer()
    sku = ma.fields.String()
    name = ma.fields.String()
    quantity = ma.fields.Integer()
    unit_price = ma.fields.String(metadata={"example": "19.99"})
    line_total = ma.fields.String(metadata={"example": "39.98"})


class OrderSchema(ma.Schema):
    """An order (documentation; responses come from shop.services.order_documents)."""

    id = ma.fields.Integer()
    user_id = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": [status.value for status in OrderStatus]})
    currency = ma.fields.String(metadata={"example": "USD"})
    items = ma.fields.List(ma.fields.Nested(OrderItemSchema))
    total = ma.fields.String(metadata={"example": "39.98"})
    shipping_address = ma.fields.Nested(AddressSchema)
    created_at = ma.fields.String(metadata={"format": "date-time"})
    updated_at = ma.fields.String(metadata={"format": "date-time"})
    paid_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    shipped_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    delivered_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    cancelled_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    dropped_lines = ma.fields.List(ma.fields.Dict(), metadata={"description": "allow_partial: lines left out"})
    history = ma.fields.List(ma.fields.Dict(), metadata={"description": "staff only"})


OrderPageSchema = page_schema("OrderPage", OrderSchema)


class OrderQuerySchema(PageArgsSchema):
    status = ma.fields.Enum(OrderStatus, by_value=True)
    user_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID), metadata={"description": "staff only"})


def order_json(order: Order, history: list[OrderStatusChange] | None) -> Response:
    return json_response(order_document(order, history))


def idempotency_key() -> str | None:
    key = http_request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationFailed({"Idempotency-Key": ["Use 1 to 255 visible ASCII characters."]})
    return key


def parse_order_id(raw: str) -> int:
    return parse_id(raw, "order_id")


@blp.post("")
@authenticated()
@blp.arguments(PlaceOrderSchema())
@blp.response(201, OrderSchema)
@blp.alt_response(409, description="out-of-stock: nothing was ordered; the problem lists the short lines")
@blp.alt_response(503, description="Busy: retry after Retry-After seconds, with the same Idempotency-Key")
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "schema": {"type": "string", "maxLength": 255}}])
def create_order(body: dict[str, Any]) -> Response:
    """Place an order. Send an Idempotency-Key to make retries safe: the same key gets the same answer."""
    key = idempotency_key()
    order_request = OrderRequest(
        lines=[OrderLine(line["product_id"], line["quantity"]) for line in body["items"]],
        shipping_address=body["shipping_address"],
        allow_partial=body["allow_partial"],
    )
    outcome = place_order(current_user(), order_request, key)
    if isinstance(outcome, OrderPlaced):
        location = url_for("orders.get_order", order_id=outcome.order_id)
        response = Response(outcome.document, status=201, mimetype="application/json", headers={"Location": location})
    else:
        response = handle_domain_error(NotEnoughStockForOrder(outcome.detail, lines=outcome.lines))
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blp.get("/<order_id>")
@authenticated()
@blp.response(200, OrderSchema)
@blp.alt_response(404, description="No such order, or not yours")
def get_order(order_id: str) -> Response:
    """One order, to its owner or to staff (who also see its status history)."""
    view = read_order(parse_order_id(order_id), current_user())
    return json_response(order_document(view.order, view.history))


class CancelSchema(InputSchema):
    reason = ma.fields.String(validate=ma.validate.Length(min=1, max=2000))


def _after(order_id: str, action: Action, *, reason: str | None = None) -> Response:
    done = transition(parse_order_id(order_id), current_user(), action, reason=reason)
    return order_json(done.order, done.history)


class PaymentsAreConfirmed(Gone):
    slug = "payments-are-confirmed"
    title = "Payments are confirmed, not claimed"


@blp.post("/<order_id>/pay")
@blp.response(410, description="Gone: an order is paid by its provider's notification, or by staff")
def pay_order(order_id: str) -> Response:
    """Gone. An order becomes paid when its payment provider confirms the capture (POST /api/v1/payments/notifications)
    or when staff record a payment by hand (POST /api/v1/orders/{id}/payments)."""
    raise PaymentsAreConfirmed(
        "Nobody marks an order paid by asking: it is paid when the payment provider's notification confirms the "
        "capture, or when staff record a payment (POST /api/v1/orders/{id}/payments).",
    )


@blp.post("/<order_id>/ship")
@authenticated(Role.STAFF)
@blp.response(200, OrderSchema)
@blp.alt_response(409, description="Not paid; the problem names the current status")
def ship_order(order_id: str) -> Response:
    """Mark a paid order shipped (staff)."""
    return _after(order_id, Action.SHIP)


@blp.post("/<order_id>/deliver")
@authenticated(Role.STAFF)
@blp.response(200, OrderSchema)
@blp.alt_response(409, description="Not shipped; the problem names the current status")
def deliver_order(order_id: str) -> Response:
    """Mark a shipped order delivered (staff)."""
    return _after(order_id, Action.DELIVER)


@blp.post("/<order_id>/cancel")
@authenticated()
@blp.arguments(CancelSchema())
@blp.response(200, OrderSchema)
@blp.alt_response(404, description="No such order, or not yours")
@blp.alt_response(409, description="Shipped, delivered or already cancelled")
def cancel_order(body: dict[str, Any], order_id: str) -> Response:
    """Cancel a pending or paid order (its owner or staff); its units go back in stock, once, and what was paid for it
    is refunded in full (pending until the provider confirms, when a provider took the money)."""
    done = cancelling.cancel_order(parse_order_id(order_id), current_user(), body.get("reason"))
    return order_json(done.order, done.history)


@blp.get("")
@authenticated()
@blp.arguments(OrderQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, OrderPageSchema, description="A page of orders, newest first, with a Link header")
def list_orders(arguments: dict[str, Any]) -> Response:
    """Customers see their own orders; staff see everyone's and may filter by user_id."""
    user = current_user()
    if "user_id" in arguments:
        require_at_least(user, Role.STAFF, "user_id")
    status = arguments["status"].value if "status" in arguments else None
    page, per_page = arguments["page"], arguments["per_page"]
    found = read_order_page(user, customer_id=arguments.get("user_id"), status=status, page=page, per_page=per_page)
    body = envelope_json([json.dumps(order_document(order)) for order in found.orders], page, per_page, found.total)
    return Response(body, mimetype="application/json", headers={"Link": link_header(page, per_page, found.total)})
