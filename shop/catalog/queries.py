"""Catalog SQL: which products a listing shows, in which order, and the category counts."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import Product

SEARCH_CONFIGURATION = "english"


class ProductSort(enum.StrEnum):
    NAME = "name"
    NAME_DESC = "-name"
    PRICE = "price"
    PRICE_DESC = "-price"
    NEWEST = "newest"
    RELEVANCE = "relevance"


@dataclass(frozen=True)
class ProductFilters:
    """A listing request, normalized: two requests with equal filters share one cache entry."""

    q: str | None = None
    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    sort: ProductSort | None = None
    include_inactive: bool = False
    page: int = 1
    per_page: int = 20

    @property
    def effective_sort(self) -> ProductSort:
        if self.sort is not None:
            return self.sort
        return ProductSort.RELEVANCE if self.q else ProductSort.NEWEST

    def cache_key_part(self) -> str:
        """Every filter, each one unambiguous: a JSON array, so no value can spell two (q "a|b" is not q "a",
        category "b"). Prices by value, so 5, 5.0 and 5.00 share an entry."""
        return json.dumps(
            [
                self.q,
                self.category,
                None if self.min_price is None else str(self.min_price.normalize()),
                None if self.max_price is None else str(self.max_price.normalize()),
                self.in_stock,
                self.effective_sort.value,
                self.include_inactive,
                self.page,
                self.per_page,
            ],
            separators=(",", ":"),
        )


def _search_query(q: str) -> sa.ColumnElement[sa.types.NullType]:
    # websearch syntax: words, "quoted phrases", -exclusions, or
    return sa.func.websearch_to_tsquery(SEARCH_CONFIGURATION, q)


def _filtered(filters: ProductFilters) -> sa.Select[int]:
    statement = sa.select(Product.id)
    if not filters.include_inactive:
        statement = statement.where(Product.is_active)
    if filters.q:
        statement = statement.where(Product.search_vector.op("@@")(_search_query(filters.q)))
    if filters.category is not None:
        statement = statement.where(Product.category == filters.category)
    if filters.min_price is not None:
        statement = statement.where(Product.price >= filters.min_price)
    if filters.max_price is not None:
        statement = statement.where(Product.price <= filters.max_price)
    if filters.in_stock is True:
        statement = statement.where(Product.stock > 0)
    elif filters.in_stock is False:
        statement = statement.where(Product.stock == 0)
    return statement


def _ordering(filters: ProductFilters) -> list[sa.ColumnElement[Any]]:
    # id breaks ties, so pages never overlap or skip rows with equal sort keys
    match filters.effective_sort:
        case ProductSort.NAME:
            return [Product.name.asc(), Product.id.asc()]
        case ProductSort.NAME_DESC:
            return [Product.name.desc(), Product.id.desc()]
        case ProductSort.PRICE:
            return [Product.price.asc(), Product.id.asc()]
        case ProductSort.PRICE_DESC:
            return [Product.price.desc(), Product.id.desc()]
        case ProductSort.NEWEST:
            return [Product.created_at.desc(), Product.id.desc()]
        case ProductSort.RELEVANCE:
            if not filters.q:
                return [Product.created_at.desc(), Product.id.desc()]
            rank = sa.func.ts_rank(Product.search_vector, _search_query(filters.q))
            return [rank.desc(), Product.id.asc()]


def product_page_ids(session: Session, filters: ProductFilters) -> tuple[list[int], int]:
    """The ids on the requested page, in order, and how many products match in all."""
    filtered = _filtered(filters)
    total = session.scalar(sa.select(sa.func.count()).select_from(filtered.subquery())) or 0
    page = filtered.order_by(*_ordering(filters)).limit(filters.per_page).offset((filters.page - 1) * filters.per_page)
    return list(session.scalars(page)), total


def products_by_id(session: Session, product_ids: Iterable[int]) -> Sequence[Product]:
    return session.scalars(sa.select(Product).where(Product.id.in_(list(product_ids)))).all()


def category_counts(session: Session) -> list[tuple[str, int]]:
    """Each category with its number of active products, by name."""
    statement = (
        sa.select(Product.category, sa.func.count())
        .where(Product.is_active)
        .group_by(Product.category)
        .order_by(Product.category)
    )
    return [(category, count) for category, count in session.execute(statement)]
