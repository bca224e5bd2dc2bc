"""Placing an order: one short transaction, products locked in id order, idempotent under retries.

    claim the Idempotency-Key (a concurrent twin waits on its unique index, then replays our answer)
    lock every product of the order: SELECT ... WHERE id IN (...) ORDER BY id FOR UPDATE
    check and decrement stock (allow_partial: each line in a savepoint of its own, the CHECK decides)
    insert the order, its lines (price and name snapshots) and its first history entry
    store the answer with the key, commit

An out-of-stock answer writes nothing but the key's record of that answer, so a retry gets it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shop.errors import PROBLEM_TYPE_PREFIX, DomainError, ValidationFailed
from shop.models import IdempotencyRecord, Order, OrderItem, User
from shop.observability.metrics import ORDERS_PLACED, OUT_OF_STOCK
from shop.repositories.products import LockedProduct
from shop.services.order_documents import order_document
from shop.services.transactions import run_transaction
from shop.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class OrderRequest:
    lines: Sequence[OrderLine]
    shipping_address: dict[str, str]
    allow_partial: bool = False

    def fingerprint(self) -> str:
        canonical = {
            "items": [[line.product_id, line.quantity] for line in self.lines],
            "shipping_address": self.shipping_address,
            "allow_partial": self.allow_partial,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class OrderAnswer:
    """What the client is told, as JSON text: an order (201) or an out-of-stock problem (409); replayed or not."""

    status: int
    body: str
    replayed: bool = False

    @classmethod
    def of(cls, status: int, document: dict[str, Any]) -> OrderAnswer:
        return cls(status, json.dumps(document))

    @property
    def order_id(self) -> int | None:
        return int(json.loads(self.body)["id"]) if self.status == 201 else None


class IdempotencyKeyReused(DomainError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused"


def place_order(user: User, request: OrderRequest, idempotency_key: str | None = None) -> OrderAnswer:
    answer = run_transaction(lambda uow: _place(uow, user, request, idempotency_key))
    if not answer.replayed:
        if answer.status == 201:
            ORDERS_PLACED.inc()
        elif answer.status == 409:
            OUT_OF_STOCK.inc()
    return answer


def _place(uow: UnitOfWork, user: User, request: OrderRequest, key: str | None) -> OrderAnswer:
    record = None
    if key is not None:
        record = _claim(uow.session, user.id, key, request.fingerprint())
        if record.response_status is not None:
            return OrderAnswer(record.response_status, record.response_body or "{}", replayed=True)

    # nothing is written before the stock is known to suffice (allow_partial lines have savepoints of their
    # own), so an out-of-stock answer leaves only the key's record of it
    answer = _take_stock_and_write(uow, user, request)
    if record is not None:
        _record_answer(uow.session, record, answer)
    uow.commit()
    return answer


def _record_answer(session: Session, record: ClaimedKey, answer: OrderAnswer) -> None:
    """Store the answer with its key, in the order's transaction: one plain UPDATE, no ORM flush."""
    session.execute(RECORD_ANSWER, {"record_id": record.id, "status": answer.status, "body": answer.body})


@dataclass(frozen=True)
class ClaimedKey:
    id: int
    request_fingerprint: str
    response_status: int | None
    response_body: str | None


# the statements of every order, built once (building one costs more than running a cached one)
_CLAIMED_KEY_COLUMNS = (
    IdempotencyRecord.id,
    IdempotencyRecord.request_fingerprint,
    IdempotencyRecord.response_status,
    IdempotencyRecord.response_body,
)
CLAIM_KEY = (
    insert(IdempotencyRecord)
    .values(user_id=sa.bindparam("user_id"), key=sa.bindparam("key"), request_fingerprint=sa.bindparam("fingerprint"))
    .on_conflict_do_nothing(index_elements=["user_id", "key"])
    .returning(*_CLAIMED_KEY_COLUMNS)
)
HELD_KEY = sa.select(*_CLAIMED_KEY_COLUMNS).where(
    IdempotencyRecord.user_id == sa.bindparam("user_id"), IdempotencyRecord.key == sa.bindparam("key")
)
RECORD_ANSWER = (
    sa.update(IdempotencyRecord)
    .where(IdempotencyRecord.id == sa.bindparam("record_id"))
    .values(response_status=sa.bindparam("status"), response_body=sa.bindparam("body"))
    .execution_options(synchronize_session=False)
)


