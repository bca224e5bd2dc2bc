"""Order transitions: pending -> paid -> shipped -> delivered, and pending | paid -> cancelled; and expiry, shop's
own cancelling of a pending order not paid in time (shop/services/order_expiry.py).

Each runs in one short transaction that locks the order row (SELECT ... FOR UPDATE), so two transitions
of one order happen one after the other and the second sees what the first did. Cancelling then locks the
order's products in id order, like placement does, and returns their units exactly once.

Paying, and cancelling a paid order, move an order into or out of the revenue: its lines' `counted` and its
customer's chain of counted orders (`previous_counted_at`) follow in the same transaction, under a lock on
the customer taken before the order's, so concurrent transitions of one customer's orders queue instead of
deadlocking. Leaving pending takes the order out of its customer's unpaid counts, under the same lock.

Nobody pays by asking: an order is paid when a provider's notification confirms the capture, or when staff record
a payment (shop/services/payments.py, which applies PAY inside its own transaction with `apply`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shop.db.transactions import run_transaction
from shop.errors import Conflict
from shop.models import EventType, Order, OrderStatus, OrderStatusChange, ResourceType, Role
from shop.models.order import COUNTED_STATUSES, EXPIRED_REASON
from shop.security.principal import Principal
from shop.services.order_documents import order_document
from shop.services.order_reads import ensure_visible, lock_order
from shop.services.product_events import record_product_events
from shop.services.unit_of_work import AbstractUnitOfWork, UnitOfWork


class Action(enum.StrEnum):
    PAY = "pay"
    SHIP = "ship"
    DELIVER = "deliver"
    CANCEL = "cancel"
    EXPIRE = "expire"  # shop's, never a caller's: pending past the payment window


@dataclass(frozen=True)
class Rule:
    allowed_from: frozenset[OrderStatus]
    to: OrderStatus
    timestamp: str
    past_tense: str
    event: EventType


RULES = {
    Action.PAY: Rule(frozenset({OrderStatus.PENDING}), OrderStatus.PAID, "paid_at", "paid", EventType.ORDER_PAID),
    Action.SHIP: Rule(
        frozenset({OrderStatus.PAID}), OrderStatus.SHIPPED, "shipped_at", "shipped", EventType.ORDER_SHIPPED
    ),
    Action.DELIVER: Rule(
        frozenset({OrderStatus.SHIPPED}), OrderStatus.DELIVERED, "delivered_at", "delivered", EventType.ORDER_DELIVERED
    ),
    Action.CANCEL: Rule(
        frozenset({OrderStatus.PENDING, OrderStatus.PAID}),
        OrderStatus.CANCELLED,
        "cancelled_at",
        "cancelled",
        EventType.ORDER_CANCELLED,
    ),
    Action.EXPIRE: Rule(
        frozenset({OrderStatus.PENDING}), OrderStatus.CANCELLED, "cancelled_at", "expired", EventType.ORDER_EXPIRED
    ),
}
# the actions that give the order's units back to stock
RESTOCKS = frozenset({Action.CANCEL, Action.EXPIRE})


# the actions that can move an order into the revenue (pay) or out of it (cancelling a paid order)
MAY_RECOUNT = frozenset({Action.PAY, Action.CANCEL})
# the actions that can take an order out of pending, and so out of its customer's unpaid counts
MAY_LEAVE_PENDING = frozenset({Action.PAY, Action.CANCEL, Action.EXPIRE})
# so these lock the customer before the order
LOCKS_CUSTOMER = MAY_RECOUNT | MAY_LEAVE_PENDING


class IllegalTransition(Conflict):
    slug = "illegal-transition"
    title = "Not possible in the order's status"


@dataclass(frozen=True)
class Transitioned:
    """The order as the transition's own transaction left it (every attribute loaded before its COMMIT), and its
    status history for staff: the answer needs no read after the commit, which could fail and turn a committed
    change into an error (and the client's retry into a 409)."""

    order: Order
    history: list[OrderStatusChange] | None


class HasRefunds(IllegalTransition):
    slug = "order-has-refunds"
    title = "The order has refunds"


def transition(
    order_id: int,
    actor: Principal | None,
    action: Action,
    *,
    payment_reference: str | None = None,
    reason: str | None = None,
    unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork,
) -> Transitioned:
    """Apply `action` to the order in a transaction of its own; staff may act on any order, a customer only on
    their own (else 404); no actor is shop itself (expiry, a provider's capture)."""

    def work(uow: AbstractUnitOfWork) -> Transitioned:
        done = apply(uow, order_id, actor, action, payment_reference=payment_reference, reason=reason)
        uow.commit()
        return done

    return run_transaction(work, unit_of_work=unit_of_work)


def lock_for(uow: AbstractUnitOfWork, order_id: int, action: Action) -> None:
    """The locks an action needs before the order's: its customer's, when it can recount or leave pending (the
    same lock order as placement and every recount, so none deadlock)."""
    if action in LOCKS_CUSTOMER:
        uow.orders.lock_customer_of(order_id)


def apply(
    uow: AbstractUnitOfWork,
    order_id: int,
    actor: Principal | None,
    action: Action,
    *,
    payment_reference: str | None = None,
    reason: str | None = None,
    locked: Order | None = None,
) -> Transitioned:
    """Apply `action` inside the caller's transaction, which commits. `locked`: the order, already locked by the
    caller (after `lock_for`)."""
    rule = RULES[action]
    is_staff = actor is not None and actor.is_at_least(Role.STAFF)
    order = locked
    if order is None:
        if actor is not None and not is_staff:  # (shop itself may act on any order)
            # before any lock: a customer never locks (or waits on) another customer's rows
            ensure_visible(order_id, uow.orders.owner_of(order_id), actor)
        lock_for(uow, order_id, action)
        order = lock_order(uow, order_id)
    if actor is not None:
        ensure_visible(order_id, order.user_id, actor)
    current = OrderStatus(order.status)
    if current not in rule.allowed_from:
        raise IllegalTransition(
            f"Order {order_id} is {current.value}; it cannot be {rule.past_tense}.", current_status=current.value
        )
    if action is Action.CANCEL and current is OrderStatus.PAID and uow.orders.has_refunds(order_id):
        raise HasRefunds(
            f"Order {order_id} has refunds; refund what remains instead of cancelling it.", current_status=current.value
        )
    restocked: list[tuple[EventType, int]] = []
    if action in RESTOCKS:
        products = {p.id: p for p in uow.products.lock_for_update([item.product_id for item in order.items])}
        restocked = [(EventType.PRODUCT_BACK_IN_STOCK, p.id) for p in products.values() if p.stock == 0]
        for item in order.items:
            products[item.product_id].stock += item.quantity
        order.cancel_reason = EXPIRED_REASON if action is Action.EXPIRE else reason
    if action is Action.PAY:
        order.payment_reference = payment_reference
    order.status = rule.to.value
    order.event_sequence += 1
    change = OrderStatusChange(
        order_id=order.id,
        from_status=current.value,
        to_status=rule.to.value,
        changed_by=actor.id if actor is not None else None,
        note=order.cancel_reason if action in RESTOCKS else payment_reference,
        event=rule.event.value,
    )
    uow.orders.save_transition(order, change, stamped=rule.timestamp)
    if current is OrderStatus.PENDING:
        uow.orders.release_unpaid(order)
    if (current in COUNTED_STATUSES) != (rule.to in COUNTED_STATUSES):
        uow.orders.recount(order, counted=rule.to in COUNTED_STATUSES)
    # the timestamps were set by the database clock: read back before COMMIT, not after
    uow.orders.read_back(order, [rule.timestamp, "updated_at"])
    # the event, with the order as this transaction left it, is written with the commit: both or neither
    uow.events.record(rule.event, ResourceType.ORDER, order.id, order.event_sequence, order_document(order))
    record_product_events(uow, restocked)
    history = uow.orders.history(order.id) if is_staff else None
    return Transitioned(order, history)


def record_step(
    uow: AbstractUnitOfWork,
    order: Order,
    event: EventType,
    data: dict[str, Any],
    *,
    actor_id: int | None,
    note: str,
) -> None:
    """A step that leaves the order's status as it is (a payment that failed, a refund, a return): its event, next
    in the order's sequence, and its entry in the order's history (from and to the same status). The caller holds
    the order's lock."""
    order.event_sequence += 1
    change = OrderStatusChange(
        order_id=order.id, from_status=order.status, to_status=order.status, changed_by=actor_id, note=note,
        event=event.value,
    )  # fmt: skip
    uow.orders.add_change(change)
    uow.events.record(event, ResourceType.ORDER, order.id, order.event_sequence, data)
