"""The unit of work commits only when told to; repositories never commit on their own."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.models import Product
from shop.services.unit_of_work import UnitOfWork


def lamp(sku: str = "LAMP-1") -> Product:
    return Product(sku=sku, name="Desk lamp", category="Home", price=Decimal("24.50"), stock=7)


def committed_skus() -> set[str]:
    """What another connection sees: only what was really committed."""
    with db.engine.connect() as observer:
        return set(observer.scalars(sa.text("SELECT sku FROM products")))


pytestmark = pytest.mark.commits


def test_without_commit_everything_is_rolled_back(committing_app: Flask) -> None:
    with committing_app.app_context():
        with UnitOfWork() as uow:
            uow.products.add(lamp())
            assert uow.products.get_by_sku("LAMP-1") is not None

        assert committed_skus() == set()


def test_commit_makes_the_writes_visible_to_other_connections(committing_app: Flask) -> None:
    with committing_app.app_context():
        with UnitOfWork() as uow:
            uow.products.add(lamp())
            assert committed_skus() == set()  # flushed, not committed
            uow.commit()

        assert committed_skus() == {"LAMP-1"}


def test_an_exception_rolls_back_and_propagates(committing_app: Flask) -> None:
    with committing_app.app_context():

        def place_and_fail() -> None:
            with UnitOfWork() as uow:
                uow.products.add(lamp())
                raise ValueError("payment provider said no")

        with pytest.raises(ValueError, match="payment provider said no"):
            place_and_fail()

        assert committed_skus() == set()


def test_only_the_work_before_commit_is_kept(committing_app: Flask) -> None:
    with committing_app.app_context():
        with UnitOfWork() as uow:
            uow.products.add(lamp("LAMP-1"))
            uow.commit()
            uow.products.add(lamp("LAMP-2"))

        assert committed_skus() == {"LAMP-1"}


def test_lock_for_update_locks_every_row_in_id_order(committing_app: Flask) -> None:
    with committing_app.app_context():
        with UnitOfWork() as uow:
            ids = [uow.products.add(lamp(f"LAMP-{n}")).id for n in range(3)]
            uow.commit()

        with UnitOfWork() as uow:
            locked = uow.products.lock_for_update([ids[2], ids[0], ids[2], ids[1]])
            assert [product.id for product in locked] == sorted(ids)
            # another connection cannot take these rows while we hold them
            with db.engine.connect() as other:
                other.execute(sa.text("SET lock_timeout = '100ms'"))
                skipped = other.scalars(
                    sa.text("SELECT id FROM products WHERE id = ANY(:ids) FOR UPDATE SKIP LOCKED"),
                    {"ids": ids},
                ).all()
            assert skipped == []
