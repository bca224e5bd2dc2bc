"""Placing an order: one short transaction, products locked in id order, idempotent under retries.

    claim the Idempotency-Key (a concurrent twin waits on its unique index, then replays our answer)
    lock every product of the order: SELECT ... WHERE id IN (...) ORDER BY id FOR UPDATE
        (one round trip with the claim; the key's record and a reserved order id come back with the rows)
    check the stock; build the answer
    decrement the stock (allow_partial: each line in a savepoint of its own, the CHECK decides), insert the
    order, its lines (price and name snapshots) and first history entry, store the answer with the key
    commit

An out-of-stock answer writes nothing but the key's record of that answer, so a retry gets it again.
The statements are in shop/repositories/placement.py: prepared, two round trips with BEGIN and COMMIT (the hottest
transaction).
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
from sqlalchemy.exc import IntegrityError

from shop.errors import PROBLEM_TYPE_PREFIX, DomainError, ValidationFailed
from shop.models import IdempotencyRecord
from shop.observability.metrics import ORDERS_PLACED, OUT_OF_STOCK
from shop.repositories.placement import ClaimedKey, Locked, LockedProduct, PlacedLine, PlacedOrder, PlacementRepository
from shop.security.principal import Principal
from shop.services.order_documents import order_document
from shop.services.transactions import bounded_waits, run_transaction
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


def place_order(user: Principal, request: OrderRequest, idempotency_key: str | None = None) -> OrderAnswer:
    answer = run_transaction(lambda uow: _place(uow, user, request, idempotency_key), work_sends_waits=True)
    if not answer.replayed:
        if answer.status == 201:
            ORDERS_PLACED.inc()
        elif answer.status == 409:
            OUT_OF_STOCK.inc()
    return answer


def _place(uow: UnitOfWork, user: Principal, request: OrderRequest, key: str | None) -> OrderAnswer:
    placement = uow.placement
    fingerprint = request.fingerprint() if key is not None else ""
    locked = placement.claim_and_lock(
        bounded_waits(),
        [line.product_id for line in request.lines],
        (user.id, key, fingerprint) if key is not None else None,
    )
    products = locked.products if locked is not None else {}
    unknown = {
        f"items.{index}.product_id": ["No such product, or it is not for sale."]
        for index, line in enumerate(request.lines)
        if line.product_id not in products or not products[line.product_id].is_active
    }
    record = locked.key_record if locked is not None else None
    if record is not None:
        if record.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request; use a new key for a new order."
            )
        if record.response_status is not None:
            # the first request's answer; nothing was written here (the claim found the key taken)
            return OrderAnswer(record.response_status, record.response_body or "{}", replayed=True)
    if unknown or locked is None:
        raise ValidationFailed(unknown)
    if key is not None and record is None:
        raise RuntimeError("the Idempotency-Key was claimed but its record was not read back")

    # nothing is written before the stock is known to suffice (allow_partial lines have savepoints of their
    # own), so an out-of-stock answer leaves only the key's record of it
    answer = _take_stock_and_write(uow, user, request, locked, record)
    uow.commit()
    return answer


def _take_stock_and_write(
    uow: UnitOfWork, user: Principal, request: OrderRequest, locked: Locked, record: ClaimedKey | None
) -> OrderAnswer:
    placement = uow.placement
    products = locked.products
    if request.allow_partial:
        kept, dropped = _take_each_in_a_savepoint(uow, products, request.lines)
        if not kept:
            return _refused(placement, user, record, _out_of_stock(dropped, "None of the lines can be filled."))
    else:
        short = [_shortfall(line, products[line.product_id]) for line in request.lines]
        if any(short):
            detail = "Not enough stock for some lines; nothing was ordered."
            return _refused(placement, user, record, _out_of_stock([s for s in short if s], detail))
        kept, dropped = list(request.lines), []

    categories_seen: set[str] = set()
    items = [_order_line(products[line.product_id], line.quantity, categories_seen) for line in kept]
    order = PlacedOrder(
        id=locked.order_id,
        user_id=user.id,
        currency=current_app.config["CURRENCY"],
        items=items,
        total=sum((item.line_total for item in items), Decimal("0.00")),
        units=sum(item.quantity for item in items),
        shipping_address=request.shipping_address,
        dropped_lines=dropped,
        created_at=locked.placed_at,
    )
    # the answer is known before anything is written (the id was reserved), so it goes in the same round trip
    answer = OrderAnswer.of(201, order_document(order))
    placement.write(
        order,
        take_from=None if request.allow_partial else products,
        answer=(record.id, answer.status, answer.body) if record is not None else None,
    )
    return answer


def _refused(
    placement: PlacementRepository, user: Principal, record: ClaimedKey | None, answer: OrderAnswer
) -> OrderAnswer:
    if record is not None:
        keep = current_app.config["IDEMPOTENCY_REFUSALS_PER_USER"]
        placement.record_refusal(record.id, answer.status, answer.body, user_id=user.id, keep=keep)
    return answer


def _order_line(product: LockedProduct, quantity: int, categories_seen: set[str]) -> PlacedLine:
    # snapshots: what the customer saw at this moment, whatever the product becomes
    first_in_category = product.category not in categories_seen
    categories_seen.add(product.category)
    return PlacedLine(
        product_id=product.id,
        sku=product.sku,
        name=product.name,
        quantity=quantity,
        unit_price=product.price,
        line_total=product.price * quantity,
        category=product.category,
        first_in_category=first_in_category,
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
            uow.placement.take_stock(products, {line.product_id: line.quantity})
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
