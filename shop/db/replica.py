"""Reads that may go to a streaming replica: the reports, the staff dashboard and the event feed.

With DATABASE_REPLICA_URL set, a view marked `@replica_read` reads through `read_session()`, which is a session of
the replica when, at the start of the view, the replica answered within REPLICA_PROBE_TIMEOUT_SECONDS, is a hot
standby still replaying, and its replay is at most REPLICA_MAX_LAG_SECONDS behind; otherwise it is the primary's
usual session. Either way `read_source()` says which, and as of when the figures are true:

- a replica that has replayed all the WAL it received, while streaming from the primary, is current: as of now;
- one behind (replay paused, or slower than the primary writes) is as of its last replayed commit, and its lag is
  now minus that commit's time. After a quiet spell that overstates the lag for the moment the first new WAL takes
  to replay: it errs towards the primary, never towards staleness;
- one not streaming (its primary unreachable) cannot say how far behind it is: the primary is read instead.

A replica that does not answer (stopped, unreachable, paused by SIGSTOP) or fails mid-read costs the request
REPLICA_PROBE_TIMEOUT_SECONDS (or the connect timeout, DB_REPLICA_CONNECT_TIMEOUT, for a new connection), after
which the view runs again on the primary; the process then leaves the replica alone for REPLICA_RETRY_SECONDS.
A read that takes more than REPLICA_READ_TIMEOUT_SECONDS on the replica is abandoned the same way: no answer waits
on a replica that stopped answering mid-query. The views are reads, so running one again is safe.

Writes never go to the replica: only `read_session()` hands out its session, only `@replica_read` views call it,
and a hot standby refuses writes itself. Everything else (signing in, orders, the staff order page that acts on
an order) reads and writes the primary.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from flask import Flask, Response, current_app, g
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from shop.extensions import db

EXTENSION = "shop_replica_reads"
PRIMARY, REPLICA = "primary", "replica"
log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# What the replica knows of itself, in one round trip (its first statement: the read's snapshot follows it).
# pg_stat_wal_receiver shows a row while the WAL receiver runs; 'streaming' is its state when connected.
REPLICA_STATE = sa.text(
    """
    SELECT now() AS now,
           pg_is_in_recovery() AS standby,
           pg_is_wal_replay_paused() AS paused,
           pg_last_xact_replay_timestamp() AS replayed_at,
           pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() AS caught_up,
           EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming
    """
)


@dataclass(frozen=True)
class ReadSource:
    name: str  # PRIMARY or REPLICA
    as_of: datetime  # every commit before this is in what the read sees


class ReplicaUnusable(Exception):
    """The replica cannot serve this read: not answering, not streaming, or too far behind."""


class ReplicaStalled(Exception):
    """A read on the replica outran its deadline; its connection was cut."""


class ReplicaReads:
    """The replica's engine and the process's memory of how it has been answering."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        options: dict[str, Any] = {**config["SQLALCHEMY_ENGINE_OPTIONS"]}
        options["connect_args"] = {
            **options.get("connect_args", {}),
            "connect_timeout": config["DB_REPLICA_CONNECT_TIMEOUT"],
            "application_name": f"{options.get('connect_args', {}).get('application_name', 'shop')}-replica",
        }
        self.engine = sa.create_engine(config["DATABASE_REPLICA_URL"], **options)
        self.sessions = sessionmaker(bind=self.engine, autoflush=False, expire_on_commit=False)
        self.max_lag = float(config["REPLICA_MAX_LAG_SECONDS"])
        self.probe_timeout = float(config["REPLICA_PROBE_TIMEOUT_SECONDS"])
        self.read_timeout = float(config["REPLICA_READ_TIMEOUT_SECONDS"])
        self.retry_after = float(config["REPLICA_RETRY_SECONDS"])
        self._resting_until = 0.0
        self._lock = threading.Lock()

    def rest(self, why: object) -> None:
        """Leave the replica alone for REPLICA_RETRY_SECONDS in this process."""
        with self._lock:
            self._resting_until = time.monotonic() + self.retry_after
        log.warning("reading from the primary for %.0f s: the replica %s", self.retry_after, why)

    def resting(self) -> bool:
        with self._lock:
            return time.monotonic() < self._resting_until

    def open(self) -> tuple[Session, ReadSource]:
        """A session on the replica and what it can vouch for; ReplicaUnusable if it cannot serve the read."""
        if self.resting():
            raise ReplicaUnusable("resting after a failure")
        for attempt in (1, 2):
            session = self.sessions()
            try:
                with deadline(session, self.probe_timeout):
                    state = session.execute(REPLICA_STATE).one()
                break
            except (DBAPIError, ReplicaStalled) as failed:
                close_quietly(session)
                if attempt == 1 and isinstance(failed, DBAPIError) and failed.connection_invalidated:
                    continue  # a pooled connection that died while idle (a replica restart): try a new one
                self.rest(f"did not answer ({type(failed).__name__})")
                raise ReplicaUnusable("not answering") from failed
        source = self.source_of(state)
        if source is None:
            close_quietly(session)
            raise ReplicaUnusable("too far behind")
        return session, source

    def source_of(self, state: Any) -> ReadSource | None:
        if not state.standby:  # promoted, or a primary named by mistake: not the primary's copy any more
            log.warning("DATABASE_REPLICA_URL names a server that is not a standby; reading from the primary")
            return None
        if state.caught_up and state.streaming and not state.paused:
            return ReadSource(REPLICA, state.now)
        if state.replayed_at is None or not state.streaming:
            return None  # cannot tell how far behind it is
        lag = max((state.now - state.replayed_at).total_seconds(), 0.0)
        if lag > self.max_lag:
            return None
        return ReadSource(REPLICA, state.replayed_at)


