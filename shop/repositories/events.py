from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shop.models import Event, EventType, ResourceType


class EventRepository:
    """The outbox: events are added to the unit of work's transaction, and flushed with it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self, type_: EventType, resource_type: ResourceType, resource_id: int, sequence: int, data: dict[str, Any]
    ) -> None:
        self.session.add(
            Event(type=type_.value, resource_type=resource_type.value, resource_id=resource_id, sequence=sequence,
                  data=data)
        )  # fmt: skip
