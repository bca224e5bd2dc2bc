from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, sql_values
from shop.models.order import Order, OrderStatus
from shop.models.user import User


class OrderStatusChange(Base):
    """Who did what to an order (moved it from which status to which, refunded, ...), and when. Written in the
    step's own transaction."""

    __tablename__ = "order_status_changes"
    __table_args__ = (
        sa.CheckConstraint(f"to_status IN ({sql_values(OrderStatus)})", name="to_status_allowed"),
        sa.Index("ix_order_status_changes_order_id", "order_id", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey(Order.id, ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str] = mapped_column(sa.String(16))
    changed_by: Mapped[int | None] = mapped_column(sa.ForeignKey(User.id, ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    note: Mapped[str | None] = mapped_column(sa.Text)
    # the event the step wrote (order.paid, refund.created, ...); NULL on entries written before migration 0013.
    # A step that leaves the status as it was (a refund, a return) has from_status = to_status
    event: Mapped[str | None] = mapped_column(sa.String(40))
