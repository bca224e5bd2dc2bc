"""The unit of work: one transaction, its repositories, and a rollback unless `commit()` was called."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session

from shop.extensions import db
from shop.repositories import OrderRepository, ProductRepository, TokenRepository, UserRepository
from shop.repositories.placement import PlacementRepository


class UnitOfWork:
    """
    with UnitOfWork() as uow:
        product = uow.products.get(1)
        ...
        uow.commit()          # without this line, everything above is rolled back on exit
    """

    def __init__(self, session: Session | None = None) -> None:
        self._session = session

    def __enter__(self) -> UnitOfWork:
        self.session: Session = self._session if self._session is not None else db.session()
        self.users = UserRepository(self.session)
        self.products = ProductRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.tokens = TokenRepository(self.session)
        self.placement = PlacementRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # after a commit there is nothing left to roll back; otherwise this discards the whole use case
        self.session.rollback()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
