"""The delivery worker (`flask events deliver`): events to webhook endpoints, at least once, in order per resource.

A round is one batch of each path, each step its own short transaction (none is open while an endpoint is being
waited for):

    follow   an endpoint with events past its cursor is leased, its next events read from the feed (the same
             never-skip rule as GET /api/v1/events), sent, and recorded as one row each, with the cursor moved
             past them (shop/webhooks/follow.py);
    retry    deliveries recorded pending (a 5xx, 408, 429, a timeout or a refused connection; or waiting behind such
             a one of the same resource) are claimed when due, sent and settled (shop/webhooks/retry.py).

A 2xx is delivered; a retryable failure is tried again after an exponential, jittered delay until about a day has
passed, then dead; any other answer is dead at once. Every attempt is kept. An endpoint with no success for
WEBHOOK_DISABLE_AFTER_HOURS is turned off, with the reason.

Under a steady trickle the worker waits GATHER_SECONDS between rounds, so that each round carries a batch rather
than an event or two (a round's statements cost about the same whatever its size): events wait that much longer,
and PostgreSQL spends a small fraction of the CPU on delivering them.

A worker killed anywhere loses nothing: what it held (an endpoint's cursor, claimed deliveries) is taken again once
its hold passes, and sent again (the receiver drops the duplicate by Shop-Event-Id). Between rounds with nothing to
do the worker sleeps until a NOTIFY on `shop_events` (sent by the app after commits that wrote events:
shop/webhooks/notifier.py) or a second has passed.
"""

from __future__ import annotations

import logging
import select
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg2
from flask import Flask

from shop.extensions import db
from shop.observability.throttled import ThrottledWarning
from shop.webhooks.follow import follow
from shop.webhooks.retry import BATCH as RETRY_BATCH
from shop.webhooks.retry import retry_due
from shop.webhooks.sending import SENDERS
from shop.webhooks.settings import Settings

log = logging.getLogger(__name__)
_warnings = ThrottledWarning(log, "webhook delivery %s failed (%s); trying again")

CHANNEL = "shop_events"
GATHER_SECONDS = 0.1

__all__ = ["CHANNEL", "Settings", "run_round", "serve"]


@dataclass(frozen=True)
class Round:
    work: int  # events read and retries claimed
    full: bool  # some batch was full: there is more to do at once


def run_round(settings: Settings, senders: ThreadPoolExecutor | None = None) -> Round:
    """A batch of new events for each endpoint that has any, then a batch of due retries."""
    served: set[int] = set()
    work, full = 0, False
    while (followed := follow(settings, senders)) is not None:
        work, full = work + followed.events, full or followed.full
        if followed.endpoint_id in served:  # round the endpoints once: a busy one does not keep the round going
            break
        served.add(followed.endpoint_id)
    claimed = retry_due(settings, senders)
    return Round(work + claimed, full or claimed >= RETRY_BATCH)


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
                    done = run_round(settings, senders)
                except Exception as error:  # PostgreSQL restarting, say: once a minute in the log, not every second
                    _warnings.warn("round", error)
                    stop.wait(idle_seconds)
                    continue
                if done.full:
                    continue
                if done.work:
                    # a trickle: let events gather for a moment, so that rounds (a handful of statements each,
                    # whatever their size) are not paid for two or three events at a time
                    stop.wait(GATHER_SECONDS)
                    continue
                wakeup.wait(idle_seconds, stop)
        finally:
            senders.shutdown(wait=True)
            wakeup.close()
