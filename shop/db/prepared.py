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

A transaction's BEGIN and COMMIT can ride along too (`run(..., begin=True)` on its first statements,
`commit=True` on its last): psycopg2 sends each of them as a round trip of its own. While such a transaction
is open, psycopg2 is put in autocommit mode, so that it sends nothing by itself, and the connection's `info`
says so; the engine's commit and rollback then finish it (`run` begins SQLAlchemy's transaction too, so there
is always one to end), and a unit of work commits or rolls back as it always does, whatever was sent.
A single read that needs no transaction (`alone=True`, the token lookup) is sent in autocommit, with no
BEGIN at all.

Prepared statements belong to a server session: behind a pooler in transaction mode (pgbouncer), which
hands each transaction any server connection, they would not be found. Point DATABASE_URL at PostgreSQL
or at a pooler in session mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
from flask import Flask
from psycopg2 import extensions as psycopg2_extensions
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shop.extensions import db

PREPARED = "shop_prepared_statements"
# in a connection's info while a transaction begun by `run(..., begin=True)` is open (psycopg2 in autocommit)
OWN_TRANSACTION = "shop_own_transaction"
Row = tuple[Any, ...]


@dataclass(frozen=True)
class PreparedStatement:
    name: str
    parameter_types: tuple[str, ...]
    body: str  # parameters are $1, $2, ... in the order of parameter_types

    def definition(self) -> str:
        types = f" ({', '.join(self.parameter_types)})" if self.parameter_types else ""  # () is a syntax error
        return f"PREPARE {self.name}{types} AS {self.body}"

    @functools.cached_property
    def call(self) -> str:
        """`EXECUTE name(%s, ...)`, made once: it is sent with every order."""
        placeholders = f"({', '.join(['%s'] * len(self.parameter_types))})" if self.parameter_types else ""
        return f"EXECUTE {self.name}{placeholders}"


Call = tuple[PreparedStatement, Sequence[Any]]


class StatementContext:
    """Passed to the cursor events where SQLAlchemy passes its execution context.

    Listeners read its dialect and keep their own attributes on it between before_ and after_cursor_execute
    (Sentry's SQLAlchemy integration keeps its span there); with None in its place, they raised.
    """

    def __init__(self, connection: Connection) -> None:
        self.dialect = connection.dialect
        self.connection = connection


def register_prepared_statements(app: Flask) -> None:
    """Generic plans on every new connection of the app's engine (a session setting, outside any transaction)."""
    with app.app_context():
        engine = db.engine

    def plan_once(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.autocommit = True  # one round trip, not BEGIN, SET and COMMIT: behind a pooler, every
        cursor = dbapi_connection.cursor()  # request opens a connection (DB_EXTERNAL_POOL)
        try:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        finally:
            cursor.close()
            dbapi_connection.autocommit = False

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("connect", plan_once),
        ("commit", _commit_own_transaction),
        ("rollback", _roll_back_own_transaction),
    ]
    for name, listener in listeners:
        if not event.contains(engine, name, listener):
            event.listen(engine, name, listener)


def run(
    on: Session | Connection, *calls: Call, begin: bool = False, commit: bool = False, alone: bool = False
) -> list[Row]:
    """Execute these statements in this order in one round trip, in the transaction of `on`; the last one's rows.

    `on` is a session, or the connection of its transaction (which a caller running several may keep).
    If one fails, the ones after it do not run; the transaction is then aborted, as after any failed statement.

    `begin`: these are the transaction's first statements; unless one is open already, BEGIN goes with them.
    `commit`: these are its last (the unit of work's commit follows at once); if it was begun with `begin`,
    COMMIT goes with them, and no rows come back. `alone`: a single read that needs no transaction; unless one
    is open already, it is sent in autocommit.
    """
    for statement, parameters in calls:
        if len(parameters) != len(statement.parameter_types):
            raise TypeError(f"{statement.name} takes {len(statement.parameter_types)} parameters")
    connection = on.connection() if isinstance(on, Session) else on
    if not connection.in_transaction():
        connection.begin()  # as SQLAlchemy's own execute would: so its commit and rollback know of this one
    record = connection.connection
    statements = [statement for statement, _ in calls]
    sql = "; ".join(statement.call for statement in statements)
    parameters = tuple(value for _, values in calls for value in values)
    dbapi_connection: Any = record.dbapi_connection
    own = bool(record.info.get(OWN_TRANSACTION))
    # psycopg2 has no transaction open, and neither have we: nothing was sent since the last COMMIT or ROLLBACK
    idle = dbapi_connection.status == psycopg2_extensions.STATUS_READY and not own
    outside_psycopg2 = idle and (begin or alone)
    if outside_psycopg2:
        dbapi_connection.autocommit = True  # so that psycopg2 sends no BEGIN of its own
        if begin:
            record.info[OWN_TRANSACTION] = own = True
            sql = f"BEGIN; {sql}"
    ending = commit and own
    if ending:
        sql = f"{sql}; COMMIT"
    try:
        _prepare(connection, statements)  # before any BEGIN here: PREPARE is not transactional anyway
        rows = _execute(connection, sql, parameters)
    finally:
        # not on a connection that died meanwhile: psycopg2 would raise InterfaceError here, in place of the
        # error that says the connection was lost (which is what lets the caller retry or answer 503)
        if outside_psycopg2 and alone and not dbapi_connection.closed:
            dbapi_connection.autocommit = False
    if ending:
        _finish_own_transaction(record)  # committed; had it failed, the rollback that follows finishes it
    return rows


def _finish_own_transaction(record: Any) -> None:
    """After a transaction `run` began: roll it back if it is still open (it was not committed), and give
    psycopg2 its transactions back. `record` is the pool's record of the connection."""
    record.info.pop(OWN_TRANSACTION, None)
    dbapi_connection = record.dbapi_connection
    if dbapi_connection is None or dbapi_connection.closed:
        return  # lost: the server ended the transaction with the session
    try:
        if dbapi_connection.info.transaction_status != psycopg2_extensions.TRANSACTION_STATUS_IDLE:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                cursor.close()
    except psycopg2.Error:
        if not dbapi_connection.closed:
            raise
        return  # the connection died under the ROLLBACK: the server ended the transaction with the session
    dbapi_connection.autocommit = False


def _has_own_transaction(connection: Connection) -> bool:
    return not (connection.invalidated or connection.closed) and bool(connection.connection.info.get(OWN_TRANSACTION))


def _commit_own_transaction(connection: Connection) -> None:
    # the engine is committing: psycopg2 would send nothing (autocommit), so the COMMIT is ours to send,
    # through _execute, so a failure at COMMIT (a deferred constraint) is a DBAPIError like any other
    if _has_own_transaction(connection):
        _execute(connection, "COMMIT", None)
        _finish_own_transaction(connection.connection)  # had COMMIT failed, the rollback that follows finishes it


def _roll_back_own_transaction(connection: Connection) -> None:
    if _has_own_transaction(connection):
        _finish_own_transaction(connection.connection)


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
    context = StatementContext(connection)
    try:
        events.before_cursor_execute(connection, cursor, sql, parameters, context, False)
        cursor.execute(sql, parameters)
        rows = list(cursor.fetchall()) if cursor.description is not None else []
        events.after_cursor_execute(connection, cursor, sql, parameters, context, False)
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
