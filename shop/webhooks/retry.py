"""The delivery worker's retry path: deliveries recorded pending (a retryable failure, or waiting behind one).

Due ones of active endpoints are claimed with FOR UPDATE SKIP LOCKED (workers never take the same one), skipping any
whose resource's event one sequence before is still to be sent to the same endpoint (pending, or not yet reached
by its cursor), so one order's events reach an endpoint in sequence order; each is held for a while and its attempt
counted. After the sends, each is delivered, due again after an exponential, jittered delay (dead once its day of
retries is over), or dead at once for an answer a retry would not change. One put off (its endpoint failed earlier
in the batch, or the batch ran out of time) goes back uncounted. A worker killed mid-send lets its claims go when
their hold passes; they are sent again.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from shop.extensions import db
from shop.services.events import FeedEvent
from shop.webhooks.bookkeeping import record_health
from shop.webhooks.sender import Answer
from shop.webhooks.sending import Outgoing, PutOff, Result, may_succeed_later, send_chains
from shop.webhooks.settings import Settings

BATCH = 100

# claimed, with what sending needs, in one statement
CLAIM = sa.text(
    """
    UPDATE webhook_deliveries d
       SET claimed_until = now() + make_interval(secs => :hold_seconds), attempts = d.attempts + 1
      FROM webhook_endpoints w, events e
     WHERE d.id IN (
        SELECT c.id FROM webhook_deliveries c
         WHERE c.status = 'pending' AND c.next_attempt_at <= now()
           AND (c.claimed_until IS NULL OR c.claimed_until < now())
           AND EXISTS (SELECT FROM webhook_endpoints a WHERE a.id = c.endpoint_id AND a.is_active)
           AND NOT EXISTS (  -- the resource's event before it (that the endpoint wants) still to be sent: pending,
                             -- or not reached yet
               SELECT FROM (SELECT b.transaction_id, b.position FROM events b, webhook_endpoints t
                             WHERE t.id = c.endpoint_id AND b.resource_type = c.resource_type
                               AND b.resource_id = c.resource_id AND b.sequence < c.sequence
                               AND b.type = ANY(t.event_types) AND b.occurred_at >= t.created_at
                             ORDER BY b.sequence DESC LIMIT 1) b
                 JOIN webhook_cursors k ON k.endpoint_id = c.endpoint_id
                 LEFT JOIN webhook_deliveries bd ON bd.endpoint_id = c.endpoint_id AND bd.event_position = b.position
                WHERE bd.status = 'pending'
                   OR (bd.id IS NULL AND (b.transaction_id, b.position) > (k.transaction_id, k.position)))
         ORDER BY c.next_attempt_at, c.event_position
         LIMIT :batch
           FOR UPDATE SKIP LOCKED)
       AND w.id = d.endpoint_id AND e.position = d.event_position
    RETURNING d.id AS delivery_id, d.attempts, w.id AS endpoint_id, w.url, w.secret,
              CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret,
              e.position, e.id, e.transaction_id, e.type, e.resource_type, e.resource_id, e.sequence, e.occurred_at,
              e.data
    """
)
ATTEMPTS = sa.text(
    """
    INSERT INTO webhook_attempts (delivery_id, number, status_code, error, duration_ms)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:numbers AS integer[]), CAST(:status_codes AS integer[]),
                         CAST(:errors AS text[]), CAST(:durations AS integer[]))
    ON CONFLICT DO NOTHING
    """
)
# each claimed delivery as it ended: `attempted` false for one put off, which goes back with its attempt uncounted
SETTLE = sa.text(
    """
    UPDATE webhook_deliveries d
       SET status = CASE WHEN t.status = 'pending' AND now() >= d.give_up_at THEN 'dead' ELSE t.status END,
           attempts = d.attempts - CASE WHEN t.attempted THEN 0 ELSE 1 END,
           next_attempt_at = now() + make_interval(secs => t.delay), claimed_until = NULL,
           last_status_code = CASE WHEN t.attempted THEN t.status_code ELSE d.last_status_code END,
           last_error = CASE WHEN t.attempted THEN t.error ELSE d.last_error END,
           delivered_at = CASE WHEN t.status = 'delivered' THEN now() END
      FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:attempted AS boolean[]),
                  CAST(:delays AS double precision[]), CAST(:status_codes AS integer[]), CAST(:errors AS text[]))
           AS t (id, status, attempted, delay, status_code, error)
     WHERE d.id = t.id
    """
)


def _outgoing(row: Any) -> Outgoing:
    event = FeedEvent.of_row(row)
    return Outgoing(row.delivery_id, row.endpoint_id, event, row.url, row.secret, row.previous_secret)


def _settled(attempts: int, result: Result, settings: Settings) -> tuple[str, bool, float]:
    """(status, attempted, delay) for a claimed delivery that was tried for the `attempts`th time, or put off."""
    if isinstance(result, PutOff):
        delay = settings.backoff(attempts - 1) if result is PutOff.ENDPOINT_FAILING else 0.0
        return "pending", False, delay
    if result.delivered:
        return "delivered", True, 0.0
    if may_succeed_later(result):
        return "pending", True, settings.backoff(attempts)
    return "dead", True, 0.0  # a 4xx or a refused URL: trying again would not help


def retry_due(settings: Settings, senders: ThreadPoolExecutor | None = None) -> int:
    """Claim, send and record one batch of due pending deliveries; how many were claimed."""
    with db.engine.begin() as connection:
        claimed = connection.execute(CLAIM, {"hold_seconds": settings.hold_seconds, "batch": BATCH}).all()
    if not claimed:
        return 0
    # the claim holds no two events of one resource for one endpoint (the later one waits): each is a chain of its own
    results = send_chains([[_outgoing(row)] for row in claimed], settings, senders)
    ids, statuses, attempted, delays, status_codes, errors = [], [], [], [], [], []
    tried: list[tuple[uuid.UUID, int, int, Answer]] = []
    for row in claimed:
        result = results[row.delivery_id]
        status, was_attempted, delay = _settled(row.attempts, result, settings)
        answer = result if isinstance(result, Answer) else None
        ids.append(row.delivery_id)
        statuses.append(status)
        attempted.append(was_attempted)
        delays.append(delay)
        status_codes.append(answer.status if answer else None)
        errors.append(answer.error if answer else None)
        if answer is not None:
            tried.append((row.delivery_id, row.attempts, row.endpoint_id, answer))
    with db.engine.begin() as connection:
        if tried:
            connection.execute(
                ATTEMPTS,
                {
                    "ids": [delivery for delivery, _, _, _ in tried],
                    "numbers": [number for _, number, _, _ in tried],
                    "status_codes": [answer.status for _, _, _, answer in tried],
                    "errors": [answer.error for _, _, _, answer in tried],
                    "durations": [answer.duration_ms for _, _, _, answer in tried],
                },
            )
        connection.execute(
            SETTLE,
            {"ids": ids, "statuses": statuses, "attempted": attempted, "delays": delays,
             "status_codes": status_codes, "errors": errors},
        )  # fmt: skip
        record_health(connection, settings, [(endpoint, answer) for _, _, endpoint, answer in tried])
    return len(claimed)
