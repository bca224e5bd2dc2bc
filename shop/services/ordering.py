"""Placing an order: one short transaction, products locked in id order, idempotent under retries.

    claim the Idempotency-Key (a concurrent twin waits on its unique index, then replays our answer)
    count the order in its customer's unpaid ones (their row stays locked: their orders are counted one at a time)
    lock every product of the order: SELECT ... WHERE id IN (...) ORDER BY id FOR UPDATE
        (one round trip with the claim; the key's record, the customer's unpaid counts and a reserved order id
        come back with the rows)
    check the customer's unpaid limit (over it: everything is rolled back) and the stock; build the answer
    decrement the stock (allow_partial: each line in a savepoint of its own, the CHECK decides), insert the
    order, its lines (price and name snapshots) and first history entry, store the answer with the key
    commit

The outcome is the order placed, or refused for stock with the short lines, either one perhaps replayed from
the key's record; the API renders it. An out-of-stock outcome writes nothing but the key's record of it, so a
retry gets it again. The statements are in shop/repositories/placement.py (two round trips, BEGIN and COMMIT
included: see shop/db/statements.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app

from shop.db.transactions import run_transaction
from shop.errors import Conflict, Unprocessable, ValidationFailed
from shop.models import EventType
from shop.observability.metrics import ORDERS_PLACED, OUT_OF_STOCK
from shop.repositories.placement import (
    ClaimedKey,
    KeyAnswer,
    KeyClaim,
    Locked,
    LockedProduct,
    NotEnoughStock,
    PlacedLine,
    PlacedOrder,
    Unpaid,
)
from shop.security.principal import Principal
from shop.services.order_documents import order_document
from shop.services.product_events import record_product_events
from shop.services.unit_of_work import AbstractUnitOfWork, UnitOfWork


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
class OrderPlaced:
    """The order was placed (or had been, by the first request with this Idempotency-Key: `replayed`).

    `document` is the order's JSON text (shop/services/order_documents.py), made once: it is the answer, and
    the key's record keeps it for replays."""

    order_id: int
    document: str
    replayed: bool = False


@dataclass(frozen=True)
class OutOfStock:
    """Nothing was ordered: these lines are short (each `product_id`, `requested`, `available`)."""

    detail: str
    lines: list[dict[str, int]]
    replayed: bool = False

    def to_json(self) -> str:
        return json.dumps({"detail": self.detail, "lines": self.lines})


PlacementOutcome = OrderPlaced | OutOfStock

# the key's record keeps an outcome as a code and a JSON text: the code is the HTTP status its first answer had,
# as records written by earlier versions say (a refusal's text is then a whole problem document, which holds
# the same detail and lines)
PLACED_CODE, OUT_OF_STOCK_CODE = 201, 409


def _kept(outcome: PlacementOutcome) -> tuple[int, str]:
    if isinstance(outcome, OrderPlaced):
        return PLACED_CODE, outcome.document
    return OUT_OF_STOCK_CODE, outcome.to_json()


def _replayed(record: ClaimedKey) -> PlacementOutcome:
    body = json.loads(record.response_body or "{}")
    if record.response_status == PLACED_CODE:
        return OrderPlaced(int(body["id"]), record.response_body or "{}", replayed=True)
    return OutOfStock(body["detail"], body["lines"], replayed=True)


class NotEnoughStockForOrder(Conflict):
    """An OutOfStock outcome, told as a problem: its detail and its short `lines`."""

    slug = "out-of-stock"
    title = "Out of stock"


class UnpaidLimitReached(Conflict):
    """The customer already holds as much unpaid as one account may (UNPAID_ORDERS_PER_CUSTOMER, _UNITS_)."""

    slug = "unpaid-limit"
    title = "Too much unpaid"


class IdempotencyKeyReused(Unprocessable):
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused"


def place_order(
    user: Principal,
    request: OrderRequest,
    idempotency_key: str | None = None,
    *,
    unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork,
) -> PlacementOutcome:
    outcome = run_transaction(lambda uow: _place(uow, user, request, idempotency_key), unit_of_work=unit_of_work)
    if not outcome.replayed:
        (ORDERS_PLACED if isinstance(outcome, OrderPlaced) else OUT_OF_STOCK).inc()
    return outcome


