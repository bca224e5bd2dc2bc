"""Cancelling an order, and giving back what was paid for it: a paid order cancelled is refunded in full, in the same
transaction (paid out at once when it was paid by hand, asked of the provider when a provider took the money), so a
customer who cancels is never left waiting on a person to notice. A pending order has nothing to give back."""

from __future__ import annotations

from shop.db.transactions import run_transaction
from shop.security.principal import Principal
from shop.services.order_lifecycle import Action, Transitioned, apply
from shop.services.refunds import refund_the_rest
from shop.services.unit_of_work import UnitOfWork

CANCELLED_REFUND_REASON = "order cancelled"


def cancel_order(order_id: int, actor: Principal, reason: str | None) -> Transitioned:
    def work(uow: UnitOfWork) -> Transitioned:
        done = apply(uow, order_id, actor, Action.CANCEL, reason=reason)
        history = done.history
        if done.order.paid_at is not None:  # it was paid: the money goes back
            refund_the_rest(uow, done.order, actor_id=actor.id, reason=CANCELLED_REFUND_REASON)
            history = uow.orders.history(done.order.id) if history is not None else None
        uow.commit()
        return Transitioned(done.order, history)

    return run_transaction(work, unit_of_work=UnitOfWork)
