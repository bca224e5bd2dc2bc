"""Warnings about an outage, at most once a minute: a server that is down should not flood the logs."""

from __future__ import annotations

import logging
import threading
import time

WARNING_INTERVAL_SECONDS = 60.0


class ThrottledWarning:
    """Log an outage ('Redis is down', 'PostgreSQL is down') once per interval, not once per request or per turn:
    `message` with two values, the operation and the error."""

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self._logger = logger
        self._message = message
        self._lock = threading.Lock()
        self._last = float("-inf")

    def warn(self, operation: str, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < WARNING_INTERVAL_SECONDS:
                return
            self._last = now
        self._logger.warning(self._message, operation, error)
