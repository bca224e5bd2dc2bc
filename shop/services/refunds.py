"""Refunds: staff give money back, by lines and quantities and/or an amount, never more than was received and not
yet given back, under an Idempotency-Key.

One transaction: claim the key (a concurrent twin waits on its unique index, then replays the first answer), lock
the order (concurrent refunds of one order queue here, so each sees what the one before it gave back), check, write
the refund, its lines, the restocked units (products locked in id order) and the key's answer. A refused refund
rolls everything back, the key's claim included: it writes nothing.

Where a provider took the money, the refund is pending until that provider's `refunded` notification (`settle`,
from shop/services/payments.py); where it was paid by hand, it is paid out at once. Either way the ledger has it
from the moment it was paid out, and the revenue reports count it then (when its order is in the revenue).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.db.transactions import run_transaction
from shop.errors import Conflict, Unprocessable, ValidationFailed
from shop.models import EventType, LedgerEntry, LedgerKind, Order, OrderStatus, Refund, RefundLine, RefundStatus
from shop.models.order import COUNTED_STATUSES
from shop.repositories.money import MoneyRepository
from shop.security.principal import Principal
from shop.services.money_documents import refund_document
from shop.services.order_lifecycle import record_step
from shop.services.order_reads import lock_order
from shop.services.ordering import IdempotencyKeyReused
from shop.services.product_events import record_product_events
from shop.services.unit_of_work import UnitOfWork

CENT = Decimal("0.01")
CREATED_CODE = 201

CLAIM_KEY = sa.text(
    "INSERT INTO idempotency_records (user_id, key, request_fingerprint) VALUES (:user_id, :key, :fingerprint)"
    " ON CONFLICT (user_id, key) DO NOTHING"
)
READ_KEY = sa.text(
    "SELECT id, request_fingerprint, response_status, response_body FROM idempotency_records"
    " WHERE user_id = :user_id AND key = :key"
)
KEEP_ANSWER = sa.text("UPDATE idempotency_records SET response_status = :status, response_body = :body WHERE id = :id")


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class RefundRequest:
    lines: Sequence[LineRequest]
    amount: Decimal | None
    reason: str
    restock: bool = False
    return_id: int | None = None

    def fingerprint(self, order_id: int) -> str:
        canonical = {
            "refund_of": order_id,
            "lines": [[line.product_id, line.quantity] for line in self.lines],
            "amount": str(self.amount) if self.amount is not None else None,
            "reason": self.reason,
            "restock": self.restock,
            "return_id": self.return_id,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RefundAnswer:
    document: str  # the refund's JSON, as first answered
    replayed: bool = False


class OverRefund(Unprocessable):
    slug = "over-refund"
    title = "More than can be refunded"


class NothingPaid(Conflict):
    slug = "nothing-paid"
    title = "Nothing was paid"


def in_revenue(order: Order) -> bool:
    """Whether a refund of the order lowers the revenue reports: the order counts in them."""
    return OrderStatus(order.status) in COUNTED_STATUSES


def create_refund(order_id: int, staff: Principal, request: RefundRequest, key: str) -> RefundAnswer:
    def work(uow: UnitOfWork) -> RefundAnswer:
        record_id, replay = _claim(uow.session, staff.id, key, request.fingerprint(order_id))
        if replay is not None:
            return replay
        order = lock_order(uow, order_id)
        refund, lines, restocked = _build(uow, order, staff, request)
        document = _write(uow, order, refund, lines, actor_id=staff.id)
        record_product_events(uow, restocked)
        text = json.dumps(document)
        uow.session.execute(KEEP_ANSWER, {"status": CREATED_CODE, "body": text, "id": record_id})
        uow.commit()
        return RefundAnswer(text)

    return run_transaction(work, unit_of_work=UnitOfWork)


def _write(
    uow: UnitOfWork, order: Order, refund: Refund, lines: Sequence[RefundLine], *, actor_id: int | None
) -> dict[str, object]:
    """The refund, its lines, its ledger entry if it is paid out now, its event and history entry; its document."""
    uow.money.add(refund)
    for line in lines:
        line.refund_id = refund.id
        uow.session.add(line)
    uow.session.flush()
    if refund.status == RefundStatus.SUCCEEDED.value:
        _pay_out(uow, order, refund)
    uow.session.refresh(refund)
    document = refund_document(refund, lines)
    record_step(
        uow, order, EventType.REFUND_CREATED, document, actor_id=actor_id,
        note=f"refund {refund.id} of {refund.amount} {refund.currency} ({refund.status}): {refund.reason}",
    )  # fmt: skip
    return document


def refund_the_rest(uow: UnitOfWork, order: Order, *, actor_id: int | None, reason: str) -> Refund | None:
    """Give back all that was paid for the order and not yet given back (a paid order cancelled): a refund of the
    amount, paid out now if it was paid by hand, else asked of the provider. None if there is nothing to give back.
    The caller holds the order's lock; the order no longer counts, so the refund is not revenue's."""
    left = uow.money.received(order.id) - uow.money.refunded_or_pending(order.id)
    if left <= 0:
        return None
    provider = uow.money.capture_provider(order.id)
    refund = Refund(
        order_id=order.id, amount=left, currency=order.currency, reason=reason,
        status=(RefundStatus.PENDING if provider else RefundStatus.SUCCEEDED).value, provider=provider,
        created_by=actor_id, succeeded_at=None if provider else sa.func.now(),
    )  # fmt: skip
    _write(uow, order, refund, [], actor_id=actor_id)
    return refund


def _claim(session: Session, user_id: int, key: str, fingerprint: str) -> tuple[int, RefundAnswer | None]:
    """The key's record id, and the first answer if another request already gave one with this key."""
    values = {"user_id": user_id, "key": key, "fingerprint": fingerprint}
    session.execute(CLAIM_KEY, values)
    record = session.execute(READ_KEY, values).one()
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request; use a new key for a new refund."
        )
    if record.response_status is not None:
        return record.id, RefundAnswer(record.response_body, replayed=True)
    return record.id, None


