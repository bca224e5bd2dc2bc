from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.catalog.invalidation import note_product_changes
from shop.models import Product


@dataclass(frozen=True)
class LockedProduct:
    """What an order needs of a product it has locked: the snapshot fields and the stock."""

    id: int
    sku: str
    name: str
    price: Decimal
    stock: int
    is_active: bool


# Order placement's hot path runs plain SQL rather than ORM flushes: one statement for all of an order's stock
# (the ORM would send one UPDATE per product to check each row's version). It bumps `version` and tells the
# catalog itself, as every writer outside the ORM must.
LOCK_STOCK = (
    sa.select(Product.id, Product.sku, Product.name, Product.price, Product.stock, Product.is_active)
    .where(Product.id.in_(sa.bindparam("product_ids", expanding=True)))
    .order_by(Product.id)
    .with_for_update()
)
TAKE_STOCK = sa.text(
    """
    UPDATE products
       SET stock = products.stock - taken.quantity, version = products.version + 1, updated_at = now()
      FROM unnest(CAST(:product_ids AS bigint[]), CAST(:quantities AS integer[])) AS taken (product_id, quantity)
     WHERE products.id = taken.product_id
    RETURNING products.id, products.stock, products.version
    """
)


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

    def lock_stock(self, product_ids: Collection[int]) -> dict[int, LockedProduct]:
        """`lock_for_update` for order placement: the same locks in the same order, plain rows, no ORM objects."""
        rows = self.session.execute(LOCK_STOCK, {"product_ids": sorted(set(product_ids))})
        return {row.id: LockedProduct(*row) for row in rows}

    def take_stock(self, quantities: Mapping[int, int]) -> dict[int, int]:
        """Take these quantities from stock (rows already locked); the stock left per product.

        Going below zero violates the stock CHECK: the caller decides whether that fails the order or,
        inside a savepoint, one line.
        """
        rows = self.session.execute(
            TAKE_STOCK, {"product_ids": list(quantities), "quantities": list(quantities.values())}
        ).all()
        note_product_changes(
            self.session,
            {product_id: version for product_id, _, version in rows},
            # stock only goes down here, so a listing changes only when a product runs out (the in_stock filter)
            listings=any(stock == 0 for _, stock, _ in rows),
        )
        return {product_id: stock for product_id, stock, _ in rows}

    def add(self, product: Product) -> Product:
        self.session.add(product)
        self.session.flush()
        return product

    def count(self) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(Product)) or 0
