"""Server-side prepared statements for the hottest transactions, several run in one round trip.

psycopg2 never prepares on its own: each statement is parsed and planned again by PostgreSQL, and built
again by SQLAlchemy. For the statements of every order, both costs are worth saving. Each PreparedStatement
is PREPAREd once per database connection, on its first use there (the pool's per-connection `info` remembers
which are), and then sent as `EXECUTE name(...)`; `run` sends several in one message, and the last one's
rows come back.

They are sent on the DBAPI cursor of the session's connection, inside its transaction, skipping SQLAlchemy's
per-statement work (about half the Python time of an order). What SQLAlchemy would do on the way is done
here: the engine's cursor events fire (the slow-SQL log and anything else listening see these statements),
errors come out as SQLAlchemy's DBAPIError (so retries read their SQLSTATE as for any statement), and a lost
connection is invalidated.

Every connection plans them once (`plan_cache_mode = force_generic_plan`, set when the pool opens it): they
are index lookups whose plan does not depend on the values, and left to choose, PostgreSQL plans statements
with array parameters again on every execution (a third of their cost, measured).

Prepared statements belong to a server session: behind a pooler in transaction mode (pgbouncer), which
hands each transaction any server connection, they would not be found. Point DATABASE_URL at PostgreSQL
or at a pooler in session mode.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shop.extensions import db

PREPARED = "shop_prepared_statements"
Row = tuple[Any, ...]


@dataclass(frozen=True)
class PreparedStatement:
    name: str
    parameter_types: tuple[str, ...]
    body: str  # parameters are $1, $2, ... in the order of parameter_types

    def definition(self) -> str:
        return f"PREPARE {self.name} ({', '.join(self.parameter_types)}) AS {self.body}"

    @functools.cached_property
    def call(self) -> str:
        """`EXECUTE name(%s, ...)`, made once: it is sent with every order."""
        return f"EXECUTE {self.name}({', '.join(['%s'] * len(self.parameter_types))})"


Call = tuple[PreparedStatement, Sequence[Any]]


def register_prepared_statements(app: Flask) -> None:
    """Generic plans on every new connection of the app's engine (a session setting, outside any transaction)."""
    with app.app_context():
        engine = db.engine

    def plan_once(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        finally:
            cursor.close()
        dbapi_connection.commit()

    if not event.contains(engine, "connect", plan_once):
        event.listen(engine, "connect", plan_once)


def run(on: Session | Connection, *calls: Call) -> list[Row]:
    """Execute these statements in this order in one round trip, in the transaction of `on`; the last one's rows.

    `on` is a session, or the connection of its transaction (which a caller running several may keep).
    If one fails, the ones after it do not run; the transaction is then aborted, as after any failed statement.
    """
    for statement, parameters in calls:
        if len(parameters) != len(statement.parameter_types):
            raise TypeError(f"{statement.name} takes {len(statement.parameter_types)} parameters")
    connection = on.connection() if isinstance(on, Session) else on
    _prepare(connection, [statement for statement, _ in calls])
    sql = "; ".join(statement.call for statement, _ in calls)
    return _execute(connection, sql, tuple(value for _, parameters in calls for value in parameters))


def _prepare(connection: Connection, statements: Sequence[PreparedStatement]) -> None:
    prepared: set[str] = connection.connection.info.setdefault(PREPARED, set())
    missing = [statement for statement in statements if statement.name not in prepared]
    if not missing:
        return
    # PREPARE is not transactional: one that ran in a transaction that failed afterwards is still there
    existing = {row[0] for row in _execute(connection, "SELECT name FROM pg_prepared_statements", ())}
    definitions = [statement.definition() for statement in missing if statement.name not in existing]
    if definitions:
        _execute(connection, "; ".join(definitions), None)
    prepared.update(statement.name for statement in missing)


def _execute(connection: Connection, sql: str, parameters: tuple[Any, ...] | None) -> list[Row]:
    dbapi_connection = connection.connection.dbapi_connection
    dialect = connection.dialect
    events = connection.dispatch
    cursor = dbapi_connection.cursor()  # type: ignore[union-attr]  # checked out, so never None
    try:
        events.before_cursor_execute(connection, cursor, sql, parameters, None, False)
        cursor.execute(sql, parameters)
        rows = list(cursor.fetchall()) if cursor.description is not None else []
        events.after_cursor_execute(connection, cursor, sql, parameters, None, False)
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, parameters, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from error
    finally:
        cursor.close()
    return rows
