"""The delivery worker (`flask events deliver`): events to webhook endpoints, at least once, in order per resource.

A round, each step its own short transaction (none is open while an endpoint is being waited for):

    dispatch   read the event feed from the workers' cursor (webhook_dispatch; the same never-skip rule as
               GET /api/v1/events), make a delivery for each active endpoint that wants the event's type and
               existed when it occurred, and move the cursor. One worker at a time (the cursor row is locked
               with SKIP LOCKED: the others go on to deliver).
    claim      take due deliveries of active endpoints (FOR UPDATE SKIP LOCKED: workers never take the same one),
               skipping any whose resource has an earlier pending delivery to the same endpoint, so one order's
               events reach an endpoint in sequence order; mark them held for a while and count the attempt.
    send       POST each, signed, to the addresses its URL checks out as now (the SSRF check again).
    record     a 2xx is delivered; 5xx, 408, 429, a timeout or a refused connection is retried after an
               exponential, jittered delay until about a day has passed, then dead; any other answer is dead at
               once. Every attempt is kept. An endpoint with no success for WEBHOOK_DISABLE_AFTER_HOURS is turned
               off, with the reason.

A worker killed anywhere loses nothing: a delivery it held is taken again once its hold passes, and sent again (the
receiver drops the duplicate by Shop-Event-Id). Between rounds the worker sleeps until a NOTIFY on `shop_events`
(sent by the app after commits that wrote events: shop/webhooks/notifier.py) or a second has passed.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import select
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import Connection

from shop.extensions import db
from shop.observability.throttled import ThrottledWarning
from shop.services.events import RELEASED_BELOW, Cursor, FeedEvent
from shop.webhooks.secrets import unseal
from shop.webhooks.sender import Answer, post
from shop.webhooks.signing import signature_header
from shop.webhooks.urls import Target, UnsafeUrl, check_url

log = logging.getLogger(__name__)
_warnings = ThrottledWarning(log, "webhook delivery %s failed (%s); trying again")

CHANNEL = "shop_events"
BATCH = 200
SENDERS = 16  # a batch's sends at once: each mostly waits on an endpoint
DISPATCH_BATCH = 1000
USER_AGENT = "shop-webhooks/1"

ENSURE_CURSOR = sa.text(
    "INSERT INTO webhook_dispatch (id, transaction_id, position) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING"
)
DISPATCH = sa.text(
    f"""
    WITH place AS (SELECT transaction_id, position FROM webhook_dispatch WHERE id = 1 FOR UPDATE SKIP LOCKED),
    horizon AS (SELECT {RELEASED_BELOW} AS xmin),
    batch AS (
        SELECT e.position, e.id, e.transaction_id, e.type, e.resource_type, e.resource_id, e.sequence, e.occurred_at
          FROM events e, place, horizon
         WHERE (e.transaction_id, e.position) > (place.transaction_id, place.position)
           AND e.transaction_id < horizon.xmin
         ORDER BY e.transaction_id, e.position
         LIMIT :batch
    ), made AS (
        INSERT INTO webhook_deliveries (endpoint_id, event_position, event_id, resource_type, resource_id, sequence,
                                        give_up_at)
        SELECT w.id, b.position, b.id, b.resource_type, b.resource_id, b.sequence,
               now() + make_interval(secs => :retry_seconds)
          FROM batch b JOIN webhook_endpoints w
            ON w.is_active AND b.type = ANY(w.event_types) AND b.occurred_at >= w.created_at
        ON CONFLICT (endpoint_id, event_position) DO NOTHING
        RETURNING 1
    ), last AS (
        SELECT transaction_id, position FROM batch ORDER BY transaction_id DESC, position DESC LIMIT 1
    ), moved AS (
        UPDATE webhook_dispatch SET transaction_id = last.transaction_id, position = last.position
          FROM last WHERE webhook_dispatch.id = 1
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch) AS events, (SELECT count(*) FROM made) AS deliveries,
           (SELECT count(*) FROM moved) AS moved
    """  # noqa: S608 - RELEASED_BELOW, our constant
)
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
           AND NOT EXISTS (
               SELECT FROM webhook_deliveries earlier
                WHERE earlier.endpoint_id = c.endpoint_id AND earlier.resource_type = c.resource_type
                  AND earlier.resource_id = c.resource_id AND earlier.status = 'pending'
                  AND earlier.sequence < c.sequence)
         ORDER BY c.next_attempt_at, c.id
         LIMIT :batch
           FOR UPDATE SKIP LOCKED)
       AND w.id = d.endpoint_id AND e.position = d.event_position
    RETURNING d.id AS delivery_id, d.attempts, w.id AS endpoint_id, w.url, w.secret, w.previous_secret,
              w.previous_secret_until > now() AS rotating, e.position, e.id, e.transaction_id, e.type,
              e.resource_type, e.resource_id, e.sequence, e.occurred_at, e.data
    """
)
# a batch's answers in three statements, whatever its size
ATTEMPTS = sa.text(
    """
    INSERT INTO webhook_attempts (delivery_id, status_code, error, duration_ms)
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS integer[]), CAST(:errors AS text[]),
                         CAST(:durations AS integer[]))
    """
)
DELIVERED = sa.text(
    """
    UPDATE webhook_deliveries d
       SET status = 'delivered', delivered_at = now(), claimed_until = NULL, last_status_code = t.status,
           last_error = NULL
      FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS integer[])) AS t (id, status)
     WHERE d.id = t.id
    """
)
ANSWERED = sa.text(
    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ANY(:endpoint_ids) AND failing_since IS NOT NULL"
)
RETRY_LATER = sa.text(
    """
    UPDATE webhook_deliveries
       SET status = CASE WHEN :dead OR now() >= give_up_at THEN 'dead' ELSE 'pending' END,
           next_attempt_at = now() + make_interval(secs => :delay), claimed_until = NULL,
           last_status_code = :status, last_error = :error
     WHERE id = :delivery_id
    """
)
FAILING = sa.text(
    """
    UPDATE webhook_endpoints
       SET failing_since = coalesce(failing_since, now()),
           is_active = is_active AND coalesce(failing_since, now()) > now() - make_interval(secs => :disable_after),
           disabled_reason = CASE WHEN coalesce(failing_since, now()) > now() - make_interval(secs => :disable_after)
                                  THEN disabled_reason
                                  ELSE 'no delivery succeeded since ' || coalesce(failing_since, now())::text END
     WHERE id = :endpoint_id
    """
)


