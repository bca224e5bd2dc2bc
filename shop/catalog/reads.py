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
    # the generation is read before the database: if a commit retires it meanwhile, what we store is never read
    cached = catalog_cache.read_page(filters)
    if cached.ids is None:
        ids, total = queries.product_page_ids(db.session(), filters)
        catalog_cache.put_page(cached.generation, filters, ids, total)
        return ProductPage(documents(ids), total)
    return ProductPage(documents(cached.ids, cached.documents), cached.total)


def product(product_id: int) -> ProductDocument | None:
    found = documents([product_id])
    return found[0] if found else None


def documents(product_ids: Sequence[int], cached: dict[int, ProductDocument] | None = None) -> list[ProductDocument]:
    """The documents of these products, in this order; the cache misses are read in one query."""
    found = dict(cached) if cached is not None else catalog_cache.get_products(product_ids)
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
