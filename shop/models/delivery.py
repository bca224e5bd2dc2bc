from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base

# a delivery's id is a function of its endpoint and its event (shop/webhooks/deliveries.py): the worker knows it
# before the row exists, sends it as Shop-Delivery-Id, and sends the same one however often the event goes again
DELIVERY_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-5e7a-9c3f-2b4d6e8fa0c1")


def delivery_id(endpoint_id: int, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{endpoint_id}/{event_id}")


class WebhookDelivery(Base):
    """One event to one endpoint, as it went: delivered, pending (to be tried again, or waiting for an earlier event of
    its resource that is), or dead (given up).

    Written by the delivery worker after the first send, insert-only when the endpoint answers (the common case);
    never in the event's own transaction, so an order pays nothing for the endpoints there are.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status_allowed"),
        # an endpoint's deliveries, newest first (the staff list); never two of one event; whether the event before
        # one has been sent (the order a resource's events must arrive in)
        sa.UniqueConstraint("endpoint_id", "event_position", name="uq_webhook_deliveries_endpoint_event"),
        # what is due: pending ones by the time they are due
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
        # the dead are few and watched (/metrics)
        sa.Index("ix_webhook_deliveries_dead", "endpoint_id", postgresql_where=sa.text("status = 'dead'")),
        # rows arrive in time order: a block range index finds the old ones to purge at almost no cost per insert
        sa.Index("ix_webhook_deliveries_created_at", "created_at", postgresql_using="brin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # the event's place in the feed; not a foreign key: deliveries are history, purged by age like the events
    event_position: Mapped[int] = mapped_column(sa.BigInteger)
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
        sa.Index("ix_webhook_attempts_attempted_at", "attempted_at", postgresql_using="brin"),  # /metrics, purge
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # 1, 2, 3, ...
    attempted_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int]


class WebhookCursor(Base):
    """How far an endpoint has followed the event feed: every event after it is still to be sent to it, every one
    before it was sent or has a delivery row. One worker at a time holds an endpoint's cursor (a lease); a worker
    killed while holding it lets it go (at once, or when the lease runs out), and the next one starts again from
    the cursor."""

    __tablename__ = "webhook_cursors"

    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    transaction_id: Mapped[int] = mapped_column(sa.BigInteger)
    position: Mapped[int] = mapped_column(sa.BigInteger)
    lease: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    leased_until: Mapped[datetime | None]
    # the server process of the connection that took the lease: when it is gone (the worker died, and its
    # connections with it) the lease is free at once rather than when it runs out
    leased_by: Mapped[int | None]
    served_at: Mapped[datetime | None]  # the endpoint served longest ago goes first: several share the workers fairly
