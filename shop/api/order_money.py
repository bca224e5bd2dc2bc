"""An order's money and returns: staff record payments by hand and refund; customers ask for returns, staff receive
them. The order's owner may read its refunds and returns; its ledger and notifications are for staff."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import Response, url_for

from shop.api.orders import MAX_LINES, MAX_QUANTITY, idempotency_key, order_json, parse_order_id
from shop.api.pagination import MAX_ID, parse_id
from shop.api.payments import MONEY
from shop.api.policy import authenticated, current_user
from shop.api.responses import json_response
from shop.api.schemas import Blueprint, InputSchema
from shop.errors import DomainError
from shop.extensions import db
from shop.models import Role
from shop.repositories.money import MoneyRepository
from shop.services.money_documents import ledger_document, notification_document
from shop.services.order_reads import read_order
from shop.services.payments import record_manual_payment
from shop.services.refunds import LineRequest, RefundRequest, create_refund, refunds_of
from shop.services.returns import ReceivedLine, receive_return, request_return, returns_of

blp = Blueprint("order_money", __name__, url_prefix="/api/v1/orders", description="Payments, refunds and returns")


def _amount(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Regexp(MONEY, error="An amount like 12.34."), **kwargs)


def _lines(line_schema: type[ma.Schema], **kwargs: Any) -> ma.fields.List[Any]:
    return ma.fields.List(ma.fields.Nested(line_schema), validate=ma.validate.Length(min=1, max=MAX_LINES), **kwargs)


class ManualPaymentSchema(InputSchema):
    reference = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    amount = _amount(metadata={"description": "if given, must be the order's total"})


class LineSchema(InputSchema):
    product_id = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    quantity = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_QUANTITY))


def _each_product_once(data: dict[str, Any]) -> None:
    products = [line["product_id"] for line in data.get("lines", [])]
    if len(products) != len(set(products)):
        raise ma.ValidationError("Name each product once.", field_name="lines")


class RefundSchema(InputSchema):
    lines = _lines(LineSchema, load_default=list)
    amount = _amount(metadata={"description": "the money to give back; by default the lines' value"})
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
    restock = ma.fields.Boolean(load_default=False)
    return_id = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=1, max=MAX_ID))

    @ma.validates_schema
    def lines_or_amount(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("lines") and "amount" not in data:
            raise ma.ValidationError("Give lines to refund, an amount, or both.", field_name="_request")
        if "amount" in data and Decimal(data["amount"]) <= 0:
            raise ma.ValidationError("A refund gives back more than nothing.", field_name="amount")
        if data.get("restock") and not data.get("lines"):
            raise ma.ValidationError("Name the lines to restock.", field_name="restock")
        _each_product_once(data)


class ReturnSchema(InputSchema):
    lines = _lines(LineSchema, required=True)
    reason = ma.fields.String(validate=ma.validate.Length(min=1, max=2000))

    @ma.validates_schema
    def once(self, data: dict[str, Any], **kwargs: Any) -> None:
        _each_product_once(data)


class ReceivedLineSchema(InputSchema):
    product_id = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    received = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=0, max=MAX_QUANTITY))
    damaged = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=0, max=MAX_QUANTITY))


class ReceiveSchema(InputSchema):
    lines = _lines(ReceivedLineSchema, required=True)

    @ma.validates_schema
    def once(self, data: dict[str, Any], **kwargs: Any) -> None:
        _each_product_once(data)


@blp.post("/<order_id>/payments")
@authenticated(Role.STAFF)
@blp.arguments(ManualPaymentSchema())
@blp.response(200, description="The order, paid, with its history")
@blp.alt_response(404, description="No such order")
@blp.alt_response(409, description="Not pending")
def record_payment(body: dict[str, Any], order_id: str) -> Response:
    """Record a payment taken by hand (cash, a bank transfer): it goes in the ledger and the order is paid (staff)."""
    amount = Decimal(body["amount"]) if "amount" in body else None
    done = record_manual_payment(parse_order_id(order_id), current_user(), body["reference"], amount)
    return order_json(done.order, done.history)


@blp.get("/<order_id>/payments")
@authenticated(Role.STAFF)
@blp.response(200, description="The order's ledger entries and the providers' notifications about it")
@blp.alt_response(404, description="No such order")
def list_payments(order_id: str) -> Response:
    """The money of an order: its ledger (captures, payments by hand, refunds paid out) and its notifications."""
    view = read_order(parse_order_id(order_id), current_user())
    money = MoneyRepository(db.session())
    return json_response({
        "ledger": [ledger_document(entry) for entry in money.entries(view.order.id)],
        "notifications": [notification_document(row) for row in money.notifications(view.order.id)],
    })  # fmt: skip


@blp.post("/<order_id>/refunds")
@authenticated(Role.STAFF)
@blp.arguments(RefundSchema())
@blp.response(201, description="The refund: succeeded (paid by hand) or pending (the provider will confirm)")
@blp.alt_response(404, description="No such order")
@blp.alt_response(400, description="idempotency-key-required")
@blp.alt_response(409, description="nothing-paid: nothing was paid for the order")
@blp.alt_response(422, description="over-refund, or lines that are not the order's or were refunded already")
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"}}])
def refund(body: dict[str, Any], order_id: str) -> Response:
    """Give money back (staff; an Idempotency-Key is required: the same key gets the same answer, and never a second
    refund). Never more than was paid less what was refunded; `restock` puts the refunded lines' units back."""
    key = idempotency_key()
    if key is None:
        raise IdempotencyKeyRequired("Send an Idempotency-Key header: a retried refund must never pay out twice.")
    request = RefundRequest(
        lines=[LineRequest(line["product_id"], line["quantity"]) for line in body["lines"]],
        amount=Decimal(body["amount"]) if "amount" in body else None,
        reason=body["reason"],
        restock=body["restock"],
        return_id=body.get("return_id"),
    )
    number = parse_order_id(order_id)
    answer = create_refund(number, current_user(), request, key)
    location = url_for("order_money.list_refunds", order_id=number)
    headers = {"Location": location} | ({"Idempotent-Replayed": "true"} if answer.replayed else {})
    return Response(answer.document, status=201, mimetype="application/json", headers=headers)


