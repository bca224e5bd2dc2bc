"""prepared.run: BEGIN and COMMIT sent with a transaction's statements, and a lone read in autocommit.

Whatever was sent, a unit of work must end as it always does: committed by its commit, rolled back by its
rollback or by the pool, and the connection handed back with psycopg2 managing its transactions again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from psycopg2 import extensions
from sqlalchemy.exc import DBAPIError

from shop.db.prepared import PreparedStatement, run
from shop.extensions import db
from shop.services.unit_of_work import UnitOfWork
from tests.conftest import statements_sent
from tests.helpers import ADDRESS, make_products, tokens

pytestmark = pytest.mark.commits

ADD_NOTE = PreparedStatement("test_add_note", ("text",), "INSERT INTO prepared_notes (note) VALUES ($1)")
COUNT_NOTES = PreparedStatement("test_count_notes", (), "SELECT count(*) FROM prepared_notes")


@pytest.fixture
def notes(committing_app: Flask) -> Iterator[Flask]:
    """A table of its own (a unique note, so a duplicate fails the statement) for the length of a test."""
    with committing_app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE prepared_notes (note text PRIMARY KEY)"))
    yield committing_app
    with committing_app.app_context():
        db.session.remove()
        db.engine.dispose()  # the prepared statements name the table: no pooled connection keeps them
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE prepared_notes"))


def stored(app: Flask) -> list[str]:
    """The notes another connection sees: only what was committed."""
    with app.app_context(), db.engine.connect() as connection:
        return list(connection.scalars(sa.text("SELECT note FROM prepared_notes ORDER BY note")))


@pytest.fixture
def sent(notes: Flask) -> Iterator[list[str]]:
    with statements_sent(notes) as messages:
        yield messages


def psycopg2_state(uow: UnitOfWork) -> tuple[bool, int, int]:
    """(autocommit, psycopg2's own transaction status, the server's transaction status) of the session's connection."""
    dbapi_connection: Any = uow.session.connection().connection.dbapi_connection
    return dbapi_connection.autocommit, dbapi_connection.status, dbapi_connection.info.transaction_status


def test_begin_and_commit_go_with_the_statements_and_the_transaction_commits(notes: Flask, sent: list[str]) -> None:
    with notes.app_context(), UnitOfWork() as uow:
        run(uow.session, (ADD_NOTE, ("first",)), begin=True)
        assert psycopg2_state(uow)[2] == extensions.TRANSACTION_STATUS_INTRANS
        assert stored(notes) == []  # open: not visible to anyone else yet
        run(uow.session, (ADD_NOTE, ("second",)), commit=True)
        assert stored(notes) == ["first", "second"]
        assert psycopg2_state(uow) == (False, extensions.STATUS_READY, extensions.TRANSACTION_STATUS_IDLE)
        uow.commit()

    ours = [message for message in sent if "test_add_note(" in message]
    assert ours == ["BEGIN; EXECUTE test_add_note(%s)", "EXECUTE test_add_note(%s); COMMIT"]
    assert "COMMIT" not in [message.strip().upper() for message in sent]  # no COMMIT of its own


def test_a_transaction_begun_with_the_statements_is_committed_by_the_unit_of_work(notes: Flask) -> None:
    with notes.app_context(), UnitOfWork() as uow:
        run(uow.session, (ADD_NOTE, ("kept",)), begin=True)
        run(uow.session, (ADD_NOTE, ("also kept",)))
        uow.commit()
        assert psycopg2_state(uow) == (False, extensions.STATUS_READY, extensions.TRANSACTION_STATUS_IDLE)
    assert stored(notes) == ["also kept", "kept"]


def test_a_transaction_begun_with_the_statements_is_rolled_back_by_the_unit_of_work(notes: Flask) -> None:
    with notes.app_context():
        with UnitOfWork() as uow:
            run(uow.session, (ADD_NOTE, ("discarded",)), begin=True)
            run(uow.session, (ADD_NOTE, ("also discarded",)))
            # no commit: leaving the unit of work rolls back
        with UnitOfWork() as uow:
            assert psycopg2_state(uow) == (False, extensions.STATUS_READY, extensions.TRANSACTION_STATUS_IDLE)
    assert stored(notes) == []


