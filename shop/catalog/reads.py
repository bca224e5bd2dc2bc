"""Catalog reads: Redis first, PostgreSQL for what is missing, and the cache filled on the way out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shop.catalog import cache as catalog_cache
from shop.catalog import queries
from shop.catalog.documents import ProductDocument
from shop.catalog.queries import ProductFilters
from shop.extensions import db


@dataclass(frozen=True)
class ProductPage:
    documents: list[ProductDocument]
    total: int


def product_page(filters: ProductFilters) -> ProductPage:
    """One page of a listing: the page's ids from the cache or SQL, then the documents (one MGET)."""
    # read before the database: if a commit retires this generation meanwhile, what we store is never read
    current_generation = catalog_cache.generation()
    cached = catalog_cache.get_page(current_generation, filters)
    if cached is None:
        ids, total = queries.product_page_ids(db.session(), filters)
        catalog_cache.put_page(current_generation, filters, ids, total)
    else:
        ids, total = cached
    return ProductPage(documents(ids), total)


def product(product_id: int) -> ProductDocument | None:
    found = documents([product_id])
    return found[0] if found else None


def documents(product_ids: Sequence[int]) -> list[ProductDocument]:
    """The documents of these products, in this order; the cache misses are read in one query."""
    found = catalog_cache.get_products(product_ids)
    missing = [product_id for product_id in product_ids if product_id not in found]
    if missing:
        fresh = [ProductDocument.of(p) for p in queries.products_by_id(db.session(), missing)]
        catalog_cache.put_products(fresh)
        found.update((document.product_id, document) for document in fresh)
    return [found[product_id] for product_id in product_ids if product_id in found]


def categories() -> list[tuple[str, int]]:
    current_generation = catalog_cache.generation()
    counts = catalog_cache.get_categories(current_generation)
    if counts is None:
        counts = queries.category_counts(db.session())
        catalog_cache.put_categories(current_generation, counts)
    return counts
