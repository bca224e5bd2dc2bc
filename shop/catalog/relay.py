"""The relay: every catalog change that committed reaches the cache, even when the telling after its commit
failed (Redis paused or restarting) or never ran (the process was killed right after its COMMIT).

Each transaction that changes the catalog writes what it changed to `catalog_changes` in that transaction
(shop/catalog/invalidation.py), so such a row exists exactly when the change committed. After the commit,
the writer tells Redis at once, as before; that is what makes a change visible on every server straight away.
In every app process, a thread of its own then takes the rows at least a second old, tells Redis again and
deletes them, in one transaction: if Redis cannot be told, the delete is rolled back and the rows wait for
the next turn. Telling twice is harmless: a tombstone at a version Redis already has is ignored, and one more
listing generation only costs listings a fresh read.

What this proves (tests/test_catalog_relay.py): once Redis answers again, no server serves a catalog value
older than the last commit for longer than about `FRESH_AGAIN_WITHIN_SECONDS`, whatever happened at commit
time: the breaker's pause, one relay turn, and the age a row must reach.

Several processes relay at once without stepping on each other (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import sqlalchemy as sa
from flask import Flask

from shop.catalog import cache as catalog_cache
from shop.catalog.invalidation import CatalogChanges
from shop.extensions import db
from shop.observability.throttled import ThrottledWarning

log = logging.getLogger(__name__)

EXTENSION = "catalog_relay"
MIN_AGE_SECONDS = 1.0  # younger rows are most likely being told by their own writer right now
BATCH = 5000
FRESH_AGAIN_WITHIN_SECONDS = 5.0  # breaker (2 s) + a relay turn (1 s) + the rows' age (1 s), with room

TAKE_DUE = sa.text(
    """
    DELETE FROM catalog_changes
     WHERE id IN (SELECT id FROM catalog_changes
                   WHERE written_at <= now() - make_interval(secs => :min_age)
                   ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED)
    RETURNING product_ids, versions, listings
    """
)

_warnings = ThrottledWarning(log, "catalog relay could not tell Redis (%s: %s); it tries again")


def relay_due_changes(min_age_seconds: float = MIN_AGE_SECONDS) -> int:
    """Tell Redis the recorded changes at least `min_age_seconds` old, then delete them; how many rows that was.

    Raises if Redis could not be told (the rows stay for the next turn).
    """
    with db.engine.connect() as connection, connection.begin():
        rows = connection.execute(TAKE_DUE, {"min_age": min_age_seconds, "batch": BATCH}).all()
        if not rows:
            return 0
        changes = CatalogChanges()
        for product_ids, versions, listings in rows:
            changes.merge(CatalogChanges(dict(zip(product_ids, versions, strict=True)), listings))
        if changes.product_versions:
            catalog_cache.retire_products(changes.product_versions, strict=True)
        if changes.listings:
            catalog_cache.retire_listings(strict=True)
    return len(rows)


class Relay:
    """One thread per app and process, started by the process's first request (so after gunicorn's fork)."""

    def __init__(self, app: Flask, interval_seconds: float) -> None:
        self._app = app
        self._interval = interval_seconds
        self._pid = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="shop-catalog-relay", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._app.app_context():
                try:
                    relay_due_changes()
                except Exception as error:
                    _warnings.warn("relay", error)
                finally:
                    db.session.remove()


def register_catalog_relay(app: Flask) -> None:
    interval = float(app.config["CATALOG_RELAY_SECONDS"])
    if interval <= 0:
        return
    relay = Relay(app, interval)
    app.extensions[EXTENSION] = relay
    app.before_request(relay.ensure_running)


def stop_catalog_relay(app: Any) -> None:
    relay: Relay | None = app.extensions.get(EXTENSION)
    if relay is not None:
        relay.stop()
