"""The money of an order: what payment providers told shop, the ledger of what moved, and refunds.

A provider's notification is kept once per (provider, reference, kind), whatever it did; the ledger is written only
when money moved (a capture, a payment staff recorded by hand, a refund paid out) and is never changed afterwards
(a trigger refuses UPDATE and DELETE, migration 0013). A refund is asked for by staff; where the order was paid
through a provider it is pending until that provider's `refunded` notification, and only then in the ledger.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, sql_values
from shop.models.order import Order, OrderItem
from shop.models.user import User


class NotificationKind(enum.StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"
    REFUNDED = "refunded"


class NotificationOutcome(enum.StrEnum):
    APPLIED = "applied"  # it changed the order or a refund (a capture that made the order paid)
    RECORDED = "recorded"  # kept, nothing to change (an authorization, a failed attempt)
    FLAGGED = "flagged"  # kept, changed nothing, and staff must look (`flag` says why)


class Flag(enum.StrEnum):
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    UNKNOWN_ORDER = "unknown_order"
    ORDER_NOT_PENDING = "order_not_pending"  # a capture for an order already paid, expired or cancelled
    NO_MATCHING_REFUND = "no_matching_refund"  # a refund shop did not ask for, or one it cannot tell apart


class PaymentNotification(Base):
    __tablename__ = "payment_notifications"
    __table_args__ = (
        # the provider's own idempotency: a notification sent again is this row, never a second one
        sa.UniqueConstraint("provider", "reference", "kind"),
        sa.CheckConstraint(f"kind IN ({sql_values(NotificationKind)})", name="kind_allowed"),
        sa.CheckConstraint(f"outcome IN ({sql_values(NotificationOutcome)})", name="outcome_allowed"),
        sa.CheckConstraint(f"flag IS NULL OR flag IN ({sql_values(Flag)})", name="flag_allowed"),
        sa.CheckConstraint("(outcome = 'flagged') = (flag IS NOT NULL)", name="flagged_has_flag"),
        sa.Index("ix_payment_notifications_order_id", "order_id"),
        # what staff must look at, newest first
        sa.Index("ix_payment_notifications_flagged", "received_at", postgresql_where=sa.text("outcome = 'flagged'")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(40))
    reference: Mapped[str] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(16))
    # as the provider sent it: not a foreign key, since a notification for an order shop does not know is kept too
    order_id: Mapped[int] = mapped_column(sa.BigInteger)
    refund_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(sa.String(3))
    received_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    outcome: Mapped[str] = mapped_column(sa.String(16))
    flag: Mapped[str | None] = mapped_column(sa.String(40))
    detail: Mapped[str | None] = mapped_column(sa.Text)


class LedgerKind(enum.StrEnum):
    CAPTURE = "capture"  # a provider captured the money
    PAYMENT = "payment"  # staff recorded a payment by hand (cash, bank transfer)
    REFUND = "refund"  # money given back


class RefundStatus(enum.StrEnum):
    PENDING = "pending"  # asked of the provider; its `refunded` notification will settle it
    SUCCEEDED = "succeeded"


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint(f"status IN ({sql_values(RefundStatus)})", name="status_allowed"),
        sa.CheckConstraint("(status = 'succeeded') = (succeeded_at IS NOT NULL)", name="succeeded_has_succeeded_at"),
        sa.CheckConstraint("length(reason) > 0", name="reason_not_empty"),
        sa.Index("ix_refunds_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey(Order.id, ondelete="RESTRICT"))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))
    # the provider that took the money and must give it back; NULL: paid by hand, refunded by hand
    provider: Mapped[str | None] = mapped_column(sa.String(40))
    provider_reference: Mapped[str | None] = mapped_column(sa.String(255))
    return_id: Mapped[int | None] = mapped_column(sa.ForeignKey("returns.id", ondelete="RESTRICT"))
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey(User.id, ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    succeeded_at: Mapped[datetime | None]


class RefundLine(Base):
    """A line of an order, given back in part or whole: its product and category as ordered (for the reports)."""

    __tablename__ = "refund_lines"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.CheckConstraint("restocked BETWEEN 0 AND quantity", name="restocked_within_quantity"),
        sa.Index("ix_refund_lines_order_item_id", "order_item_id"),
    )

    refund_id: Mapped[int] = mapped_column(sa.ForeignKey(Refund.id, ondelete="CASCADE"), primary_key=True)
    order_item_id: Mapped[int] = mapped_column(sa.ForeignKey(OrderItem.id, ondelete="RESTRICT"), primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.BigInteger)
    category: Mapped[str] = mapped_column(sa.String(100))
    quantity: Mapped[int]
    amount: Mapped[Decimal]
    # the units of this line the refund put back in stock
    restocked: Mapped[int] = mapped_column(server_default=sa.text("0"))


class LedgerEntry(Base):
    """Money that moved, when it moved. Never updated or deleted: a mistake is put right by another entry."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN ({sql_values(LedgerKind)})", name="kind_allowed"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("(kind = 'refund') = (refund_id IS NOT NULL)", name="refund_has_refund_id"),
        sa.CheckConstraint("kind <> 'payment' OR recorded_by IS NOT NULL", name="payment_has_recorded_by"),
        sa.CheckConstraint("kind <> 'capture' OR provider IS NOT NULL", name="capture_has_provider"),
        sa.Index("ix_ledger_entries_order_id", "order_id"),
        # a refund is paid out once
        sa.Index(
            "uq_ledger_entries_refund_id", "refund_id", unique=True, postgresql_where=sa.text("refund_id IS NOT NULL")
        ),
        # the revenue reports' refunds: those of a time range, read from the index alone
        sa.Index(
            "ix_ledger_entries_refunds",
            "occurred_at",
            postgresql_include=["amount", "refund_id"],
            postgresql_where=sa.text("kind = 'refund' AND in_revenue"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey(Order.id, ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(sa.String(3))
    occurred_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    provider: Mapped[str | None] = mapped_column(sa.String(40))
    reference: Mapped[str | None] = mapped_column(sa.String(255))
    recorded_by: Mapped[int | None] = mapped_column(sa.ForeignKey(User.id, ondelete="RESTRICT"))
    refund_id: Mapped[int | None] = mapped_column(sa.ForeignKey(Refund.id, ondelete="RESTRICT"))
    # a refund of an order in the revenue lowers the reports' net in the period it was paid out; an order with
    # refunds cannot be cancelled, so this stays true of it (a refund of a capture that came after the order was
    # cancelled is money given back, never revenue: false)
    in_revenue: Mapped[bool] = mapped_column(server_default=sa.false())
