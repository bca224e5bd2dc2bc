"""Payments are confirmed, never claimed: a provider's signed notification of a capture, or a payment staff record by
hand, makes an order paid; nothing a customer sends does.

A notification is processed once per (provider, reference, kind): the row keeping it is inserted in the transaction
that acts on it, so a copy arriving at the same time waits on the unique index and then finds it there ("already
processed", nothing changed). What does not fit the order (another amount or currency, an order that is no longer
pending, an order shop does not know) is kept and flagged for staff and changes no order; a capture that arrives
after the order expired is money taken all the same, so it goes in the ledger, flagged, to be refunded.

Locks: the order's customer, then the order (as every transition that may leave pending: order_lifecycle.lock_for).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shop.db.transactions import run_transaction
from shop.errors import Unprocessable
from shop.models import (
    EventType,
    Flag,
    LedgerEntry,
    LedgerKind,
    NotificationKind,
    NotificationOutcome,
    Order,
    OrderStatus,
    PaymentNotification,
)
from shop.security.principal import Principal
from shop.services.money_documents import ledger_document, notification_document
from shop.services.order_lifecycle import Action, IllegalTransition, Transitioned, apply, lock_for, record_step
from shop.services.order_reads import OrderNotFound
from shop.services.refunds import settle
from shop.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Notification:
    """What a provider told shop, checked for shape (shop/api/payments.py) and signature."""

    provider: str
    reference: str
    kind: NotificationKind
    order_id: int
    amount: Decimal
    currency: str
    refund_id: int | None = None


@dataclass(frozen=True)
class Processed:
    notification: dict[str, object]
    already_processed: bool


def process_notification(notification: Notification) -> Processed:
    def work(uow: UnitOfWork) -> Processed:
        kept = uow.money.notification(notification.provider, notification.reference, notification.kind.value)
        if kept is not None:  # the common replay, answered without a lock
            return Processed(notification_document(kept), already_processed=True)
        row = _act(uow, notification)
        if not uow.money.add_notification(row):
            uow.rollback()  # a twin got here first and committed: what this one did is undone
            kept = uow.money.notification(notification.provider, notification.reference, notification.kind.value)
            if kept is None:
                raise RuntimeError("a notification's twin was neither inserted nor found")
            return Processed(notification_document(kept), already_processed=True)
        document = notification_document(row)
        uow.commit()
        return Processed(document, already_processed=False)

    return run_transaction(work, unit_of_work=UnitOfWork)


def _act(uow: UnitOfWork, notification: Notification) -> PaymentNotification:
    """Do what the notification says, if it fits the order; the row that keeps it, with its outcome."""
    row = PaymentNotification(
        provider=notification.provider, reference=notification.reference, kind=notification.kind.value,
        order_id=notification.order_id, refund_id=notification.refund_id, amount=notification.amount,
        currency=notification.currency, outcome=NotificationOutcome.RECORDED.value,
    )  # fmt: skip
    kind = notification.kind
    order = _lock_order(uow, notification.order_id, Action.PAY if kind is NotificationKind.CAPTURED else None)
    if order is None:
        return _flag(row, Flag.UNKNOWN_ORDER, f"There is no order {notification.order_id}.")
    if notification.currency != order.currency:
        return _flag(row, Flag.CURRENCY_MISMATCH, f"The order is in {order.currency}, not {notification.currency}.")
    if kind is NotificationKind.CAPTURED:
        return _captured(uow, notification, order, row)
    if kind is NotificationKind.REFUNDED:
        return _refunded(uow, notification, order, row)
    if kind is NotificationKind.FAILED:
        data = {"order_id": order.id, "provider": notification.provider, "reference": notification.reference,
                "amount": str(notification.amount), "currency": notification.currency}  # fmt: skip
        note = f"payment failed at {notification.provider} ({notification.reference})"
        record_step(uow, order, EventType.PAYMENT_FAILED, data, actor_id=None, note=note)
    return row  # authorized, failed: kept, the order stays as it is (pending, for another attempt)


def _captured(
    uow: UnitOfWork, notification: Notification, order: Order, row: PaymentNotification
) -> PaymentNotification:
    if notification.amount != order.total:
        return _flag(row, Flag.AMOUNT_MISMATCH, f"The order's total is {order.total}, not {notification.amount}.")
    entry = LedgerEntry(
        order_id=order.id, kind=LedgerKind.CAPTURE.value, amount=notification.amount, currency=notification.currency,
        provider=notification.provider, reference=notification.reference,
    )  # fmt: skip
    if order.status != OrderStatus.PENDING.value:
        uow.money.add(entry)  # money was taken all the same: it is in the ledger, to be given back
        return _flag(
            row,
            Flag.ORDER_NOT_PENDING,
            f"Captured for an order that is {order.status}"
            + (f" ({order.cancel_reason})" if order.cancel_reason else "")
            + ": the money is in the ledger; refund it or settle it by hand.",
        )
    _pay(uow, order, entry, actor=None, reference=f"{notification.provider}:{notification.reference}")
    row.outcome = NotificationOutcome.APPLIED.value
    return row


def _refunded(
    uow: UnitOfWork, notification: Notification, order: Order, row: PaymentNotification
) -> PaymentNotification:
    refund = uow.money.pending_refund(order.id, notification.refund_id, notification.amount)
    if refund is None or refund.amount != notification.amount:
        return _flag(row, Flag.NO_MATCHING_REFUND, "No pending refund of the order matches this amount.")
    settle(uow, order, refund, provider_reference=notification.reference)
    row.outcome = NotificationOutcome.APPLIED.value
    return row


def _flag(row: PaymentNotification, flag: Flag, detail: str) -> PaymentNotification:
    row.outcome, row.flag, row.detail = NotificationOutcome.FLAGGED.value, flag.value, detail
    return row


def _lock_order(uow: UnitOfWork, order_id: int, action: Action | None) -> Order | None:
    if action is not None:
        lock_for(uow, order_id, action)
    return uow.orders.get(order_id, for_update=True)


def _pay(uow: UnitOfWork, order: Order, entry: LedgerEntry, *, actor: Principal | None, reference: str) -> Transitioned:
    """The money is in: payment.captured, then the order paid (order.paid), in the caller's transaction."""
    uow.money.add(entry)
    record_step(
        uow, order, EventType.PAYMENT_CAPTURED, ledger_document(entry), actor_id=actor.id if actor else None,
        note=f"{entry.kind} of {entry.amount} {entry.currency} ({reference})",
    )  # fmt: skip
    return apply(uow, order.id, actor, Action.PAY, payment_reference=reference, locked=order)


class PaymentAmountMismatch(Unprocessable):
    slug = "payment-amount-mismatch"
    title = "The amount is not the order's total"


def record_manual_payment(order_id: int, staff: Principal, reference: str, amount: Decimal | None) -> Transitioned:
    """Staff record a payment taken by hand (cash, a bank transfer): into the ledger, and the order paid."""

    def work(uow: UnitOfWork) -> Transitioned:
        order = _lock_order(uow, order_id, Action.PAY)
        if order is None:
            raise OrderNotFound(order_id)
        if order.status != OrderStatus.PENDING.value:
            raise IllegalTransition(
                f"Order {order_id} is {order.status}; it cannot be paid.", current_status=order.status
            )
        if amount is not None and amount != order.total:
            raise PaymentAmountMismatch(
                f"Order {order_id}'s total is {order.total} {order.currency}; a payment of {amount} does not pay it."
            )
        entry = LedgerEntry(
            order_id=order.id, kind=LedgerKind.PAYMENT.value, amount=order.total, currency=order.currency,
            reference=reference, recorded_by=staff.id,
        )  # fmt: skip
        done = _pay(uow, order, entry, actor=staff, reference=reference)
        uow.commit()
        return done

    return run_transaction(work, unit_of_work=UnitOfWork)
