from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import WebhookEndpoint
from shop.repositories.events import RELEASED_BELOW

# an endpoint follows the feed from now: from the oldest transaction still running, so an event of a transaction that
# began before the endpoint and commits after it is not skipped (events older than the endpoint are filtered out by
# time when read: shop/webhooks/follow.py)
FOLLOW_FROM_NOW = sa.text(
    f"""
    INSERT INTO webhook_cursors (endpoint_id, transaction_id, position) VALUES (:endpoint_id, {RELEASED_BELOW}, 0)
    ON CONFLICT (endpoint_id) DO UPDATE
       SET transaction_id = excluded.transaction_id, position = 0, lease = NULL, leased_until = NULL,
           leased_by = NULL
    """  # noqa: S608 - RELEASED_BELOW, our constant
)


class WebhookRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, endpoint_id: int, *, for_update: bool = False) -> WebhookEndpoint | None:
        statement = sa.select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def all(self) -> Sequence[WebhookEndpoint]:
        return self.session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()

    def add(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        self.session.add(endpoint)
        self.session.flush()
        self.follow_from_now(endpoint)
        return endpoint

    def follow_from_now(self, endpoint: WebhookEndpoint) -> None:
        """Deliver it the events from now on (a new endpoint; one turned back on skips what it was off for)."""
        self.session.execute(FOLLOW_FROM_NOW, {"endpoint_id": endpoint.id})

    def save(self) -> None:
        self.session.flush()

    def delete(self, endpoint: WebhookEndpoint) -> None:
        self.session.delete(endpoint)
        self.session.flush()
