from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, Timestamps


class Product(Timestamps, Base):
    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("price > 0", name="price_positive"),
        # invariant 1: stock never goes below zero, whoever writes it
        sa.CheckConstraint("stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("length(sku) > 0", name="sku_not_empty"),
        sa.CheckConstraint("length(name) > 0", name="name_not_empty"),
        # catalog listing: active products of a category, by price or newest
        sa.Index("ix_products_category_active", "category", "is_active"),
        sa.Index("ix_products_price", "price"),
        sa.Index("ix_products_created_at", "created_at"),
        sa.Index("ix_products_name", "name"),
        # full-text search over name (weighted higher) and description
        sa.Index("ix_products_search", "search_vector", postgresql_using="gin"),
        sa.CheckConstraint("version > 0", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    sku: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    category: Mapped[str] = mapped_column(sa.String(100))
    price: Mapped[Decimal]
    stock: Mapped[int] = mapped_column(server_default="0")
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())
    # bumped by every ORM update (version_id_col): the catalog cache keeps the highest version it has seen,
    # so a slow reader can never put an older document over a newer one
    version: Mapped[int] = mapped_column(server_default="1")
    search_vector: Mapped[str | None] = mapped_column(
        TSVECTOR,
        sa.Computed(
            "setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')",
            persisted=True,
        ),
        deferred=True,
    )

    # the sequence of the product's newest event (shop.models.event), bumped in SQL by the statement writing it
    event_sequence: Mapped[int] = mapped_column(server_default=sa.text("0"))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - read once by the mapper

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    def __repr__(self) -> str:
        return f"<Product {self.id} {self.sku}>"
