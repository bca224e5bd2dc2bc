from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import Event, EventType, ResourceType

# a transaction's events may be read once its id is below this: every transaction begun before it has ended. The
# one spelling of the rule, for the feed, the delivery workers' cursors and the metrics
RELEASED_BELOW = "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"

# a product's events are numbered on its row, in the statement that writes the event (the row is locked by whoever
# changed the product, so two of its events never take one number)
RECORD_PRODUCT_EVENT = sa.text(
    """
    WITH numbered AS (
        UPDATE products SET event_sequence = event_sequence + 1 WHERE id = :product_id RETURNING event_sequence
    )
    INSERT INTO events (type, resource_type, resource_id, sequence, data)
    SELECT :type, 'product', :product_id, event_sequence, CAST(:data AS json) FROM numbered
    """
)


class EventRepository:
    """The outbox: events are added to the unit of work's transaction, and flushed with it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.written = False

    def record(
        self, type_: EventType, resource_type: ResourceType, resource_id: int, sequence: int, data: dict[str, Any]
    ) -> None:
        self.written = True
        self.session.add(
            Event(type=type_.value, resource_type=resource_type.value, resource_id=resource_id, sequence=sequence,
                  data=data)
        )  # fmt: skip

    def record_for_product(self, type_: EventType, product_id: int, data: str) -> None:
        """A product's event, numbered next in its sequence; `data` is its document's JSON text."""
        self.written = True
        self.session.execute(RECORD_PRODUCT_EVENT, {"type": type_.value, "product_id": product_id, "data": data})
