"""The test harness itself: a test's writes, commits included, never outlive the test."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.models import Product
from shop.services.unit_of_work import UnitOfWork


def committed_product_count(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as observer:
        return int(observer.scalar(sa.text("SELECT count(*) FROM products")) or 0)


# run in this order: the second proves the first's commit did not stick
@pytest.mark.parametrize("attempt", [1, 2])
def test_a_commit_inside_a_test_stays_inside_the_outer_transaction(app: Flask, db_session: Any, attempt: int) -> None:
    with app.app_context(), UnitOfWork() as uow:
        assert uow.products.count() == 0, "a previous test's commit leaked"
        uow.products.add(Product(sku="ISO-1", name="Iso", category="c", price=Decimal("1.00"), stock=1))
        uow.commit()

    assert db_session.scalar(sa.select(sa.func.count()).select_from(Product)) == 1
    # another connection sees none of it: the commit only released a savepoint
    assert committed_product_count(app) == 0
