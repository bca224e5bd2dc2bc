from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, sql_values
from shop.models.order import Order, OrderStatus
from shop.models.user import User


class OrderStatusChange(Base):
    """Who moved an order from which status to which, and when. Written in the transition's transaction."""

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