def test_a_failed_statement_rolls_back_the_whole_transaction_and_the_connection_works_after(notes: Flask) -> None:
    with notes.app_context():
        with UnitOfWork() as uow:
            run(uow.session, (ADD_NOTE, ("once",)), begin=True)
            with pytest.raises(DBAPIError) as failure:
                run(uow.session, (ADD_NOTE, ("twice",)), (ADD_NOTE, ("twice",)), commit=True)
            assert getattr(failure.value.orig, "pgcode", None) == "23505"  # unique_violation, before COMMIT
            assert psycopg2_state(uow)[2] == extensions.TRANSACTION_STATUS_INERROR
        assert stored(notes) == []  # "once" went with the rest

        with UnitOfWork() as uow:  # the same pooled connection, in its normal mode
            assert psycopg2_state(uow)[:2] == (False, extensions.STATUS_READY)
            uow.session.execute(sa.text("INSERT INTO prepared_notes VALUES ('through the ORM')"))
            uow.commit()
    assert stored(notes) == ["through the ORM"]


def test_a_connection_closed_mid_transaction_is_rolled_back(notes: Flask) -> None:
    with notes.app_context():
        with db.engine.connect() as connection:
            run(connection, (ADD_NOTE, ("abandoned",)), begin=True)
            # closed without commit or rollback
        assert stored(notes) == []
        with db.engine.connect() as connection:
            dbapi_connection: Any = connection.connection.dbapi_connection
            assert dbapi_connection.autocommit is False
            assert dbapi_connection.info.transaction_status == extensions.TRANSACTION_STATUS_IDLE


def test_begin_inside_an_open_transaction_joins_it(notes: Flask, sent: list[str]) -> None:
    with notes.app_context():
        with UnitOfWork() as uow:
            uow.session.execute(sa.text("INSERT INTO prepared_notes VALUES ('before')"))  # psycopg2 began
            run(uow.session, (ADD_NOTE, ("joined",)), begin=True)
            run(uow.session, (ADD_NOTE, ("last",)), commit=True)
            assert stored(notes) == []  # commit=True did not commit a transaction it did not begin
            uow.rollback()
        assert stored(notes) == []
    assert [message for message in sent if "test_add_note(" in message] == [
        "EXECUTE test_add_note(%s)",
        "EXECUTE test_add_note(%s)",
    ]


def test_a_lone_read_opens_no_transaction_and_inside_one_sees_its_writes(notes: Flask) -> None:
    with notes.app_context():
        with UnitOfWork() as uow:
            assert run(uow.session, (COUNT_NOTES, ()), alone=True) == [(0,)]
            assert psycopg2_state(uow) == (False, extensions.STATUS_READY, extensions.TRANSACTION_STATUS_IDLE)
        with UnitOfWork() as uow:
            run(uow.session, (ADD_NOTE, ("uncommitted",)), begin=True)
            assert run(uow.session, (COUNT_NOTES, ()), alone=True) == [(1,)]
            assert psycopg2_state(uow)[2] == extensions.TRANSACTION_STATUS_INTRANS  # still the same transaction
    assert stored(notes) == []


def test_a_rollback_ends_the_transaction_on_a_connection_that_goes_on(notes: Flask) -> None:
    with notes.app_context(), db.engine.connect() as connection:
        run(connection, (ADD_NOTE, ("discarded",)), begin=True)
        connection.rollback()  # the connection stays checked out: only the rollback can end what was begun
        assert connection.scalar(sa.text("SELECT count(*) FROM prepared_notes")) == 0
        connection.execute(sa.text("INSERT INTO prepared_notes VALUES ('kept')"))
        connection.commit()
    assert stored(notes) == ["kept"]


def test_an_order_is_three_messages_with_no_transaction_statements_of_their_own(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 5, "B": 5})
    headers = tokens(committing_app, 1)[0]
    client = committing_app.test_client()

    def place(key: str) -> int:
        body = {"items": [{"product_id": ids["A"], "quantity": 1}], "shipping_address": ADDRESS}
        return client.post("/api/v1/orders", json=body, headers=headers | {"Idempotency-Key": key}).status_code

    assert place("first") == 201  # prepares the statements on this connection
    with statements_sent(committing_app) as messages:
        assert place("second") == 201
        # psycopg2 began nothing of its own either: the connection is back in its normal mode, idle
        with committing_app.app_context(), db.engine.connect() as connection:
            dbapi_connection: Any = connection.connection.dbapi_connection
            assert dbapi_connection.autocommit is False
            assert dbapi_connection.info.transaction_status == extensions.TRANSACTION_STATUS_IDLE

    assert len(messages) == 3, messages  # the token, then the order in two: nothing else, nothing apart
    token, lock, write = messages
    assert token.startswith("EXECUTE shop_live_token(")  # alone, in autocommit
    assert lock.startswith("BEGIN; EXECUTE shop_bound_waits(")
    assert "EXECUTE shop_lock_products(" in lock
    assert write.startswith("EXECUTE shop_take_stock(")
    assert write.endswith("; COMMIT")