class IdempotencyKeyRequired(DomainError):
    slug = "idempotency-key-required"
    title = "Idempotency-Key required"


@blp.get("/<order_id>/refunds")
@authenticated()
@blp.response(200, description="The order's refunds, oldest first")
@blp.alt_response(404, description="No such order, or not yours")
def list_refunds(order_id: str) -> Response:
    """An order's refunds, to its owner or staff."""
    view = read_order(parse_order_id(order_id), current_user())
    return json_response({"items": refunds_of(db.session(), view.order.id)})


@blp.post("/<order_id>/returns")
@authenticated()
@blp.arguments(ReturnSchema())
@blp.response(201, description="The return, requested")
@blp.alt_response(404, description="No such order, or not yours")
@blp.alt_response(409, description="not-returnable: not delivered, or the return window has closed")
def ask_return(body: dict[str, Any], order_id: str) -> Response:
    """Ask to return lines of a delivered order, within RETURN_WINDOW_DAYS of its delivery (its owner, or staff)."""
    lines = [LineRequest(line["product_id"], line["quantity"]) for line in body["lines"]]
    document = request_return(parse_order_id(order_id), current_user(), lines, body.get("reason"))
    return json_response(document, 201)


@blp.get("/<order_id>/returns")
@authenticated()
@blp.response(200, description="The order's returns, oldest first")
@blp.alt_response(404, description="No such order, or not yours")
def list_returns(order_id: str) -> Response:
    """An order's returns, to its owner or staff."""
    view = read_order(parse_order_id(order_id), current_user())
    return json_response({"items": returns_of(db.session(), view.order.id)})


@blp.post("/<order_id>/returns/<return_id>/receive")
@authenticated(Role.STAFF)
@blp.arguments(ReceiveSchema())
@blp.response(200, description="The return, received")
@blp.alt_response(404, description="No such order or return")
@blp.alt_response(409, description="return-already-received")
def receive(body: dict[str, Any], order_id: str, return_id: str) -> Response:
    """Receive a return (staff): per line, the units fit to sell (back in stock) and the damaged ones (not). Lines
    not named came back with nothing."""
    lines = [ReceivedLine(line["product_id"], line["received"], line["damaged"]) for line in body["lines"]]
    document = receive_return(parse_order_id(order_id), parse_id(return_id, "return_id"), current_user(), lines)
    return json_response(document)