def _build(
    uow: UnitOfWork, order: Order, staff: Principal, request: RefundRequest
) -> tuple[Refund, list[RefundLine], list[tuple[EventType, int]]]:
    received = uow.money.received(order.id)
    if received == 0:
        raise NothingPaid(f"Nothing was paid for order {order.id}; there is nothing to refund.")
    if request.return_id is not None:
        returned = uow.money.return_for_update(order.id, request.return_id)
        if returned is None:
            raise ValidationFailed({"return_id": [f"Order {order.id} has no return {request.return_id}."]})
    items = {item.product_id: item for item in order.items}
    tallies = uow.money.line_tallies(order.id)
    errors: dict[str, list[str]] = {}
    for index, line in enumerate(request.lines):
        item = items.get(line.product_id)
        if item is None:
            errors[f"lines.{index}.product_id"] = ["The order has no line for this product."]
            continue
        tally = tallies[item.id]
        if line.quantity > item.quantity - tally.refunded:
            most = item.quantity - tally.refunded
            errors[f"lines.{index}.quantity"] = [f"At most {most} of this line may be refunded."]
        if request.restock and line.quantity > item.quantity - tally.restocked:
            most = item.quantity - tally.restocked
            errors[f"lines.{index}.quantity"] = [f"At most {most} of this line may be restocked."]
    if request.restock and order.status == OrderStatus.CANCELLED.value:
        errors["restock"] = ["The order was cancelled: its units went back to stock then."]
    if errors:
        raise ValidationFailed(errors)

    values = [items[line.product_id].unit_price * line.quantity for line in request.lines]
    lines_value = sum(values, Decimal("0.00"))
    amount = request.amount if request.amount is not None else lines_value
    if request.lines and amount > lines_value:
        raise ValidationFailed({"amount": [f"The lines are worth {lines_value}; refund at most that with them."]})
    left = received - uow.money.refunded_or_pending(order.id)
    if amount > left:
        raise OverRefund(
            f"At most {left} {order.currency} of order {order.id} may still be refunded "
            f"({received} was paid); {amount} is more.",
            refundable=str(left),
        )
    provider = uow.money.capture_provider(order.id)
    refund = Refund(
        order_id=order.id, amount=amount, currency=order.currency, reason=request.reason,
        status=(RefundStatus.PENDING if provider else RefundStatus.SUCCEEDED).value, provider=provider,
        return_id=request.return_id, created_by=staff.id,
        succeeded_at=None if provider else sa.func.now(),
    )  # fmt: skip
    lines = [
        RefundLine(
            order_item_id=items[line.product_id].id,
            product_id=line.product_id,
            category=items[line.product_id].category,
            quantity=line.quantity,
            amount=share,
            restocked=line.quantity if request.restock else 0,
        )
        for line, share in zip(request.lines, _shares(values, amount), strict=True)
    ]
    restocked_events = _restock(uow, {line.product_id: line.restocked for line in lines if line.restocked})
    return refund, lines, restocked_events