@dataclass(frozen=True)
class Settings:
    timeout_seconds: float
    retry_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    disable_after_seconds: float
    allow_private: bool
    require_https: bool

    @classmethod
    def of(cls, app: Flask) -> Settings:
        config = app.config
        return cls(
            timeout_seconds=float(config["WEBHOOK_TIMEOUT_SECONDS"]),
            retry_seconds=float(config["WEBHOOK_RETRY_HOURS"]) * 3600,
            retry_base_seconds=float(config["WEBHOOK_RETRY_BASE_SECONDS"]),
            retry_max_seconds=float(config["WEBHOOK_RETRY_MAX_SECONDS"]),
            disable_after_seconds=float(config["WEBHOOK_DISABLE_AFTER_HOURS"]) * 3600,
            allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"]),
            require_https=bool(config["WEBHOOK_REQUIRE_HTTPS"]),
        )

    @property
    def hold_seconds(self) -> float:
        """How long a claimed delivery is held: past the send's deadline, with room."""
        return 2 * self.timeout_seconds + 5

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` tries: exponential, capped, jittered (so endpoints that come
        back are not hit by every waiting delivery at once)."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading retries, not a secret


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    endpoint_id: int
    attempts: int
    answer: Answer


@contextmanager
def _transaction() -> Iterator[Connection]:
    with db.engine.begin() as connection:
        yield connection


def dispatch(settings: Settings) -> int:
    """Deliveries for the events released since the workers' cursor; how many events that read."""
    with _transaction() as connection:
        connection.execute(ENSURE_CURSOR)
    with _transaction() as connection:
        row = connection.execute(DISPATCH, {"batch": DISPATCH_BATCH, "retry_seconds": settings.retry_seconds}).one()
    return int(row.events)


def _document(row: Any) -> bytes:
    event = FeedEvent(
        row.id, row.type, row.resource_type, row.resource_id, row.sequence, row.occurred_at, row.data,
        Cursor(row.transaction_id, row.position),
    )  # fmt: skip
    return json.dumps(event.document()).encode()


@dataclass(frozen=True)
class Prepared:
    """A delivery ready to go: where, what and how signed; or why it may not go (`refusal`)."""

    target: Target | None
    body: bytes
    headers: dict[str, str]
    refusal: str | None = None


class Batch:
    """What one batch works out once per endpoint rather than once per delivery: its URL checked, its secrets."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._targets: dict[str, Target | str] = {}
        self._secrets: dict[tuple[str, str | None], list[str]] = {}

    def target(self, url: str) -> Target | str:
        """The checked target, or why the URL is refused."""
        if url not in self._targets:
            settings = self._settings
            try:
                self._targets[url] = check_url(
                    url, allow_private=settings.allow_private, require_https=settings.require_https
                )
            except UnsafeUrl as unsafe:
                self._targets[url] = f"refused: {unsafe}"
        return self._targets[url]

    def secrets(self, sealed: str, previous: str | None) -> list[str]:
        if (sealed, previous) not in self._secrets:
            self._secrets[sealed, previous] = [unseal(sealed), *([unseal(previous)] if previous else [])]
        return self._secrets[sealed, previous]


def _prepare(row: Any, batch: Batch) -> Prepared:
    """Everything that needs the app (its configuration, the secrets' key) is done here, before the sends."""
    body = _document(row)
    target = batch.target(row.url)
    if isinstance(target, str):
        return Prepared(None, body, {}, refusal=target)
    secrets = batch.secrets(row.secret, row.previous_secret if row.rotating else None)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Shop-Event-Id": str(row.id),
        "Shop-Delivery-Id": str(row.delivery_id),
        "Shop-Signature": signature_header(secrets, body),
    }
    return Prepared(target, body, headers)


def _send(prepared: Prepared, timeout_seconds: float) -> Answer:
    if prepared.target is None:
        return Answer(status=None, error=prepared.refusal, duration_ms=0)
    return post(prepared.target, prepared.body, prepared.headers, timeout_seconds)


def _record(outcomes: list[Outcome], settings: Settings) -> None:
    delivered = [outcome for outcome in outcomes if outcome.answer.delivered]
    with _transaction() as connection:
        connection.execute(
            ATTEMPTS,
            {
                "ids": [outcome.delivery_id for outcome in outcomes],
                "statuses": [outcome.answer.status for outcome in outcomes],
                "errors": [outcome.answer.error for outcome in outcomes],
                "durations": [outcome.answer.duration_ms for outcome in outcomes],
            },
        )
        if delivered:
            connection.execute(
                DELIVERED,
                {"ids": [o.delivery_id for o in delivered], "statuses": [o.answer.status for o in delivered]},
            )
            connection.execute(ANSWERED, {"endpoint_ids": sorted({o.endpoint_id for o in delivered})})
        for outcome in outcomes:
            if outcome.answer.delivered:
                continue
            answer = outcome.answer
            ids = {"delivery_id": outcome.delivery_id, "endpoint_id": outcome.endpoint_id}
            refused = answer.error is not None and answer.error.startswith("refused:")
            dead = refused or not answer.worth_retrying  # a 4xx says trying again would not help
            connection.execute(
                RETRY_LATER,
                ids
                | {
                    "dead": dead,
                    "delay": settings.backoff(outcome.attempts),
                    "status": answer.status,
                    "error": answer.error,
                },
            )
            connection.execute(FAILING, ids | {"disable_after": settings.disable_after_seconds})


def deliver_due(settings: Settings, senders: ThreadPoolExecutor | None = None) -> int:
    """Claim, send and record one batch of due deliveries; how many were attempted. The batch holds at most one
    delivery per resource and endpoint (the claim skips any with an earlier one pending), so its sends may run at
    once: `senders` runs them in parallel."""
    with _transaction() as connection:
        rows = connection.execute(CLAIM, {"hold_seconds": settings.hold_seconds, "batch": BATCH}).all()
    if not rows:
        return 0
    batch = Batch(settings)
    ready = [_prepare(row, batch) for row in rows]
    send = functools.partial(_send, timeout_seconds=settings.timeout_seconds)
    answers = list(senders.map(send, ready)) if senders is not None else [send(one) for one in ready]
    outcomes = [
        Outcome(row.delivery_id, row.endpoint_id, row.attempts, answer)
        for row, answer in zip(rows, answers, strict=True)
    ]
    _record(outcomes, settings)
    return len(outcomes)


def run_round(settings: Settings, senders: ThreadPoolExecutor | None = None) -> int:
    """Dispatch what is new, then deliver what is due; how much there was to do."""
    return dispatch(settings) + deliver_due(settings, senders)


class Wakeup:
    """LISTEN on the channel the app NOTIFYs after commits that wrote events, on a connection of its own. A lost
    connection (PostgreSQL restarted, the backend killed) is made again on the next wait; until then, waits are
    plain sleeps, so the worker goes on at its idle pace."""

    def __init__(self, dsn: str, application_name: str) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._connection: Any = None

    def _listening(self) -> Any:
        if self._connection is None or self._connection.closed:
            connection = psycopg2.connect(self._dsn, application_name=self._application_name, connect_timeout=5)
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            self._connection = connection
        return self._connection

    def wait(self, seconds: float, stop: threading.Event) -> None:
        try:
            connection = self._listening()
            if not connection.notifies:
                select.select([connection], [], [], seconds)
            connection.poll()
            connection.notifies.clear()
        except (psycopg2.Error, OSError) as error:
            _warnings.warn("listen", error)
            self.close()
            stop.wait(seconds)

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()
        self._connection = None


def serve(app: Flask, stop: threading.Event, idle_seconds: float = 1.0) -> None:
    """Rounds until `stop` is set; between rounds with nothing to do, sleep until woken or `idle_seconds` pass."""
    with app.app_context():
        settings = Settings.of(app)
        dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        name = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {}).get("application_name", "shop")
        wakeup = Wakeup(dsn, str(name))
        senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="shop-webhook-send")
        try:
            while not stop.is_set():
                try:
                    if run_round(settings, senders):
                        continue
                except Exception as error:  # PostgreSQL restarting, say: once a minute in the log, not every second
                    _warnings.warn("round", error)
                    stop.wait(idle_seconds)
                    continue
                wakeup.wait(idle_seconds, stop)
        finally:
            senders.shutdown(wait=True)
            wakeup.close()
