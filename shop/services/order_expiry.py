"""Unpaid orders expire: a pending order holds its units for ORDER_PAYMENT_WINDOW_MINUTES, then shop cancels it as
`expired` and its units go back to stock, exactly once.

The sweeper (`flask orders expire`) lists pending orders past the window, oldest first, and expires each in a
transaction of its own through the same transition as a cancel (shop/services/order_lifecycle.py): it locks the order
row and checks that the order is still pending, so a payment that got there first wins (the expiry is then refused
and skipped), a payment that comes second finds the order cancelled (409), and two sweepers never expire one order
twice. Safe to run from several places at once. Each round it also folds the report summaries' changes in
(shop/reports/summaries.py).
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.models import Order, OrderStatus
from shop.observability.throttled import ThrottledWarning
from shop.reports.summaries import roll_up
from shop.services.order_lifecycle import Action, IllegalTransition, transition

log = logging.getLogger(__name__)
_warnings = ThrottledWarning(log, "the sweeper's %s failed (%s); trying again")

BATCH = 200


def overdue_orders(window_minutes: float, limit: int = BATCH) -> list[int]:
    """Pending orders placed longer ago than the window, oldest first (ix_orders_status_created_at)."""
    cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, window_minutes * 60)  # secs: a float
    with db.engine.connect() as connection:
        ids = connection.scalars(
            sa.select(Order.id)
            .where(Order.status == OrderStatus.PENDING.value, Order.created_at < cutoff)
            .order_by(Order.created_at)
            .limit(limit)
        ).all()
    return list(ids)


def expire_overdue(window_minutes: float) -> int:
    """Expire one batch of overdue orders; how many this call expired (others may have been paid or expired by
    another sweeper meanwhile)."""
    expired = 0
    for order_id in overdue_orders(window_minutes):
        try:
            transition(order_id, None, Action.EXPIRE)
        except IllegalTransition:
            continue  # paid (or expired elsewhere) since it was listed: the payment won
        expired += 1
    return expired


def sweep(app: Flask, stop: threading.Event, interval_seconds: float = 30.0) -> None:
    """Expire overdue orders until `stop` is set: at once while a batch comes back full, else every interval."""
    with app.app_context():
        window = float(app.config["ORDER_PAYMENT_WINDOW_MINUTES"])
        while not stop.is_set():
            try:
                expired = expire_overdue(window)
            except Exception as error:  # PostgreSQL restarting, say: logged once a minute, tried again
                _warnings.warn("expiry of unpaid orders", error)
                expired = 0
            try:  # the report summaries' changes, folded in while the sweeper is here (shop/reports/summaries.py)
                roll_up()
            except Exception as error:  # the same: the reports stay exact meanwhile, reading the changes
                _warnings.warn("roll-up of the report summaries", error)
            if expired >= BATCH:
                continue
            stop.wait(interval_seconds)
