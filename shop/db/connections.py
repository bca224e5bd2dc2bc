"""Pooled database connections: a connection that sat idle is pinged before it is used again.

SQLAlchemy's `pool_pre_ping` pings on every checkout, a round trip per request however busy the pool is.
A connection that was in use a moment ago is as alive as a ping would show: what breaks connections
(a database restart or failover, a proxy's idle timeout) finds them waiting in the pool. So only a
connection idle for DB_PING_AFTER_IDLE_SECONDS or more is pinged (0: every one, as pool_pre_ping does);
a dead one is replaced before the request sees it (SQLAlchemy's documented DisconnectionError protocol).
A connection that breaks while in use fails its statement either way; order placement retries on that, and
the error handler answers 503 for the rest. One that breaks after the request's last statement is discarded
when the request ends (`end_session_quietly`), without touching the answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask
from sqlalchemy import event, exc

from shop.extensions import db

IDLE_SINCE = "shop_idle_since"


def register_connection_checks(app: Flask) -> None:
    ping_after = float(app.config["DB_PING_AFTER_IDLE_SECONDS"])
    with app.app_context():
        engine = db.engine
    dialect = engine.dialect

    def idle_from_now(dbapi_connection: Any, record: Any) -> None:
        # on connect (a new connection needs no ping) and on checkin
        record.info[IDLE_SINCE] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get(IDLE_SINCE, float("-inf")) < ping_after:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.DisconnectionError() from error  # the pool replaces it and checks out again
            raise

    for name, listener in (("connect", idle_from_now), ("checkin", idle_from_now), ("checkout", ping_if_idle)):
        event.listen(engine, name, listener)
    # runs before Flask-SQLAlchemy's own teardown (teardowns run in reverse order), which then finds nothing to do
    app.teardown_appcontext(end_session_quietly)


def end_session_quietly(error: BaseException | None) -> None:
    """End the request's session; a connection that died after its last statement is only discarded.

    Ending a session rolls its transaction back. If the connection was killed after the request's last
    statement (a database restart, pg_terminate_backend), that ROLLBACK fails after the answer was made, and
    the failure escaped as a bare 500 from the server: the answer stands, the connection is invalidated.
    """
    try:
        db.session.remove()
    except exc.DBAPIError as failed:
        if not failed.connection_invalidated:
            raise
        logging.getLogger(__name__).warning("a connection died before the end of its request: %s", failed.orig)
        db.session.remove()  # the dead connection is invalidated now; this lets go of the rest
