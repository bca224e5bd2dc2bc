"""A transaction's prepared statements, folded into as few round trips as the transaction allows.

A unit of work hands its repositories one `Statements`. Repositories say what to run and when its rows are
needed; how many messages that takes is decided here:

    run(*calls)      the rows are needed now: one round trip, carrying whatever was deferred before these
                     and, on the transaction's first, BEGIN and its opening statements (its bounded waits)
    defer(*calls)    writes whose results nobody reads: they go with the next run, or with the commit
    (the unit of work's commit)  what is deferred, the catalog's record and COMMIT, in one round trip

So the hottest transaction, an order, is two round trips, and neither the service nor its repository has a
parameter or a flag that exists to save one.

Opening statements (`open_with`) are kept in the session's info until its transaction begins: sent ahead of
the first `run`, or, when the ORM begins the transaction (a transition, a product edit), by the session's
`after_begin` hook before its first statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, SessionTransaction

from shop.db.prepared import Call, Row, run

OPENING = "shop_opening_statements"


def open_with(session: Session, *calls: Call) -> None:
    """Send these first in the session's next transaction (in the same round trip as its first statements)."""
    session.info[OPENING] = list(calls)


def discard_opening(session: Session) -> None:
    """The unit of work ended before its transaction began: its opening statements are not the next one's."""
    session.info.pop(OPENING, None)


def _take_opening(session: Session) -> list[Call]:
    opening: list[Call] = session.info.pop(OPENING, [])
    return opening


def _send_opening(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    """The ORM began the transaction: its opening statements go before its first statement."""
    opening = _take_opening(session)
    if opening:
        run(connection, *opening)


def register_opening_statements() -> None:
    if not event.contains(Session, "after_begin", _send_opening):
        event.listen(Session, "after_begin", _send_opening)


class Statements:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._connection: Connection | None = None
        self._deferred: list[Call] = []

    @property
    def used(self) -> bool:
        """Whether anything was sent or deferred through here (the unit of work then commits through `commit`)."""
        return self._connection is not None or bool(self._deferred)

    def run(self, *calls: Call) -> list[Row]:
        """What was deferred, then these, in one round trip; the last one's rows."""
        batch = [*self._deferred, *calls]
        self._deferred.clear()
        if self._session.in_nested_transaction():
            # asking the session for its connection is what emits a pending SAVEPOINT
            return run(self._session, *batch)
        if self._connection is None:
            opening = _take_opening(self._session)  # taken first: the after_begin hook then sends nothing
            self._connection = self._session.connection()
            return run(self._connection, *opening, *batch, begin=True)
        return run(self._connection, *batch)

    def defer(self, *calls: Call) -> None:
        self._deferred.extend(calls)

    def send_deferred(self) -> None:
        """Send what was deferred now, in one round trip (nothing if nothing was)."""
        if self._deferred:
            self.run()

    def commit(self, last: Sequence[Call]) -> None:
        """The transaction's last round trip: what was deferred and `last`, with COMMIT when this transaction's
        BEGIN was sent with its statements. The session's commit must follow at once (it finishes the rest)."""
        batch = [*self._deferred, *last]
        self._deferred.clear()
        if not batch:
            return
        connection = self._connection if self._connection is not None else self._session.connection()
        run(connection, *batch, commit=True)