def _place(uow: AbstractUnitOfWork, user: Principal, request: OrderRequest, key: str | None) -> PlacementOutcome:
    claim = KeyClaim(user.id, key, request.fingerprint()) if key is not None else None
    units = sum(line.quantity for line in request.lines)
    locked = uow.placement.claim_and_lock(user.id, [line.product_id for line in request.lines], units, claim)
    products = locked.products if locked is not None else {}
    unknown = {
        f"items.{index}.product_id": ["No such product, or it is not for sale."]
        for index, line in enumerate(request.lines)
        if line.product_id not in products or not products[line.product_id].is_active
    }
    record = locked.key_record if locked is not None else None
    if record is not None and claim is not None:
        if record.request_fingerprint != claim.fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request; use a new key for a new order."
            )
        if record.response_status is not None:
            # the first request's answer; nothing was written here (the claim found the key taken)
            return _replayed(record)
    if unknown or locked is None:
        raise ValidationFailed(unknown)
    if claim is not None and record is None:
        raise RuntimeError("the Idempotency-Key was claimed but its record was not read back")
    _check_unpaid_limit(locked.unpaid)

    # nothing is written before the stock is known to suffice (allow_partial lines have savepoints of their
    # own), so an out-of-stock answer leaves only the key's record of it
    outcome = _take_stock_and_write(uow, user, request, locked, record)
    uow.commit()
    return outcome


def _check_unpaid_limit(unpaid: Unpaid) -> None:
    """Refuse an order that would take the customer past what one account may hold unpaid (0: no limit). Raised
    before anything is written: the whole transaction, the counting of this order included, rolls back."""
    config = current_app.config
    max_orders, max_units = config["UNPAID_ORDERS_PER_CUSTOMER"], config["UNPAID_UNITS_PER_CUSTOMER"]
    if max_orders and unpaid.orders > max_orders:
        raise UnpaidLimitReached(
            f"You have {unpaid.orders - 1} unpaid orders, the most one account may hold; pay or cancel one first.",
            limit=max_orders,
        )
    if max_units and unpaid.units > max_units:
        raise UnpaidLimitReached(
            f"This order would make {unpaid.units} unpaid units, over the {max_units} one account may hold; "
            "pay or cancel an order first, or order fewer.",
            limit_units=max_units,
        )


def _take_stock_and_write(
    uow: AbstractUnitOfWork, user: Principal, request: OrderRequest, locked: Locked, record: ClaimedKey | None
) -> PlacementOutcome:
    products = locked.products
    if request.allow_partial:
        kept, dropped = _take_each_in_a_savepoint(uow, products, request.lines)
        if not kept:
            return _refused(uow, user, record, OutOfStock("None of the lines can be filled.", dropped), request)
        if dropped:  # their units were counted unpaid with the rest
            uow.placement.release_unpaid(user.id, orders=0, units=sum(line["requested"] for line in dropped))
    else:
        short = [_shortfall(line, products[line.product_id]) for line in request.lines]
        if any(short):
            detail = "Not enough stock for some lines; nothing was ordered."
            return _refused(uow, user, record, OutOfStock(detail, [s for s in short if s]), request)
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
    # the answer is known before anything is written (the id was reserved), so it is written with the order
    placed = OrderPlaced(order.id, json.dumps(order_document(order)))
    uow.placement.write(
        order,
        placed.document,
        take_from=None if request.allow_partial else products,
        answer=KeyAnswer(record.id, *_kept(placed)) if record is not None else None,
    )
    # rare: the order took a product's last units
    ran_out = [item.product_id for item in items if products[item.product_id].stock == item.quantity]
    record_product_events(uow, [(EventType.PRODUCT_OUT_OF_STOCK, product_id) for product_id in ran_out])
    return placed


def _refused(
    uow: AbstractUnitOfWork, user: Principal, record: ClaimedKey | None, refusal: OutOfStock, request: OrderRequest
) -> OutOfStock:
    # nothing was ordered: what was counted unpaid goes back (the key's record of the refusal is committed)
    uow.placement.release_unpaid(user.id, orders=1, units=sum(line.quantity for line in request.lines))
    if record is not None:
        keep = current_app.config["IDEMPOTENCY_REFUSALS_PER_USER"]
        uow.placement.record_refusal(KeyAnswer(record.id, *_kept(refusal)), user_id=user.id, keep=keep)
    return refusal


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
    uow: AbstractUnitOfWork, products: dict[int, LockedProduct], lines: Sequence[OrderLine]
) -> tuple[list[OrderLine], list[dict[str, int]]]:
    """Each line's stock step alone: the stock >= 0 CHECK refuses a short one, and only that savepoint rolls back.

    Lines are at most 50 (validated at the edge), well under PostgreSQL's 64 cached subtransactions.
    """
    kept, dropped = [], []
    for line in lines:
        try:
            with uow.savepoint():
                uow.placement.take_stock(products, {line.product_id: line.quantity})
        except NotEnoughStock:
            available = products[line.product_id].stock
            dropped.append({"product_id": line.product_id, "requested": line.quantity, "available": available})
        else:
            kept.append(line)
    return kept, dropped


def purge_idempotency_records(older_than_hours: int) -> int:
    """Forget keys older than this; a retry with one of them after that is a new order."""
    with UnitOfWork() as uow:
        purged = uow.placement.purge_keys(older_than_hours)
        uow.commit()
    return purged
