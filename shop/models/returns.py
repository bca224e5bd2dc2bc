"""Returns: a customer asks to send lines of a delivered order back; staff receive them, counting the units that came
back fit to sell (restocked) and those damaged (not)."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, sql_values
from shop.models.order import Order, OrderItem
from shop.models.user import User


class ReturnStatus(enum.StrEnum):
    REQUESTED = "requested"
    RECEIVED = "received"


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({sql_values(ReturnStatus)})", name="status_allowed"),
        sa.CheckConstraint("(status = 'received') = (received_at IS NOT NULL)", name="received_has_received_at"),
        sa.Index("ix_returns_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey(Order.id, ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(sa.String(16), server_default=ReturnStatus.REQUESTED.value)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey(User.id, ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    received_by: Mapped[int | None] = mapped_column(sa.ForeignKey(User.id, ondelete="SET NULL"))
    received_at: Mapped[datetime | None]


class ReturnLine(Base):
    __tablename__ = "return_lines"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("received >= 0 AND damaged >= 0", name="counts_not_negative"),
        sa.CheckConstraint("received + damaged <= quantity", name="counts_within_quantity"),
        sa.Index("ix_return_lines_order_item_id", "order_item_id"),
    )

    return_id: Mapped[int] = mapped_column(sa.ForeignKey(Return.id, ondelete="CASCADE"), primary_key=True)
    order_item_id: Mapped[int] = mapped_column(sa.ForeignKey(OrderItem.id, ondelete="RESTRICT"), primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.BigInteger)
    quantity: Mapped[int]
    # when staff receive the return: the units fit to sell again (back in stock) and the damaged ones (not)
    received: Mapped[int] = mapped_column(server_default=sa.text("0"))
    damaged: Mapped[int] = mapped_column(server_default=sa.text("0"))