def init_replica_reads(app: Flask) -> None:
    """Route @replica_read views to DATABASE_REPLICA_URL when it is set."""
    if not app.config.get("DATABASE_REPLICA_URL"):
        return
    reads = ReplicaReads(app)
    app.extensions[EXTENSION] = reads

    @event.listens_for(reads.engine, "handle_error")
    def remember_failure(context: Any) -> None:
        if "replica_session" in g:
            g.replica_failed = True

    @app.teardown_appcontext
    def close_replica_session(error: BaseException | None) -> None:
        session = g.pop("replica_session", None)
        if session is not None:
            close_quietly(session)


def replica_read(view: Callable[P, R]) -> Callable[P, R]:
    """Run the view's reads on the replica when it can serve them, on the primary otherwise (see the module)."""

    @functools.wraps(view)
    def reading(*args: P.args, **kwargs: P.kwargs) -> R:
        reads: ReplicaReads | None = current_app.extensions.get(EXTENSION)
        if reads is None:
            return _on_primary(view, *args, **kwargs)
        try:
            session, source = reads.open()
        except ReplicaUnusable:
            return _on_primary(view, *args, **kwargs)
        g.replica_session, g.read_source = session, source
        try:
            with deadline(session, reads.read_timeout):
                answer = view(*args, **kwargs)
        except (DBAPIError, ReplicaStalled) as failed:
            if not (isinstance(failed, ReplicaStalled) or g.pop("replica_failed", False)):
                raise  # the primary's, not the replica's
            close_quietly(g.pop("replica_session"))
            if _unreachable(failed):
                reads.rest(f"failed mid-read ({type(failed).__name__})")
            else:  # a conflict with recovery, say: the replica is fine, this read lost
                log.warning("a read on the replica failed, reading from the primary: %s", failed)
            return _on_primary(view, *args, **kwargs)
        return _labelled(answer, REPLICA)

    return reading


def _on_primary(view: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    g.pop("replica_session", None)
    g.read_source = None  # read_source() asks the primary when first wanted
    return _labelled(view(*args, **kwargs), PRIMARY)


def _labelled(answer: R, source: str) -> R:
    if isinstance(answer, Response):
        answer.headers["Read-Source"] = source
    return answer


def _unreachable(failed: BaseException) -> bool:
    return isinstance(failed, ReplicaStalled) or bool(getattr(failed, "connection_invalidated", False))


def read_session() -> Session:
    """The session a @replica_read view reads through: the replica's when it was chosen, the primary's otherwise."""
    session: Session | None = g.get("replica_session")
    return session if session is not None else db.session()


def read_source() -> ReadSource:
    """Where the current read comes from and as of when (on the primary: its transaction's start)."""
    source: ReadSource | None = g.get("read_source")
    if source is None:
        now: datetime = db.session.execute(sa.text("SELECT now()")).scalar_one()
        source = ReadSource(PRIMARY, now)
        g.read_source = source
    return source


def close_quietly(session: Session) -> None:
    try:
        session.close()
    except DBAPIError:
        session.invalidate()  # its connection died: the pool replaces it


@contextmanager
def deadline(session: Session, seconds: float) -> Iterator[None]:
    """Cut the session's connection if the block outlasts `seconds`: a server that stopped answering (SIGSTOP, a
    dead network) leaves a read blocked in the socket, where no statement_timeout of its own can end it. The block
    then fails with a connection error, raised here as ReplicaStalled."""
    fd = session.connection().connection.dbapi_connection.fileno()  # type: ignore[union-attr]
    guard = threading.Lock()
    state = {"done": False, "cut": False}

    def cut() -> None:
        with guard:
            if state["done"]:
                return  # the block ended first; the socket may already be someone else's
            state["cut"] = True
            with socket.socket(fileno=os.dup(fd)) as duplicate:
                duplicate.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    except DBAPIError as failed:
        with guard:
            state["done"] = True
        if state["cut"]:
            raise ReplicaStalled(f"no answer within {seconds:g} s") from failed
        raise
    finally:
        with guard:
            state["done"] = True
        timer.cancel()