def _shares(values: Sequence[Decimal], amount: Decimal) -> list[Decimal]:
    """`amount` shared among the lines in proportion to their values, to the cent, adding up to it exactly (the
    last line takes the rounding): a partial refund of lines lowers each line's category and product in the reports."""
    total = sum(values, Decimal("0.00"))
    if not values or total == 0:
        return [Decimal("0.00") for _ in values]
    shares = [(amount * value / total).quantize(CENT, ROUND_DOWN) for value in values]
    shares[-1] += amount - sum(shares, Decimal("0.00"))
    return shares


def _restock(uow: UnitOfWork, quantities: dict[int, int]) -> list[tuple[EventType, int]]:
    """Put these units back in stock (products locked in id order, as everywhere); the back-in-stock events due."""
    if not quantities:
        return []
    products = uow.products.lock_for_update(list(quantities))
    events = [(EventType.PRODUCT_BACK_IN_STOCK, p.id) for p in products if p.stock == 0]
    for product in products:
        product.stock += quantities[product.id]
    return events


def _pay_out(uow: UnitOfWork, order: Order, refund: Refund) -> None:
    """The refund's money left: its ledger entry, at this moment."""
    uow.money.add(
        LedgerEntry(
            order_id=order.id,
            kind=LedgerKind.REFUND.value,
            amount=refund.amount,
            currency=refund.currency,
            provider=refund.provider,
            reference=refund.provider_reference,
            refund_id=refund.id,
            in_revenue=in_revenue(order),
        )
    )


def settle(uow: UnitOfWork, order: Order, refund: Refund, *, provider_reference: str) -> None:
    """The provider paid a pending refund out (its `refunded` notification): succeeded, and in the ledger."""
    refund.status = RefundStatus.SUCCEEDED.value
    refund.succeeded_at = sa.func.now()
    refund.provider_reference = provider_reference
    uow.session.flush()
    _pay_out(uow, order, refund)
    uow.session.refresh(refund)
    document = refund_document(refund, uow.money.refund_lines([refund.id]))
    record_step(
        uow, order, EventType.REFUND_SUCCEEDED, document, actor_id=None,
        note=f"refund {refund.id} paid out by {refund.provider} ({provider_reference})",
    )  # fmt: skip


def refunds_of(session: Session, order_id: int) -> list[dict[str, object]]:
    money = MoneyRepository(session)
    refunds = money.refunds(order_id)
    lines = money.refund_lines([refund.id for refund in refunds])
    return [refund_document(refund, [line for line in lines if line.refund_id == refund.id]) for refund in refunds]
