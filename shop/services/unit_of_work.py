"""The unit of work: one transaction, its repositories, and a rollback unless `commit()` was called.

    with UnitOfWork() as uow:
        product = uow.products.get(1)
        ...
        uow.commit()          # without this line, everything above is rolled back on exit

Use cases take the unit of work they run in (`unit_of_work=UnitOfWork` by default), so tests/unit can run them
on an in-memory one. The unit of work owns the transaction: repositories never begin, commit or roll back, and
never touch the catalog cache. It owns the after-commit step too: what the transaction changed in the catalog
is recorded with its COMMIT (so the relay can repeat it) and told to Redis after it (shop/catalog/invalidation.py),
for ORM writers and statement writers alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shop.catalog.invalidation import note_product_changes, record_statement
from shop.db.statements import Statements, discard_opening, open_with
from shop.db.transactions import bounded_waits
from shop.extensions import db
from shop.repositories import EventRepository, OrderRepository, ProductRepository, TokenRepository, UserRepository
from shop.repositories.money import MoneyRepository
from shop.repositories.placement import PlacementRepository
from shop.repositories.protocols import Events, Orders, Placement, Products, Tokens, Users
from shop.webhooks.notifier import events_committed

log = logging.getLogger(__name__)


class AbstractUnitOfWork(Protocol):
    """What the use cases rely on; `UnitOfWork` is the PostgreSQL one, tests/unit has one in memory."""

    @property
    def users(self) -> Users: ...

    @property
    def products(self) -> Products: ...

    @property
    def orders(self) -> Orders: ...

    @property
    def tokens(self) -> Tokens: ...

    @property
    def placement(self) -> Placement: ...

    @property
    def events(self) -> Events: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None: ...

    def bound_waits(self, lock_timeout_ms: int, statement_timeout_ms: int) -> None: ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A step that may fail alone: an exception inside undoes only that step, and goes on out."""
        ...

    def flush(self) -> None:
        """Send the writes waiting for the commit now (what follows reads them)."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWork:
    def __init__(self, session: Session | None = None) -> None:
        self._session = session

    def __enter__(self) -> Self:
        self.session: Session = self._session if self._session is not None else db.session()
        self.statements = Statements(self.session)
        self.users = UserRepository(self.session)
        self.products = ProductRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.tokens = TokenRepository(self.session)
        self.placement = PlacementRepository(self.statements)
        self.events = EventRepository(self.session)
        # PostgreSQL's alone (not in AbstractUnitOfWork): the money's use cases run only against the database
        self.money = MoneyRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # after a commit there is nothing left to roll back; otherwise this discards the whole use case
        discard_opening(self.session)
        try:
            self.session.rollback()
        except DBAPIError as error:
            if exc is None or not error.connection_invalidated:
                raise
            # the connection died before the rollback could be sent, and its transaction with it (nothing of it was
            # committed): the error that ended the use case, a refusal say, is the one to answer with, not this
            log.warning("rollback on a lost connection after %s", type(exc).__name__)

    def bound_waits(self, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
        """Bound this transaction's lock and statement waits; sent with its first statement, whatever that is."""
        open_with(self.session, bounded_waits(lock_timeout_ms, statement_timeout_ms))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A step that may fail alone: an exception inside rolls back to here, and goes on out."""
        with self.session.begin_nested():
            yield

    def flush(self) -> None:
        self.statements.send_deferred()
        self.session.flush()

    def commit(self) -> None:
        if self.statements.used:
            # this transaction's last round trip: what the repositories deferred, the record of the catalog's
            # changes, and COMMIT
            self.session.flush()
            changes = self.placement.catalog_changes
            if changes is not None:
                note_product_changes(self.session, changes.product_versions, listings=changes.listings)
            record = record_statement(self.session)
            self.statements.commit([record] if record is not None else [])
        # ends the ORM's transaction (COMMIT, unless it went above), then tells the catalog (its after_commit hook)
        self.session.commit()
        if self.events.written or self.placement.wrote_events:
            events_committed()  # the delivery workers look soon (a flag for this process's notifier; no I/O here)

    def rollback(self) -> None:
        self.session.rollback()
