from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from shop.models import Order, OrderStatusChange

# The reports' facts, kept as an order moves into or out of the revenue (migration 0006 checks them at commit).
COUNT_LINES = sa.text("UPDATE order_items SET counted = :counted WHERE order_id = :order_id AND counted <> :counted")
# Every order of one customer pointed at their previous counted order (by placement time, then id); only rows
# that change are written. The caller holds the customer's lock (lock_customer), so relinks never interleave.
RELINK_CUSTOMER = sa.text(
    """
    UPDATE orders o SET previous_counted_at = chain.previous
      FROM (SELECT id, counted,
                   CASE WHEN counted THEN lag(created_at) OVER (PARTITION BY counted ORDER BY created_at, id) END
                       AS previous
              FROM (SELECT id, created_at, status IN ('paid', 'shipped', 'delivered') AS counted
                      FROM orders WHERE user_id = :user_id) own) chain
     WHERE o.id = chain.id AND o.previous_counted_at IS DISTINCT FROM chain.previous
    """
)
OWNER = sa.text("SELECT user_id FROM orders WHERE id = :order_id")
# NO KEY UPDATE: placing an order takes KEY SHARE on its customer (the foreign key), which this does not block
LOCK_CUSTOMER = sa.text("SELECT 1 FROM users WHERE id = :user_id FOR NO KEY UPDATE")


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        """The order with its lines (loaded in one more query, never lazily per line)."""
        statement = sa.select(Order).where(Order.id == order_id).options(selectinload(Order.items))
        if for_update:
            statement = statement.with_for_update(of=Order)
        return self.session.scalars(statement).one_or_none()

    def owner(self, order_id: int) -> int | None:
        user_id: int | None = self.session.scalar(OWNER, {"order_id": order_id})
        return user_id

    def lock_customer(self, user_id: int) -> None:
        """Serialize the changes to one customer's counted orders (taken before any of their order rows)."""
        self.session.execute(LOCK_CUSTOMER, {"user_id": user_id})

    def recount(self, order: Order, *, counted: bool) -> None:
        """The order has just moved into (or out of) the revenue: its lines and its customer's chain follow."""
        self.session.flush()
        self.session.execute(COUNT_LINES, {"order_id": order.id, "counted": counted})
        self.relink_customer(order.user_id)

    def relink_customer(self, user_id: int) -> None:
        """Point each of the customer's counted orders at their previous one (under lock_customer, or alone)."""
        self.session.execute(RELINK_CUSTOMER, {"user_id": user_id})

    def add(self, order: Order) -> Order:
        self.session.add(order)
        self.session.flush()
        return order

    def page(self, *, user_id: int | None, status: str | None, page: int, per_page: int) -> tuple[list[Order], int]:
        """Newest first, with their lines in one more query (no N+1), and how many match in all."""
        filtered = sa.select(Order)
        if user_id is not None:
            filtered = filtered.where(Order.user_id == user_id)
        if status is not None:
            filtered = filtered.where(Order.status == status)
        total = self.session.scalar(sa.select(sa.func.count()).select_from(filtered.subquery())) or 0
        statement = (
            filtered.options(selectinload(Order.items))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        return list(self.session.scalars(statement)), total

    def history(self, order_id: int) -> list[OrderStatusChange]:
        statement = sa.select(OrderStatusChange).where(OrderStatusChange.order_id == order_id)
        return list(self.session.scalars(statement.order_by(OrderStatusChange.id)))
