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
from shop.catalog import near_cache, queries
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


@dataclass(frozen=True)
class HeldPage:
    """A rendered list page with what it was built from: checked by the near cache, or by Redis in one round trip."""

    page_json: bytes  # the cached page of ids it was built from
    generation: int
    documents: tuple[ProductDocument, ...]
    rendered: RenderedPage

    @functools.cached_property
    def fingerprint(self) -> catalog_cache.PageFingerprint:
        return catalog_cache.PageFingerprint.of(self.page_json, self.documents)


class _HeldPages:
    """Rendered list pages this process has served, by listing, each with what it was built from.

    Not a second cache: a held page is served only after the near cache (no round trip) or Redis (one round
    trip that reads the page) confirmed that the page's generation and every document's row version are
    unchanged. It saves this process the documents' transfer, the envelope and the ETag hash on a hot page.
    """

    def __init__(self, budget_bytes: int = 8 * 1024 * 1024) -> None:
        # bounded by the bodies' size, not their number: a page of 100 products is fifty times one of 2
        self._budget = budget_bytes
        self._held_bytes = 0
        self._pages: OrderedDict[ProductFilters, HeldPage] = OrderedDict()
        # the near cache's ticket when each page was last found current
        self._confirmed: dict[ProductFilters, near_cache.Ticket] = {}
        self._lock = threading.Lock()

    def get(self, filters: ProductFilters) -> HeldPage | None:
        with self._lock:
            held = self._pages.get(filters)
            if held is not None:
                self._pages.move_to_end(filters)
            return held

    def confirmed(self, filters: ProductFilters) -> near_cache.Ticket | None:
        return self._confirmed.get(filters)

    def confirm(self, filters: ProductFilters, ticket: near_cache.Ticket) -> None:
        self._confirmed[filters] = ticket

    def put(self, filters: ProductFilters, page: HeldPage) -> None:
        with self._lock:
            self._confirmed.pop(filters, None)
            replaced = self._pages.pop(filters, None)
            if replaced is not None:
                self._held_bytes -= len(replaced.rendered.body)
            self._pages[filters] = page
            self._held_bytes += len(page.rendered.body)
            while self._held_bytes > self._budget and len(self._pages) > 1:
                evicted_filters, evicted = self._pages.popitem(last=False)
                self._confirmed.pop(evicted_filters, None)
                self._held_bytes -= len(evicted.rendered.body)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes


def _held_pages() -> _HeldPages:
    held: _HeldPages = current_app.extensions.setdefault("catalog_held_pages", _HeldPages())
    return held


def product_page(filters: ProductFilters, render: RenderPage) -> RenderedPage:
    """One page of a listing, rendered: the ids from the cache or SQL, then the documents (one MGET).

    A hot page this process rendered before is served as it is once the near cache confirms it is current
    (no round trip), or else Redis does (one round trip that returns a few bytes instead of the documents).
    """
    near = near_cache.for_app()
    ticket = near.refresh()
    held_pages = _held_pages()
    held = held_pages.get(filters)
    if held is not None and ticket is not None and _held_page_is_current(near, held_pages, filters, held, ticket):
        CATALOG_CACHE.labels("near").inc()
        return held.rendered
    # the generation is read before the database: if a commit retires it meanwhile, what we store is never read
    cached = catalog_cache.read_page(filters, held.fingerprint if held else None)
    if cached.unchanged and held is not None:
        CATALOG_CACHE.labels("hit").inc()
        # Redis just confirmed the generation and every document's version: as good as reading them
        near.keep(ticket, held.documents, generation=held.generation)
        return held.rendered
    if cached.ids is None:
        CATALOG_CACHE.labels("miss").inc()
        ids, total = queries.product_page_ids(db.session(), filters)
        catalog_cache.put_page(cached.generation, filters, ids, total)
        return RenderedPage(render(documents(ids), total).encode(), total)
    complete = len(cached.documents) == len(cached.ids)
    CATALOG_CACHE.labels("hit" if complete else "miss").inc()
    near.keep(ticket, cached.documents.values(), generation=cached.generation)
    found = documents(cached.ids, cached.documents)
    page = RenderedPage(render(found, cached.total).encode(), cached.total)
    if complete:
        held_pages.put(filters, HeldPage(cached.page_json, cached.generation, tuple(found), page))
    return page


def _held_page_is_current(
    near: near_cache.NearCache,
    held_pages: _HeldPages,
    filters: ProductFilters,
    held: HeldPage,
    ticket: near_cache.Ticket,
) -> bool:
    # nothing at all invalidated since this page was last found current (the same ticket): no need to look again
    if held_pages.confirmed(filters) != ticket and not near.holds_page(held.generation, held.documents, ticket):
        return False
    held_pages.confirm(filters, ticket)
    return True


def product(product_id: int) -> ProductDocument | None:
    near = near_cache.for_app()
    ticket = near.refresh()
    if ticket is not None:
        held = near.documents([product_id], ticket)
        if held:
            CATALOG_CACHE.labels("near").inc()
            return held[product_id]
    cached = catalog_cache.get_products([product_id])
    CATALOG_CACHE.labels("hit" if cached else "miss").inc()
    near.keep(ticket, cached.values())
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
    near = near_cache.for_app()
    ticket = near.refresh()
    if ticket is not None:
        held = near.categories(ticket)
        if held is not None:
            return held
    current_generation = catalog_cache.generation()
    counts = catalog_cache.get_categories(current_generation)
    if counts is None:
        counts = queries.category_counts(db.session())
        catalog_cache.put_categories(current_generation, counts)
    else:
        near.keep(ticket, generation=current_generation, categories=counts)
    return counts
