"""Wake the delivery workers soon after events commit, without taxing the commits.

A NOTIFY inside the writing transaction would do, but PostgreSQL serializes the commits of transactions that
NOTIFY (they queue for one lock): every order would wait for every other. So the writers only `poke()` this
process's notifier after their commit (a flag, no I/O), and its thread sends one NOTIFY on a connection of its
own, at most every WAKE_INTERVAL_SECONDS however many commits there were. A process killed before it notifies
costs at most the workers' idle second (they wake on a timer too).
"""

from __future__ import annotations

import logging
import os
import threading

import sqlalchemy as sa
from flask import Flask, current_app

from shop.extensions import db
from shop.observability.throttled import ThrottledWarning

log = logging.getLogger(__name__)

EXTENSION = "webhook_notifier"
# PostgreSQL down: once a minute, not every 50 ms
_warnings = ThrottledWarning(log, "could not wake the webhook workers (%s: %s); they wake on their timer")
WAKE_INTERVAL_SECONDS = 0.05
NOTIFY = sa.text("SELECT pg_notify('shop_events', '')")


class Notifier:
    def __init__(self, app: Flask) -> None:
        self._app = app
        self._poked = threading.Event()
        self._stopped = threading.Event()
        self._pid = 0
        self._lock = threading.Lock()

    def poke(self) -> None:
        if self._pid != os.getpid():  # first use in this process (after gunicorn's fork): start the thread here
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    threading.Thread(target=self._run, name="shop-webhook-notifier", daemon=True).start()
        self._poked.set()

    def stop(self) -> None:
        self._stopped.set()
        self._poked.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._poked.wait()
            if self._stopped.is_set():
                return
            self._poked.clear()
            try:
                with self._app.app_context(), db.engine.connect() as connection:
                    connection.execute(NOTIFY)
                    connection.commit()
            except Exception as error:  # the workers wake on their timer anyway
                _warnings.warn("notify", error)
            self._stopped.wait(WAKE_INTERVAL_SECONDS)


def register_notifier(app: Flask) -> None:
    if app.config["WEBHOOK_NOTIFY"]:
        app.extensions[EXTENSION] = Notifier(app)


def events_committed() -> None:
    """After a commit that wrote events: the workers should look soon."""
    notifier: Notifier | None = current_app.extensions.get(EXTENSION)
    if notifier is not None:
        notifier.poke()


def stop_notifier(app: Flask) -> None:
    notifier: Notifier | None = app.extensions.get(EXTENSION)
    if notifier is not None:
        notifier.stop()
