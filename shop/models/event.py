from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, sql_values


class EventType(enum.StrEnum):
    ORDER_PLACED = "order.placed"
    ORDER_PAID = "order.paid"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_EXPIRED = "order.expired"  # cancelled by shop: not paid within ORDER_PAYMENT_WINDOW_MINUTES
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_FAILED = "payment.failed"
    REFUND_CREATED = "refund.created"
    REFUND_SUCCEEDED = "refund.succeeded"  # the provider paid a pending refund out
    RETURN_REQUESTED = "return.requested"
    RETURN_RECEIVED = "return.received"
    PRODUCT_OUT_OF_STOCK = "product.out_of_stock"
    PRODUCT_BACK_IN_STOCK = "product.back_in_stock"
    PRODUCT_PRICE_CHANGED = "product.price_changed"


class ResourceType(enum.StrEnum):
    ORDER = "order"
    PRODUCT = "product"


# the transaction writing the row: ordering the feed by it, and releasing only transactions older than every one
# still running, is what keeps a follower from skipping an event that commits late (shop/services/events.py)
CURRENT_TRANSACTION = sa.text("(pg_current_xact_id()::text)::bigint")


class Event(Base):
    """A change other systems care about, written in the transaction that made it: it exists if and only if the
    change committed. `data` is the resource's document as the API showed it at that moment."""

    __tablename__ = "events"
    __table_args__ = (
        sa.CheckConstraint(f"type IN ({sql_values(EventType)})", name="type_allowed"),
        sa.CheckConstraint(f"resource_type IN ({sql_values(ResourceType)})", name="resource_type_allowed"),
        sa.CheckConstraint("sequence > 0", name="sequence_positive"),
        # one resource's events are numbered 1, 2, 3, ... without gaps or twins
        sa.UniqueConstraint("resource_type", "resource_id", "sequence", name="uq_events_resource_sequence"),
        sa.Index("ix_events_feed", "transaction_id", "position"),
        # no more indexes: each is written by every order (a random UUID's most of all); `id` is unique by making,
        # and the daily purge may scan
    )

    position: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, server_default=sa.text("gen_random_uuid()"))
    transaction_id: Mapped[int] = mapped_column(sa.BigInteger, server_default=CURRENT_TRANSACTION)
    type: Mapped[str] = mapped_column(sa.String(40))
    resource_type: Mapped[str] = mapped_column(sa.String(16))
    resource_id: Mapped[int] = mapped_column(sa.BigInteger)
    sequence: Mapped[int]
    occurred_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    # json, not jsonb: kept as the text the API answered, and never queried inside (no parsing on the hot path)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
