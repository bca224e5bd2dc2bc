"""One redis-py client per app, with short timeouts, and a circuit breaker: a dead or paused Redis costs one
timeout per process every few seconds, not one (or several) per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from flask import Flask, current_app

# what says Redis is not there (refused, reset, timed out, loading), as opposed to a refused command
OUTAGES = (redis.ConnectionError, redis.TimeoutError, OSError)
T = TypeVar("T")


class Breaker:
    """After a Redis call fails for want of Redis, the process asks Redis nothing for `open_seconds`, then lets
    one call through to probe; the first success closes it again.

    Without it, a SIGSTOPped Redis cost each catalog read several socket timeouts (p50 0.6-1.2 s); with it, reads
    go straight to PostgreSQL while it is open. Whatever is skipped meanwhile is either a read (PostgreSQL
    answers instead) or a cache invalidation, which the catalog relay applies once Redis answers again.
    """

    def __init__(self, open_seconds: float) -> None:
        self.open_seconds = open_seconds
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._failing = False

    def allows(self) -> bool:
        if not self._failing:
            return True  # closed: no lock on the hot path
        now = time.monotonic()
        with self._lock:
            if now < self._open_until:
                return False
            self._open_until = now + self.open_seconds  # this caller probes; the others wait for its outcome
            return True

    def failed(self) -> None:
        with self._lock:
            self._failing = True
            self._open_until = time.monotonic() + self.open_seconds

    def succeeded(self) -> None:
        if self._failing:
            with self._lock:
                self._failing = False
                self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._failing and time.monotonic() < self._open_until

    def call(self, action: Callable[[], T]) -> T:
        """`action` through the breaker: BreakerOpen without calling it while open; an outage it raises opens the
        breaker, a success closes it. Every Redis call that can wait on a socket goes through here."""
        if not self.allows():
            raise BreakerOpen("Redis is left alone for now: it failed to answer a moment ago")
        try:
            result = action()
        except OUTAGES:
            self.failed()
            raise
        self.succeeded()
        return result


class BreakerOpen(redis.ConnectionError):
    """Redis was not asked (the breaker is open); an outage like any other to the caller."""


class RedisClient:
    def init_app(self, app: Flask) -> None:
        timeout = app.config["REDIS_SOCKET_TIMEOUT"]
        app.extensions["redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        app.extensions["redis_breaker"] = Breaker(app.config["REDIS_BREAKER_SECONDS"])

    @property
    def client(self) -> redis.Redis:
        client: redis.Redis = current_app.extensions["redis"]
        return client

    @property
    def breaker(self) -> Breaker:
        breaker: Breaker = current_app.extensions["redis_breaker"]
        return breaker

    def is_up(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
