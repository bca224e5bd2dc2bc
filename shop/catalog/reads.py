"""Catalog reads: Redis first, PostgreSQL for what is missing, and the cache filled on the way out."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask import current_app

from shop.catalog import cache as catalog_cache
from shop.catalog import queries
from shop.catalog.documents import ProductDocument
from shop.catalog.queries import ProductFilters
from shop.extensions import db
from shop.observability.metrics import CATALOG_CACHE

RenderPage = Callable[[list[ProductDocument], int], str]
"""Turns a page's documents and the listing's total into the response body."""


@dataclass(frozen=True)
class RenderedPage:
    body: bytes
    total: int

    @functools.cached_property
    def etag(self) -> str:
        """A strong validator of the body, computed once however often a held page is served."""
        return hashlib.sha1(self.body, usedforsecurity=False).hexdigest()


class _HeldPages:
    """Rendered list pages this process has served, by listing, each with the fingerprint it was built from.

    Not a second cache: a held page is served only after Redis confirmed, in the same round trip that
    reads the page, that the page's ids and every document's row version are unchanged. It saves this
    process the documents' transfer, the envelope and the ETag hash on a hot page.
    """

    def __init__(self, budget_bytes: int = 8 * 1024 * 1024) -> None:
        # bounded by the bodies' size, not their number: a page of 100 products is fifty times one of 2
        self._budget = budget_bytes
        self._held_bytes = 0
        self._pages: OrderedDict[ProductFilters, tuple[catalog_cache.PageFingerprint, RenderedPage]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, filters: ProductFilters) -> tuple[catalog_cache.PageFingerprint, RenderedPage] | None:
        with self._lock:
            held = self._pages.get(filters)
            if held is not None:
                self._pages.move_to_end(filters)
            return held

    def put(self, filters: ProductFilters, fingerprint: catalog_cache.PageFingerprint, page: RenderedPage) -> None:
        with self._lock:
            replaced = self._pages.pop(filters, None)
            if replaced is not None:
                self._held_bytes -= len(replaced[1].body)
            self._pages[filters] = (fingerprint, page)
            self._held_bytes += len(page.body)
            while self._held_bytes > self._budget and len(self._pages) > 1:
                _, (_, evicted) = self._pages.popitem(last=False)
                self._held_bytes -= len(evicted.body)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes


def _held_pages() -> _HeldPages:
    held: _HeldPages = current_app.extensions.setdefault("catalog_held_pages", _HeldPages())
    return held


def product_page(filters: ProductFilters, render: RenderPage) -> RenderedPage:
    """One page of a listing, rendered: the ids from the cache or SQL, then the documents (one MGET).

    On a hot page, one round trip to Redis confirms that the page this process rendered last is current.
    """
    held_pages = _held_pages()
    held = held_pages.get(filters)
    # the generation is read before the database: if a commit retires it meanwhile, what we store is never read
    cached = catalog_cache.read_page(filters, held[0] if held else None)
    if cached.unchanged and held is not None:
        CATALOG_CACHE.labels("hit").inc()
        return held[1]
    if cached.ids is None:
        CATALOG_CACHE.labels("miss").inc()
        ids, total = queries.product_page_ids(db.session(), filters)
        catalog_cache.put_page(cached.generation, filters, ids, total)
        return RenderedPage(render(documents(ids), total).encode(), total)
    CATALOG_CACHE.labels("hit" if len(cached.documents) == len(cached.ids) else "miss").inc()
    found = documents(cached.ids, cached.documents)
    page = RenderedPage(render(found, cached.total).encode(), cached.total)
    if len(found) == len(cached.ids):
        held_pages.put(filters, catalog_cache.PageFingerprint.of(cached.page_json, found), page)
    return page


def product(product_id: int) -> ProductDocument | None:
    cached = catalog_cache.get_products([product_id])
    CATALOG_CACHE.labels("hit" if cached else "miss").inc()
    found = documents([product_id], cached)
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
