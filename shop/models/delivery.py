from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base


class WebhookDelivery(Base):
    """One event to one endpoint: pending until a 2xx answer (delivered) or until it is given up (dead).

    Made by the delivery worker's dispatch from the event feed (shop/webhooks/worker.py), never in the event's own
    transaction, so an order pays nothing for the endpoints there are.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status_allowed"),
        sa.UniqueConstraint("endpoint_id", "event_position", name="uq_webhook_deliveries_endpoint_event"),
        # what is due: pending ones by the time they are due
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
        # one resource's pending deliveries to one endpoint, oldest first: the order they must arrive in
        sa.Index(
            "ix_webhook_deliveries_resource",
            "endpoint_id",
            "resource_type",
            "resource_id",
            "sequence",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        # the dead are few and watched (/metrics)
        sa.Index("ix_webhook_deliveries_dead", "id", postgresql_where=sa.text("status = 'dead'")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_position: Mapped[int] = mapped_column(sa.ForeignKey("events.position", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    resource_type: Mapped[str] = mapped_column(sa.String(16))
    resource_id: Mapped[int] = mapped_column(sa.BigInteger)
    sequence: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default=sa.text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    # a worker sending it holds it until then; a worker killed mid-send lets it go that way (and it is sent again)
    claimed_until: Mapped[datetime | None]
    give_up_at: Mapped[datetime]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One try of a delivery, as staff see it: when, the answer's status or the error, how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.Index("ix_webhook_attempts_delivery_id", "delivery_id", "id"),
        sa.Index("ix_webhook_attempts_attempted_at", "attempted_at"),  # the last minutes' outcomes (/metrics)
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int]


class WebhookDispatch(Base):
    """The one row saying how far the delivery workers have read the event feed (its cursor)."""

    __tablename__ = "webhook_dispatch"
    __table_args__ = (sa.CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(sa.BigInteger)
    position: Mapped[int] = mapped_column(sa.BigInteger)
