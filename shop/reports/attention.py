"""What needs a person now (the staff dashboard's list, GET /api/v1/reports/attention, and gauges on /metrics):

- orders pending past half the payment window (ORDER_PAYMENT_WINDOW_MINUTES): the customer may need a nudge before
  the order expires;
- orders paid and not shipped SHIP_WITHIN_HOURS after their payment;
- active products with LOW_STOCK_THRESHOLD units or fewer;
- payment notifications flagged in the last day (shop/services/payments.py).

Each is a count and the oldest few, read from indexes that hold only such rows or that lead with the status, so the
cost is the handful that need attention, not the store's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

SHOWN = 50  # items of each list; the count is of all of them

PENDING_OVERDUE = sa.text(
    """
    SELECT id, user_id, total, created_at AS since, count(*) OVER () AS total_count
      FROM orders
     WHERE status = 'pending' AND created_at < now() - make_interval(secs => :seconds)
     ORDER BY created_at, id LIMIT :shown
    """
)
UNSHIPPED = sa.text(
    """
    SELECT id, user_id, total, paid_at AS since, count(*) OVER () AS total_count
      FROM orders
     WHERE status = 'paid' AND paid_at < now() - make_interval(secs => :seconds)
     ORDER BY paid_at, id LIMIT :shown
    """
)
LOW_STOCK = sa.text(
    """
    SELECT id, sku, name, stock, count(*) OVER () AS total_count
      FROM products
     WHERE is_active AND stock <= :threshold
     ORDER BY stock, id LIMIT :shown
    """
)
FLAGGED = sa.text(
    """
    SELECT id, order_id, provider, reference, kind AS notification_kind, amount, currency, flag, received_at AS since,
           count(*) OVER () AS total_count
      FROM payment_notifications
     WHERE outcome = 'flagged' AND received_at > now() - interval '1 day'
     ORDER BY received_at DESC, id DESC LIMIT :shown
    """
)
COUNTS = sa.text(
    """
    SELECT (SELECT count(*) FROM orders WHERE status = 'pending'
              AND created_at < now() - make_interval(secs => :pending_seconds)) AS pending_overdue,
           (SELECT count(*) FROM orders WHERE status = 'paid'
              AND paid_at < now() - make_interval(secs => :ship_seconds)) AS unshipped,
           (SELECT count(*) FROM products WHERE is_active AND stock <= :threshold) AS low_stock
    """
)


@dataclass(frozen=True)
class Limits:
    """When each thing needs attention: from the configuration."""

    pending_seconds: float  # half the payment window
    ship_seconds: float
    low_stock: int

    @classmethod
    def of(cls, config: dict[str, Any]) -> Limits:
        return cls(
            pending_seconds=config["ORDER_PAYMENT_WINDOW_MINUTES"] * 60 / 2,
            ship_seconds=config["SHIP_WITHIN_HOURS"] * 3600,
            low_stock=config["LOW_STOCK_THRESHOLD"],
        )


@dataclass(frozen=True)
class Attention:
    kind: str
    count: int
    items: list[dict[str, Any]]


def needs_attention(session: Session, limits: Limits) -> list[Attention]:
    """Each list: its count and its oldest (or lowest) SHOWN items."""
    lists: list[tuple[str, sa.TextClause, dict[str, float]]] = [
        ("pending_overdue", PENDING_OVERDUE, {"seconds": limits.pending_seconds}),
        ("unshipped", UNSHIPPED, {"seconds": limits.ship_seconds}),
        ("low_stock", LOW_STOCK, {"threshold": limits.low_stock}),
        ("flagged_payments", FLAGGED, {}),
    ]
    found = []
    for kind, statement, parameters in lists:
        rows = [dict(row._mapping) for row in session.execute(statement, parameters | {"shown": SHOWN})]
        count = int(rows[0].pop("total_count")) if rows else 0
        for row in rows[1:]:
            row.pop("total_count")
        found.append(Attention(kind, count, rows))
    return found


def counts(connection: Connection, limits: Limits) -> dict[str, int]:
    """The three counts alone (for /metrics; flagged payments have their gauge in money_metrics)."""
    row = connection.execute(
        COUNTS,
        {"pending_seconds": limits.pending_seconds, "ship_seconds": limits.ship_seconds, "threshold": limits.low_stock},
    ).one()
    return {
        "pending_overdue": int(row.pending_overdue),
        "unshipped": int(row.unshipped),
        "low_stock": int(row.low_stock),
    }