def _claim(session: Session, user_id: int, key: str, fingerprint: str) -> ClaimedKey:
    """Insert the key, or wait for the transaction that holds it and read what it recorded."""
    claimed = session.execute(CLAIM_KEY, {"user_id": user_id, "key": key, "fingerprint": fingerprint}).one_or_none()
    if claimed is not None:
        return ClaimedKey(*claimed)  # a new key: nobody else holds it
    record = ClaimedKey(*session.execute(HELD_KEY, {"user_id": user_id, "key": key}).one())
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request; use a new key for a new order."
        )
    return record


def _take_stock_and_write(uow: UnitOfWork, user: User, request: OrderRequest) -> OrderAnswer:
    products = uow.products.lock_stock([line.product_id for line in request.lines])
    unknown = {
        f"items.{index}.product_id": ["No such product, or it is not for sale."]
        for index, line in enumerate(request.lines)
        if line.product_id not in products or not products[line.product_id].is_active
    }
    if unknown:
        raise ValidationFailed(unknown)

    if request.allow_partial:
        kept, dropped = _take_each_in_a_savepoint(uow, products, request.lines)
        if not kept:
            return _out_of_stock(dropped, "None of the lines can be filled.")
    else:
        short = [_shortfall(line, products[line.product_id]) for line in request.lines]
        if any(short):
            return _out_of_stock([s for s in short if s], "Not enough stock for some lines; nothing was ordered.")
        uow.products.take_stock({line.product_id: line.quantity for line in request.lines})
        kept, dropped = list(request.lines), []

    items = [_order_item(products[line.product_id], line.quantity) for line in kept]
    order = Order(
        user_id=user.id,
        currency=current_app.config["CURRENCY"],
        shipping_address=request.shipping_address,
        dropped_lines=dropped,
        items=items,
        total=sum((item.line_total for item in items), Decimal("0.00")),
        units=sum(item.quantity for item in items),
    )
    uow.orders.insert_placed(order)
    return OrderAnswer.of(201, order_document(order))


def _order_item(product: LockedProduct, quantity: int) -> OrderItem:
    # snapshots: what the customer saw at this moment, whatever the product becomes
    return OrderItem(
        product_id=product.id,
        sku=product.sku,
        name=product.name,
        quantity=quantity,
        unit_price=product.price,
        line_total=product.price * quantity,
    )


def _shortfall(line: OrderLine, product: LockedProduct) -> dict[str, int] | None:
    if product.stock >= line.quantity:
        return None
    return {"product_id": line.product_id, "requested": line.quantity, "available": product.stock}


def _take_each_in_a_savepoint(
    uow: UnitOfWork, products: dict[int, LockedProduct], lines: Sequence[OrderLine]
) -> tuple[list[OrderLine], list[dict[str, int]]]:
    """Each line's stock step alone: the stock >= 0 CHECK refuses a short one, and only that savepoint rolls back.

    Lines are at most 50 (validated at the edge), well under PostgreSQL's 64 cached subtransactions.
    """
    kept, dropped = [], []
    for line in lines:
        savepoint = uow.session.begin_nested()
        try:
            uow.products.take_stock({line.product_id: line.quantity})
        except IntegrityError:
            savepoint.rollback()
            available = products[line.product_id].stock
            dropped.append({"product_id": line.product_id, "requested": line.quantity, "available": available})
        else:
            savepoint.commit()
            kept.append(line)
    return kept, dropped


def _out_of_stock(lines: list[dict[str, int]], detail: str) -> OrderAnswer:
    return OrderAnswer.of(
        409,
        {
            "type": PROBLEM_TYPE_PREFIX + "out-of-stock",
            "title": "Out of stock",
            "status": 409,
            "detail": detail,
            "lines": lines,
        },
    )


def purge_idempotency_records(older_than_hours: int) -> int:
    """Forget keys older than this; a retry with one of them after that is a new order."""
    cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, older_than_hours)
    with UnitOfWork() as uow:
        result = uow.session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
        uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)
