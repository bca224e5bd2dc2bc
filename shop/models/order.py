from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.models.base import Base, Timestamps, sql_values
from shop.models.product import Product
from shop.models.user import User


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


# the cancel_reason (and history note) of an order shop cancelled because it was not paid in time
EXPIRED_REASON = "expired"

# the statuses whose orders count as revenue: the one definition. SQL spells it with COUNTED_LIST (the reports'
# .sql files with the marker $COUNTED_STATUSES), as a literal list, so that it matches the partial indexes below
COUNTED_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED})
COUNTED_LIST = ", ".join(f"'{status.value}'" for status in OrderStatus if status in COUNTED_STATUSES)


def counted_sql(status_column: str = "status") -> str:
    """`<status_column> IN (<the counted statuses>)`: does the order count as revenue."""
    return f"{status_column} IN ({COUNTED_LIST})"


COUNTED_SQL = counted_sql()


class Order(Timestamps, Base):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({sql_values(OrderStatus)})", name="status_allowed"),
        sa.CheckConstraint("total >= 0", name="total_not_negative"),
        sa.CheckConstraint("units > 0", name="units_positive"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        # a status implies the timestamps of the steps that led to it
        sa.CheckConstraint(f"status NOT IN ({COUNTED_LIST}) OR paid_at IS NOT NULL", name="paid_has_paid_at"),
        sa.CheckConstraint(
            "status NOT IN ('shipped', 'delivered') OR shipped_at IS NOT NULL", name="shipped_has_shipped_at"
        ),
        sa.CheckConstraint("status <> 'delivered' OR delivered_at IS NOT NULL", name="delivered_has_delivered_at"),
        sa.CheckConstraint("status <> 'cancelled' OR cancelled_at IS NOT NULL", name="cancelled_has_cancelled_at"),
        # a customer's orders, newest first; staff listing by status; reports by time
        # (a btree scans backwards just as well, so newest-first needs no DESC index)
        sa.Index("ix_orders_user_id_created_at", "user_id", "created_at"),
        sa.Index("ix_orders_status_created_at", "status", "created_at"),
        sa.Index("ix_orders_created_at", "created_at"),
        # a customer's counted orders in time order: their chain of previous_counted_at (migration 0006), and their
        # totals over a range for top customers (migration 0016)
        sa.Index(
            "ix_orders_customer_counted",
            "user_id",
            "created_at",
            "id",
            postgresql_include=["total"],
            postgresql_where=sa.text(COUNTED_SQL),
        ),
        # the revenue reports: counted orders of a time range, read from the index alone
        sa.Index(
            "ix_orders_revenue",
            "created_at",
            postgresql_include=["user_id", "total", "units", "previous_counted_at"],
            postgresql_where=sa.text(COUNTED_SQL),
        ),
        # the customers reports: new and returning customers, cohorts (its own, so the revenue index stays narrow)
        sa.Index(
            "ix_orders_customers",
            "created_at",
            postgresql_include=["user_id", "total", "previous_counted_at", "first_counted_at"],
            postgresql_where=sa.text(COUNTED_SQL),
        ),
        # the customers' first counted orders: the new customers of a range (the staff overview), a few index entries
        sa.Index(
            "ix_orders_first_counted",
            "created_at",
            postgresql_where=sa.text(f"{COUNTED_SQL} AND previous_counted_at IS NULL"),
        ),
        # the revenue reports' customers (migration 0016): counted orders by when their customer's previous one was
        # placed, for the orders whose previous order falls in the partial UTC day a period begins with
        sa.Index(
            "ix_orders_previous_counted",
            "previous_counted_at",
            postgresql_include=["created_at"],
            postgresql_where=sa.text(f"{COUNTED_SQL} AND previous_counted_at IS NOT NULL"),
        ),
        # ... and the orders placed within 25 hours of their customer's previous one: a day's repeat customers
        sa.Index(
            "ix_orders_close_repeats",
            "created_at",
            postgresql_include=["previous_counted_at"],
            postgresql_where=sa.text(f"{COUNTED_SQL} AND created_at - previous_counted_at < interval '25 hours'"),
        ),
        # the customers reports' new customers' revenue (migration 0016): counted orders by their customer's first
        # one, for the customers whose first order falls in the partial UTC day a period begins with
        sa.Index(
            "ix_orders_by_first_order",
            "first_counted_at",
            postgresql_include=["created_at", "total", "previous_counted_at"],
            postgresql_where=sa.text(COUNTED_SQL),
        ),
        # ... the orders placed at the same moment as their customer's first (the few customers whose second order
        # cannot be told by its previous_counted_at alone) ...
        sa.Index(
            "ix_orders_tied_first_orders",
            "first_counted_at",
            postgresql_include=["user_id"],
            postgresql_where=sa.text(
                f"{COUNTED_SQL} AND created_at = first_counted_at AND previous_counted_at IS NOT NULL"
            ),
        ),
        # ... and the orders placed within 25 hours of their customer's first one: a day's new customers' revenue
        sa.Index(
            "ix_orders_close_to_first",
            "created_at",
            postgresql_include=["first_counted_at", "total", "previous_counted_at"],
            postgresql_where=sa.text(f"{COUNTED_SQL} AND created_at - first_counted_at < interval '25 hours'"),
        ),
        # the fulfilment report: paid orders of a time range with their waits, read from the index alone
        sa.Index(
            "ix_orders_fulfilment",
            "created_at",
            postgresql_include=["paid_at", "shipped_at"],
            postgresql_where=sa.text("paid_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey(User.id, ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(sa.String(16), server_default=OrderStatus.PENDING.value)
    currency: Mapped[str] = mapped_column(sa.String(3))
    total: Mapped[Decimal]
    # the sum of the lines' quantities, kept with the order for the reports (the database checks it at commit)
    units: Mapped[int]
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    payment_reference: Mapped[str | None] = mapped_column(sa.String(255))
    cancel_reason: Mapped[str | None] = mapped_column(sa.Text)
    # allow_partial: the lines left out, [{"product_id", "requested", "available"}]
    dropped_lines: Mapped[list[dict[str, int]]] = mapped_column(JSONB, server_default=sa.text("'[]'::jsonb"))
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # for the reports, kept by the order code and checked at commit (migration 0006): when this customer's
    # previous counted order was placed; NULL for their first, and for an order that does not count
    previous_counted_at: Mapped[datetime | None]
    # likewise (migration 0014): when this customer's first counted order was placed, on each of their counted
    # orders; NULL on an order that does not count. The customers reports' new customers and cohorts.
    first_counted_at: Mapped[datetime | None]
    # the sequence of the order's newest event (shop.models.event): the next one is this + 1
    event_sequence: Mapped[int] = mapped_column(server_default=sa.text("0"))

    user: Mapped[User] = relationship(lazy="raise")
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id", lazy="raise"
    )

    def __repr__(self) -> str:
        return f"<Order {self.id} {self.status}>"


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price > 0", name="unit_price_positive"),
        # invariant 2, line level: a line total is exactly price times quantity
        sa.CheckConstraint("line_total = unit_price * quantity", name="line_total_exact"),
        # one line per product in an order (duplicate lines are merged before they get here)
        sa.UniqueConstraint("order_id", "product_id"),
        sa.Index("ix_order_items_product_id", "product_id"),
        # revenue by category and top products: the counted lines of a time range, read from the index alone
        sa.Index(
            "ix_order_items_revenue",
            "placed_at",
            postgresql_include=["product_id", "category", "quantity", "line_total", "first_in_category"],
            postgresql_where=sa.text("counted"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey(Order.id, ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(sa.ForeignKey(Product.id, ondelete="RESTRICT"))
    # snapshots: what the customer saw when ordering, whatever the product becomes later
    sku: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    line_total: Mapped[Decimal]
    # for the reports, checked at commit against the order (migration 0006): its placement time (the placing
    # transaction's now()) and whether it counts, the product's category then, and whether this is the
    # order's first line in that category
    placed_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    counted: Mapped[bool] = mapped_column(server_default=sa.false())
    category: Mapped[str] = mapped_column(sa.String(100))
    first_in_category: Mapped[bool]

    order: Mapped[Order] = relationship(back_populates="items", lazy="raise")
    product: Mapped[Product] = relationship(lazy="raise")
