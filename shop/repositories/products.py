from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import Product


class ProductRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, product_id: int) -> Product | None:
        return self.session.get(Product, product_id)

    def get_by_sku(self, sku: str) -> Product | None:
        return self.session.scalars(sa.select(Product).where(Product.sku == sku)).one_or_none()

    def lock_for_update(self, product_ids: Collection[int]) -> Sequence[Product]:
        """Lock the rows in one statement, always in id order, so concurrent orders never deadlock."""
        statement = (
            sa.select(Product).where(Product.id.in_(sorted(set(product_ids)))).order_by(Product.id).with_for_update()
        )
        return self.session.scalars(statement).all()

    def current(self, product_ids: Collection[int]) -> Sequence[Product]:
        """The products as this transaction has left them so far (read again: changed by SQL, or by the database)."""
        statement = sa.select(Product).where(Product.id.in_(sorted(set(product_ids)))).order_by(Product.id)
        return self.session.scalars(statement.execution_options(populate_existing=True)).all()

    def add(self, product: Product) -> Product:
        self.session.add(product)
        self.session.flush()
        return product

    def add_all(self, products: Sequence[Product]) -> None:
        self.session.add_all(products)
        self.session.flush()

    def save(self) -> None:
        """Write the changes made to loaded products now (a unique SKU is checked here, not at the commit)."""
        self.session.flush()

    def count(self) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(Product)) or 0
