from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import WebhookEndpoint


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
        return endpoint

    def save(self) -> None:
        self.session.flush()

    def delete(self, endpoint: WebhookEndpoint) -> None:
        self.session.delete(endpoint)
        self.session.flush()
