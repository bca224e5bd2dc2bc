"""The delivery worker's main path: an endpoint follows the event feed with its own cursor.

One statement leases an endpoint that has released events past its cursor (FOR UPDATE SKIP LOCKED, then a lease
with a deadline: workers never hold the same endpoint at once), and the next reads up to SCAN events after the
cursor with the same never-skip rule as GET /api/v1/events. The worker sends the ones the endpoint wants (a
resource's events in order; shop/webhooks/sending.py), then one transaction records them all, delivered or not,
and moves the cursor past every event read, if the lease is still its own. So an endpoint that answers costs one
inserted row (and its attempt) per event; nothing is written before the send and nothing is updated after it.

An event is sent only once the event of its resource one sequence before it is out of its way (delivered, given up,
or passed over as unwanted): otherwise it is recorded pending behind it, and the retry path (shop/webhooks/retry.py)
sends it in turn. The feed's transaction order is not always a resource's sequence order, and a failed event must
not be overtaken. A worker killed between the send
and the record loses its lease; the next one starts from the cursor and sends again (the
receiver drops the duplicate by Shop-Event-Id; the Shop-Delivery-Id is the same too). The lease names the PostgreSQL
server process of the connection that took it, and is free as soon as that process is gone: a killed worker's
connections end with it, so the next worker need not wait out the lease (behind a pooler that keeps server
connections open, as pgbouncer does, the lease's deadline still frees it).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shop.extensions import db
from shop.models.delivery import delivery_id
from shop.repositories.events import RELEASED_BELOW
from shop.services.events import Cursor, FeedEvent
from shop.webhooks.bookkeeping import record_health
from shop.webhooks.sender import Answer
from shop.webhooks.sending import Outgoing, PutOff, Result, chains, may_succeed_later, send_chains
from shop.webhooks.settings import Settings

SCAN = 500  # events read from the feed per batch (those the endpoint does not want included)

LEASE = sa.text(
    f"""
    WITH horizon AS (SELECT {RELEASED_BELOW} AS xmin),
    ready AS (
        SELECT c.endpoint_id FROM webhook_cursors c, horizon
         WHERE (c.leased_until IS NULL OR c.leased_until < now()
                OR NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = c.leased_by))
           AND EXISTS (SELECT FROM webhook_endpoints w WHERE w.id = c.endpoint_id AND w.is_active)
           AND EXISTS (SELECT FROM events e
                        WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
                          AND e.transaction_id < horizon.xmin)
         ORDER BY c.served_at NULLS FIRST, c.endpoint_id
         LIMIT 1
           FOR UPDATE OF c SKIP LOCKED)
    UPDATE webhook_cursors c
       SET lease = gen_random_uuid(), leased_until = now() + make_interval(secs => :hold_seconds),
           leased_by = pg_backend_pid(), served_at = now()
      FROM ready, webhook_endpoints w
     WHERE c.endpoint_id = ready.endpoint_id AND w.id = c.endpoint_id
    RETURNING c.endpoint_id, c.lease, c.transaction_id, c.position, w.url, w.secret,
              CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret,
              w.event_types, w.created_at
    """  # noqa: S608 - RELEASED_BELOW, our constant
)
# `wanted`: of a type the endpoint takes, and not older than the endpoint. `before_*`: the same resource's latest
# earlier event this endpoint wants too (the ones between, of types it does not take, are never sent to it), and
# whether it waits in a pending delivery to this endpoint: the feed is
# in transaction order, which can differ from a resource's sequence order (two transactions locking one product took
# their ids before the lock), so an event is sent only once the one before it has been (shop/webhooks/sending.py)
READ = sa.text(
    f"""
    WITH horizon AS (SELECT {RELEASED_BELOW} AS xmin)
    SELECT e.position, e.transaction_id, e.id, e.type, e.resource_type, e.resource_id, e.sequence, e.occurred_at,
           w.wanted, CASE WHEN w.wanted THEN e.data END AS data,
           b.transaction_id AS before_transaction, b.position AS before_position, b.sequence AS before_sequence,
           b.position IS NOT NULL AND EXISTS (
               SELECT FROM webhook_deliveries d
                WHERE d.endpoint_id = :endpoint_id AND d.event_position = b.position AND d.status = 'pending'
           ) AS before_pending
      FROM events e CROSS JOIN horizon
     CROSS JOIN LATERAL (SELECT e.type = ANY(CAST(:types AS text[])) AND e.occurred_at >= :since AS wanted) w
      LEFT JOIN LATERAL (
           SELECT b.transaction_id, b.position, b.sequence FROM events b
            WHERE w.wanted AND b.resource_type = e.resource_type AND b.resource_id = e.resource_id
              AND b.sequence < e.sequence AND b.type = ANY(CAST(:types AS text[])) AND b.occurred_at >= :since
            ORDER BY b.sequence DESC LIMIT 1) b ON true
     WHERE (e.transaction_id, e.position) > (:after_transaction, :after_position)
       AND e.transaction_id < horizon.xmin
     ORDER BY e.transaction_id, e.position
     LIMIT :scan
    """  # noqa: S608 - RELEASED_BELOW, our constant
)
MOVE = sa.text(
    """
    UPDATE webhook_cursors SET transaction_id = :transaction_id, position = :position, lease = NULL,
                               leased_until = NULL, leased_by = NULL
     WHERE endpoint_id = :endpoint_id AND lease = :lease
    """
)
RECORD = sa.text(
    """
    INSERT INTO webhook_deliveries (id, endpoint_id, event_position, event_id, resource_type, resource_id, sequence,
                                    status, attempts, next_attempt_at, give_up_at, last_status_code, last_error,
                                    delivered_at)
    SELECT t.id, :endpoint_id, t.position, t.event_id, t.resource_type, t.resource_id, t.sequence, t.status,
           t.attempts, now() + make_interval(secs => t.delay), now() + make_interval(secs => :retry_seconds),
           t.status_code, t.error, CASE WHEN t.status = 'delivered' THEN now() END
      FROM unnest(CAST(:ids AS uuid[]), CAST(:positions AS bigint[]), CAST(:event_ids AS uuid[]),
                  CAST(:resource_types AS text[]), CAST(:resource_ids AS bigint[]), CAST(:sequences AS integer[]),
                  CAST(:statuses AS text[]), CAST(:attempts AS integer[]), CAST(:delays AS double precision[]),
                  CAST(:status_codes AS integer[]), CAST(:errors AS text[]))
           AS t (id, position, event_id, resource_type, resource_id, sequence, status, attempts, delay, status_code,
                 error)
    ON CONFLICT DO NOTHING
    """
)
FIRST_ATTEMPTS = sa.text(
    """
    INSERT INTO webhook_attempts (delivery_id, number, status_code, error, duration_ms)
    SELECT t.id, 1, t.status_code, t.error, t.duration_ms
      FROM unnest(CAST(:ids AS uuid[]), CAST(:status_codes AS integer[]), CAST(:errors AS text[]),
                  CAST(:durations AS integer[])) AS t (id, status_code, error, duration_ms)
    ON CONFLICT DO NOTHING
    """
)


@dataclass(frozen=True)
class Lease:
    endpoint_id: int
    lease: uuid.UUID
    after: Cursor
    url: str
    secret: str
    previous_secret: str | None
    event_types: list[str]
    since: datetime


@dataclass(frozen=True)
class Read:
    """What a batch read: the events to send, and where the cursor goes."""

    lease: Lease
    outgoing: list[Outgoing]
    reached: Cursor
    scanned: int


def _take(settings: Settings) -> Read | None:
    with db.engine.begin() as connection:
        row = connection.execute(LEASE, {"hold_seconds": settings.hold_seconds}).one_or_none()
        if row is None:
            return None
        lease = Lease(
            row.endpoint_id, row.lease, Cursor(row.transaction_id, row.position), row.url, row.secret,
            row.previous_secret, list(row.event_types), row.created_at,
        )  # fmt: skip
        events = connection.execute(
            READ,
            {
                "endpoint_id": lease.endpoint_id,
                "types": lease.event_types,
                "since": lease.since,
                "after_transaction": lease.after.transaction_id,
                "after_position": lease.after.position,
                "scan": SCAN,
            },
        ).all()
    reached = Cursor(events[-1].transaction_id, events[-1].position) if events else lease.after
    in_batch = {(e.resource_type, e.resource_id, e.sequence) for e in events if e.wanted}
    outgoing = [
        _outgoing(lease, event, ready=_before_is_done(event, reached, in_batch)) for event in events if event.wanted
    ]
    return Read(lease, outgoing, reached, len(events))


def _before_is_done(event: Any, reached: Cursor, in_batch: set[tuple[str, int, int]]) -> bool:
    """Whether the resource's event before this one (the latest earlier one the endpoint wants) is out of its way
    (this batch then checks, if that one is in it too, that it was delivered). Out of the way: there is none (or it
    was purged), or the cursor passes it with this batch and it is not a pending delivery (it was delivered, given
    up, or not wanted by this endpoint)."""
    if event.before_position is None:
        return True
    if (event.resource_type, event.resource_id, event.before_sequence) in in_batch:
        return True  # ahead of it in its chain: sent first, and this one waits if that one fails
    return not event.before_pending and Cursor(event.before_transaction, event.before_position) <= reached


def _outgoing(lease: Lease, row: Any, *, ready: bool) -> Outgoing:
    event = FeedEvent.of_row(row)
    return Outgoing(
        delivery_id(lease.endpoint_id, row.id), lease.endpoint_id, event, lease.url, lease.secret,
        lease.previous_secret, ready=ready,
    )  # fmt: skip


def _row(outgoing: Outgoing, result: Result, settings: Settings) -> dict[str, Any]:
    """The delivery row that records a first send (or why there was none)."""
    if isinstance(result, PutOff):
        # behind a failure it waits for that one, not for a time; the others go with the retries' first delay
        delay = settings.backoff(1) if result is PutOff.ENDPOINT_FAILING else 0.0
        status, attempts, status_code, error = "pending", 0, None, None
    else:
        if result.delivered:
            status, delay = "delivered", 0.0
        elif may_succeed_later(result):
            status, delay = "pending", settings.backoff(1)
        else:
            status, delay = "dead", 0.0  # a 4xx or a refused URL: trying again would not help
        attempts, status_code, error = 1, result.status, result.error
    event = outgoing.event
    return {
        "ids": outgoing.delivery_id, "positions": event.cursor.position, "event_ids": event.id,
        "resource_types": event.resource_type, "resource_ids": event.resource_id, "sequences": event.sequence,
        "statuses": status, "attempts": attempts, "delays": delay, "status_codes": status_code, "errors": error,
    }  # fmt: skip


def _columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


def _record(read: Read, results: dict[uuid.UUID, Result], settings: Settings) -> bool:
    """Record the batch and move the cursor, in one transaction; False if the lease was lost meanwhile (then
    nothing is recorded: the worker that holds the endpoint now sends these again)."""
    lease = read.lease
    recorded = [(outgoing, results[outgoing.delivery_id]) for outgoing in read.outgoing]
    rows = [_row(outgoing, result, settings) for outgoing, result in recorded]
    answers = [(outgoing, result) for outgoing, result in recorded if isinstance(result, Answer)]
    with db.engine.begin() as connection:
        moved = connection.execute(
            MOVE,
            {
                "endpoint_id": lease.endpoint_id,
                "lease": lease.lease,
                "transaction_id": read.reached.transaction_id,
                "position": read.reached.position,
            },
        )
        if moved.rowcount != 1:
            connection.rollback()
            return False
        if rows:
            names = ("ids", "positions", "event_ids", "resource_types", "resource_ids", "sequences", "statuses",
                     "attempts", "delays", "status_codes", "errors")  # fmt: skip
            connection.execute(
                RECORD,
                {"endpoint_id": lease.endpoint_id, "retry_seconds": settings.retry_seconds} | _columns(rows, names),
            )
        if answers:
            connection.execute(
                FIRST_ATTEMPTS,
                {
                    "ids": [outgoing.delivery_id for outgoing, _ in answers],
                    "status_codes": [answer.status for _, answer in answers],
                    "errors": [answer.error for _, answer in answers],
                    "durations": [answer.duration_ms for _, answer in answers],
                },
            )
            record_health(connection, settings, [(lease.endpoint_id, answer) for _, answer in answers])
    return True


@dataclass(frozen=True)
class Followed:
    endpoint_id: int
    events: int  # read from the feed, wanted or not

    @property
    def full(self) -> bool:
        """As many as a batch reads: there may be more right away."""
        return self.events >= SCAN


def follow(settings: Settings, senders: ThreadPoolExecutor | None = None) -> Followed | None:
    """One batch for one endpoint with events past its cursor: read, send, record. None: no endpoint had any."""
    read = _take(settings)
    if read is None:
        return None
    results = send_chains(chains(read.outgoing), settings, senders)
    _record(read, results, settings)
    return Followed(read.lease.endpoint_id, read.scanned)
