"""Order transitions: pending -> paid -> shipped -> delivered, and pending | paid -> cancelled; and expiry, shop's
own cancelling of a pending order not paid in time (shop/services/order_expiry.py).

Each runs in one short transaction that locks the order row (SELECT ... FOR UPDATE), so two transitions
of one order happen one after the other and the second sees what the first did. Cancelling then locks the
order's products in id order, like placement does, and returns their units exactly once.

Paying, and cancelling a paid order, move an order into or out of the revenue: its lines' `counted` and its
customer's chain of counted orders (`previous_counted_at`) follow in the same transaction, under a lock on
the customer taken before the order's, so concurrent transitions of one customer's orders queue instead of
deadlocking.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from shop.db.transactions import run_transaction
from shop.errors import Conflict
from shop.models import EventType, Order, OrderStatus, OrderStatusChange, ResourceType, Role
from shop.models.order import COUNTED_STATUSES, EXPIRED_REASON
from shop.security.principal import Principal
from shop.services.order_documents import order_document
from shop.services.order_reads import OrderNotFound, ensure_visible
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


def transition(
    order_id: int,
    actor: Principal | None,
    action: Action,
    *,
    payment_reference: str | None = None,
    reason: str | None = None,
    unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork,
) -> Transitioned:
    """Apply `action` to the order; staff may act on any order, a customer only on their own (else 404); no actor
    is shop itself (expiry)."""
    rule = RULES[action]
    is_staff = actor is not None and actor.is_at_least(Role.STAFF)

    def work(uow: AbstractUnitOfWork) -> Transitioned:
        if actor is not None and not is_staff:  # (shop itself, expiring, may act on any order)
            # before any lock: a customer never locks (or waits on) another customer's rows
            ensure_visible(order_id, uow.orders.owner_of(order_id), actor)
        if action in MAY_RECOUNT:
            # the customer first, then the order: the same lock order as every recount, so none deadlock
            uow.orders.lock_customer_of(order_id)
        order = uow.orders.get(order_id, for_update=True)
        if order is None:
            raise OrderNotFound(order_id)
        if actor is not None:
            ensure_visible(order_id, order.user_id, actor)
        current = OrderStatus(order.status)
        if current not in rule.allowed_from:
            raise IllegalTransition(
                f"Order {order_id} is {current.value}; it cannot be {rule.past_tense}.", current_status=current.value
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
        )
        uow.orders.save_transition(order, change, stamped=rule.timestamp)
        if (current in COUNTED_STATUSES) != (rule.to in COUNTED_STATUSES):
            uow.orders.recount(order, counted=rule.to in COUNTED_STATUSES)
        # the timestamps were set by the database clock: read back before COMMIT, not after
        uow.orders.read_back(order, [rule.timestamp, "updated_at"])
        # the event, with the order as this transaction left it, is written with the commit: both or neither
        uow.events.record(rule.event, ResourceType.ORDER, order.id, order.event_sequence, order_document(order))
        record_product_events(uow, restocked)
        history = uow.orders.history(order.id) if is_staff else None
        uow.commit()
        return Transitioned(order, history)

    return run_transaction(work, unit_of_work=unit_of_work)
