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
from typing import TypeVar

from flask import current_app
from sqlalchemy.exc import DBAPIError

from shop.errors import ServiceBusy
from shop.observability.metrics import TRANSACTION_RETRIES
from shop.repositories import prepared
from shop.services.unit_of_work import UnitOfWork

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
BUSY_SQLSTATES = frozenset({"55P03", "57014"})  # lock_not_available (lock_timeout), query_canceled (statement_timeout)


BOUND_WAITS = prepared.PreparedStatement(
    "shop_bound_waits",
    ("text", "text"),
    "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
)


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


def bounded_waits() -> prepared.Call:
    """The statement that bounds this transaction's lock and statement waits (is_local: this transaction only)."""
    config = current_app.config
    return BOUND_WAITS, (f"{int(config['TX_LOCK_TIMEOUT_MS'])}ms", f"{int(config['TX_STATEMENT_TIMEOUT_MS'])}ms")


def run_transaction(work: Callable[[UnitOfWork], T], *, work_sends_waits: bool = False) -> T:
    """Run `work` (which commits through its unit of work) until it succeeds or may not be retried.

    `work_sends_waits`: the work sends `bounded_waits()` itself, ahead of its own first statement and in the
    same round trip (order placement does); otherwise they are sent before the work starts.
    """
    config = current_app.config
    attempts = config["TX_ATTEMPTS"]
    for attempt in range(1, attempts + 1):
        try:
            with UnitOfWork() as uow:
                if not work_sends_waits:
                    prepared.run(uow.session, bounded_waits())
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
