from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, Timestamps


class WebhookEndpoint(Timestamps, Base):
    """Where events of some types are delivered, signed with the endpoint's secret (shop/webhooks/)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        sa.CheckConstraint("cardinality(event_types) > 0", name="some_event_types"),
        sa.CheckConstraint("length(url) BETWEEN 1 AND 2000", name="url_length"),
        # while a secret is being rotated the previous one signs too, until a moment that must be known
        sa.CheckConstraint("(previous_secret IS NULL) = (previous_secret_until IS NULL)", name="rotation_has_an_end"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    url: Mapped[str] = mapped_column(sa.Text)
    event_types: Mapped[list[str]] = mapped_column(postgresql.ARRAY(sa.Text))
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())
    # sealed (shop/webhooks/secrets.py): a database dump alone does not give them away
    secret: Mapped[str] = mapped_column(sa.Text)
    previous_secret: Mapped[str | None] = mapped_column(sa.Text)
    previous_secret_until: Mapped[datetime | None]
    # set when shop stopped delivering to it by itself (it failed too long); staff re-activate it
    disabled_reason: Mapped[str | None] = mapped_column(sa.Text)
    # when the failures began that have not been followed by a success since (None while it answers)
    failing_since: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
