"""Short transactions with bounded waits, retried whole when PostgreSQL says a retry will do.

Each attempt runs in a fresh unit of work with `lock_timeout` and `statement_timeout` set for that
transaction only. A serialization failure (40001), a deadlock (40P01) or a dropped connection is retried
a bounded number of times with jittered exponential backoff; when the attempts run out, or a lock or
statement timeout fires, the client gets a 503 with Retry-After instead of a hung worker.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, TypeVar

from flask import current_app
from sqlalchemy.exc import DBAPIError

from shop.db import prepared
from shop.errors import ServiceBusy
from shop.observability.metrics import TRANSACTION_RETRIES

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
BUSY_SQLSTATES = frozenset({"55P03", "57014"})  # lock_not_available (lock_timeout), query_canceled (statement_timeout)


BOUND_WAITS = prepared.PreparedStatement(
    "shop_bound_waits",
    ("text", "text"),
    "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
)


class Transaction(Protocol):
    """What run_transaction needs of a unit of work: a context that rolls back unless committed, whose
    transaction can be told its bounds before it begins."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None: ...

    def bound_waits(self, lock_timeout_ms: int, statement_timeout_ms: int) -> None: ...


U = TypeVar("U", bound=Transaction)


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


def bounded_waits(lock_timeout_ms: int, statement_timeout_ms: int) -> prepared.Call:
    """The statement that bounds a transaction's lock and statement waits (is_local: that transaction only)."""
    return BOUND_WAITS, (f"{lock_timeout_ms}ms", f"{statement_timeout_ms}ms")


def run_transaction(work: Callable[[U], T], *, unit_of_work: Callable[[], U]) -> T:
    """Run `work` (which commits through its unit of work) in a new `unit_of_work()` until it succeeds or may not
    be retried. The work's first statement carries the transaction's bounds (lock and statement timeouts)."""
    config = current_app.config
    attempts = config["TX_ATTEMPTS"]
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work() as uow:
                uow.bound_waits(int(config["TX_LOCK_TIMEOUT_MS"]), int(config["TX_STATEMENT_TIMEOUT_MS"]))
                return work(uow)
        except DBAPIError as error:
            state = _sqlstate(error)
            retryable = state in RETRY_SQLSTATES or error.connection_invalidated
            if state in BUSY_SQLSTATES:
                log.warning("transaction gave up waiting (%s)", state)
                raise ServiceBusy("The store is busy with these products; please retry shortly.") from None
            if not retryable:
                raise
            if attempt == attempts:
                log.warning("transaction failed %d times (%s); giving up", attempts, state or "disconnect")
                raise ServiceBusy("The store could not complete this right now; please retry shortly.") from None
            TRANSACTION_RETRIES.inc()
            # full jitter: concurrent losers do not retry in lockstep
            time.sleep(random.uniform(0, config["TX_RETRY_BASE_SECONDS"] * 2 ** (attempt - 1)))  # noqa: S311
    raise AssertionError("unreachable")  # pragma: no cover
