"""The event feed: every event, in an order a follower can trust, from a cursor it keeps.

Events are written in the transaction of the change they describe (shop/repositories/events.py and the
placement's statements), so one exists if and only if its change committed. Reading them in id order is not
enough: transactions take ids when they write and commit later, in any order, so a reader that has seen event
105 could miss event 104, committed a moment after it looked. The feed therefore orders events by the
transaction that wrote them (then by position within it) and releases a transaction's events only once every
transaction that began before it has ended: those below the oldest transaction still running
(`pg_snapshot_xmin(pg_current_snapshot())`, computed in the same statement and snapshot as the read). Nothing can
ever appear before a cursor handed out, so following the cursor skips nothing. The price: an event waits while an
older write transaction anywhere on the server is still open; shop's are short (TX_STATEMENT_TIMEOUT_MS).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shop.db.replica import read_session
from shop.errors import ValidationFailed
from shop.models import Event, EventType, WebhookDelivery
from shop.repositories.events import RELEASED_BELOW
from shop.services.unit_of_work import UnitOfWork

KEEP_DAYS = 30  # events are kept at least this long (`flask events purge`)
CURSOR = re.compile(r"(\d{1,19})\.(\d{1,19})")


FEED = sa.text(
    f"""
    WITH horizon AS (SELECT {RELEASED_BELOW} AS xmin),
    page AS (
        SELECT e.position, e.id, e.transaction_id, e.type, e.resource_type, e.resource_id, e.sequence,
               e.occurred_at, e.data
          FROM events e, horizon
         WHERE (e.transaction_id, e.position) > (:after_transaction, :after_position)
           AND e.transaction_id < horizon.xmin
           AND (cardinality(CAST(:types AS text[])) = 0 OR e.type = ANY(CAST(:types AS text[])))
         ORDER BY e.transaction_id, e.position
         LIMIT :limit
    ), newest AS (
        SELECT e.transaction_id, e.position FROM events e, horizon
         WHERE e.transaction_id < horizon.xmin
         ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1
    )
    SELECT page.*, NULL::bigint AS newest_transaction, NULL::bigint AS newest_position FROM page
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, newest.transaction_id, newest.position FROM newest
    """  # noqa: S608 - RELEASED_BELOW, our constant
)
ORPHANED = sa.text(
    """
    UPDATE webhook_deliveries d SET status = 'dead', last_error = 'the event was purged', claimed_until = NULL
     WHERE d.status = 'pending' AND NOT EXISTS (SELECT FROM events e WHERE e.position = d.event_position)
    """
)


@dataclass(frozen=True, order=True)
class Cursor:
    """A place in the feed: after this transaction's event at this position."""

    transaction_id: int
    position: int

    def encode(self) -> str:
        return f"{self.transaction_id}.{self.position}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = CURSOR.fullmatch(text)
        if match is None:
            raise ValidationFailed({"after": ["Not a cursor: pass the `next` of a previous page, as it was."]})
        return cls(int(match.group(1)), int(match.group(2)))


START = Cursor(0, 0)


@dataclass(frozen=True)
class FeedEvent:
    id: uuid.UUID
    type: str
    resource_type: str
    resource_id: int
    sequence: int
    occurred_at: datetime
    data: dict[str, Any]
    cursor: Cursor

    @classmethod
    def of_row(cls, row: Any) -> FeedEvent:
        """From a row with the events table's columns (the feed's query, the delivery workers')."""
        return cls(
            row.id, row.type, row.resource_type, row.resource_id, row.sequence, row.occurred_at, row.data,
            Cursor(row.transaction_id, row.position),
        )  # fmt: skip

    def document(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "resource": {"type": self.resource_type, "id": self.resource_id},
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.data,
            "cursor": self.cursor.encode(),
        }


@dataclass(frozen=True)
class FeedPage:
    events: list[FeedEvent]
    next: Cursor  # where to ask from next: past every event released so far that the filter let through or not


def read_feed(after: Cursor = START, types: Sequence[EventType] = (), limit: int = 100) -> FeedPage:
    """A page of the feed, read through the replica when the view chose it (shop/db/replica.py): a hot standby's
    snapshots follow the primary's commits as replayed, so its released events are the primary's, fewer at most,
    and a cursor from either never skips an event the other has yet to show."""
    parameters = {
        "after_transaction": after.transaction_id,
        "after_position": after.position,
        "types": [t.value for t in types],
        "limit": limit,
    }
    rows = read_session().execute(FEED, parameters).all()
    events = [FeedEvent.of_row(row) for row in rows if row.position is not None]
    newest = next((Cursor(r.newest_transaction, r.newest_position) for r in rows if r.position is None), None)
    if len(events) == limit:
        return FeedPage(events, events[-1].cursor)  # there may be more: go on from the last one given
    # a short page holds every released event after `after` that the filter let through: skip to the newest
    reached = max([after, *(e.cursor for e in events), *([newest] if newest is not None else [])])
    return FeedPage(events, reached)


def purge_events(older_than_days: int = KEEP_DAYS) -> int:
    """Delete events older than this many days (never fewer than KEEP_DAYS); how many went."""
    days = max(older_than_days, KEEP_DAYS)
    cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, days)
    with UnitOfWork() as uow:
        result = uow.session.execute(sa.delete(Event).where(Event.occurred_at < cutoff))
        # the deliveries' history goes with them; one still pending for a purged event has nothing left to send
        uow.session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.created_at < cutoff))
        uow.session.execute(ORPHANED)
        uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)
