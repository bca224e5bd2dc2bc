from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from shop.models import Order, OrderStatusChange
from shop.models.order import COUNTED_SQL, counted_sql

# The reports' facts, kept as an order moves into or out of the revenue (migration 0006 checks them at commit).
COUNT_LINES = sa.text("UPDATE order_items SET counted = :counted WHERE order_id = :order_id AND counted <> :counted")
# After an order moved into or out of the revenue: it points at its customer's previous counted order (or
# at nothing, if it no longer counts), and the customer's next counted order points at it (or past it). Two
# rows, found by ix_orders_customer_counted whatever the customer's history. The order also carries its customer's
# first counted order's placement (NULL if it no longer counts), in the same row version. The caller holds the
# customer's lock (lock_customer_of), so these never interleave for one customer. Answers, for the order's row,
# whether it is at or before that first (or no order counts): only then may the first have moved, and the
# customer's other counted orders need RESTAMP_FIRST.
RELINK = sa.text(
    f"""
    WITH this AS (
        SELECT id, user_id, created_at, {COUNTED_SQL} AS counted
          FROM orders WHERE id = :order_id
    ), before_this AS (
        SELECT o.created_at FROM orders o, this
         WHERE o.user_id = this.user_id AND {counted_sql("o.status")}
           AND (o.created_at, o.id) < (this.created_at, this.id)
         ORDER BY o.created_at DESC, o.id DESC LIMIT 1
    ), after_this AS (
        SELECT o.id FROM orders o, this
         WHERE o.user_id = this.user_id AND {counted_sql("o.status")}
           AND (o.created_at, o.id) > (this.created_at, this.id)
         ORDER BY o.created_at, o.id LIMIT 1
    ), first AS (
        SELECT min(o.created_at) AS at FROM orders o, this
         WHERE o.user_id = this.user_id AND {counted_sql("o.status")}
    )
    UPDATE orders o
       SET previous_counted_at = CASE
               WHEN o.id = this.id THEN CASE WHEN this.counted THEN (SELECT created_at FROM before_this) END
               WHEN this.counted THEN this.created_at
               ELSE (SELECT created_at FROM before_this)
           END,
           first_counted_at = CASE
               WHEN o.id = this.id THEN CASE WHEN this.counted THEN first.at END
               ELSE o.first_counted_at
           END
      FROM this, first
     WHERE o.id = this.id OR o.id = (SELECT id FROM after_this)
    RETURNING o.id = this.id AS is_this, this.user_id, first.at AS first_at,
              first.at IS NULL OR this.created_at <= first.at AS may_have_moved
    """  # noqa: S608 - the counted statuses, our constant
)
RESTAMP_FIRST = sa.text(
    f"""
    UPDATE orders SET first_counted_at = :first_at
     WHERE user_id = :user_id AND {COUNTED_SQL} AND first_counted_at IS DISTINCT FROM :first_at
    """  # noqa: S608 - the counted statuses, our constant
)
# NO KEY UPDATE: placing an order takes KEY SHARE on its customer (the foreign key), which this does not block
LOCK_CUSTOMER = sa.text(
    "SELECT 1 FROM users WHERE id = (SELECT user_id FROM orders WHERE id = :order_id) FOR NO KEY UPDATE"
)


# the order left pending: out of its customer's unpaid counts (under the customer's lock, lock_customer_of)
RELEASE_UNPAID = sa.text(
    "UPDATE users SET unpaid_orders = unpaid_orders - 1, unpaid_units = unpaid_units - :units WHERE id = :user_id"
)
HAS_REFUNDS = sa.text("SELECT EXISTS (SELECT 1 FROM refunds WHERE order_id = :order_id)")


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        """The order with its lines (loaded in one more query, never lazily per line)."""
        statement = sa.select(Order).where(Order.id == order_id).options(selectinload(Order.items))
        if for_update:
            statement = statement.with_for_update(of=Order)
        return self.session.scalars(statement).one_or_none()

    def owner_of(self, order_id: int) -> int | None:
        """The id of the order's customer, read without a lock (it never changes); None if there is no such order."""
        return self.session.scalar(sa.select(Order.user_id).where(Order.id == order_id))

    def lock_customer_of(self, order_id: int) -> None:
        """Serialize the changes to one customer's counted orders (taken before any of their order rows);
        nothing to lock if there is no such order."""
        self.session.execute(LOCK_CUSTOMER, {"order_id": order_id})

    def save_transition(self, order: Order, change: OrderStatusChange, *, stamped: str) -> None:
        """Write the order's new status with its `stamped` timestamp (e.g. paid_at) set by the database clock,
        and the entry of its history."""
        setattr(order, stamped, sa.func.now())
        self.session.add(change)
        self.session.flush()

    def release_unpaid(self, order: Order) -> None:
        """The order is no longer pending: it leaves its customer's unpaid counts."""
        self.session.execute(RELEASE_UNPAID, {"units": order.units, "user_id": order.user_id})

    def has_refunds(self, order_id: int) -> bool:
        return bool(self.session.scalar(HAS_REFUNDS, {"order_id": order_id}))

    def add_change(self, change: OrderStatusChange) -> None:
        """An entry of the order's history for a step that is not a transition (flushed with the commit)."""
        self.session.add(change)

    def read_back(self, order: Order, attributes: list[str]) -> None:
        """Load these attributes again (set by the database), inside the transaction."""
        self.session.refresh(order, attribute_names=attributes)

    def recount(self, order: Order, *, counted: bool) -> None:
        """The order has just moved into (or out of) the revenue: its lines and its customer's chain follow."""
        self.session.flush()
        self.session.execute(COUNT_LINES, {"order_id": order.id, "counted": counted})
        self.relink(order.id)

    def relink(self, order_id: int) -> None:
        """Put the order in (or take it out of) its customer's chain of counted orders, as its status now says, and
        keep every counted order of the customer stamped with the first one's placement."""
        rows = self.session.execute(RELINK, {"order_id": order_id}).all()
        _, user_id, first_at, may_have_moved = next(row for row in rows if row.is_this)
        if may_have_moved:  # rare: the customer's first payment, or their first counted order cancelled
            self.session.execute(RESTAMP_FIRST, {"user_id": user_id, "first_at": first_at})

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
