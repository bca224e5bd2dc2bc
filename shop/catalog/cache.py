"""The catalog's Redis cache: races never bring an old document back; cheap under order load; optional.

Keys, all under CACHE_KEY_PREFIX and a format version (bump CACHE_FORMAT when a document's shape changes):

    catalog:v1:product:{id}          "{version}|{json}"  one product document, or "{version}|" (a tombstone)
    catalog:v1:generation            integer, bumped when any listing or count may change
    catalog:v1:list:{gen}:{sha1}     {"ids": [...], "total": n}   one page of one listing (JSON, no pickle)
    catalog:v1:categories:{gen}      [["Books", 12], ...]
    catalog:v1:versions              hash: product id -> version of the document stored last (none after a tombstone)

Products: a writer, after its commit, stores a tombstone carrying the product's new row version; a reader
stores what it read with the version it read. A Lua script keeps whichever is newer (a reader's document
replaces a tombstone of the same version), so a reader that read before a commit and writes after it cannot
bring an old document back, whatever order the writes reach Redis in.

Every key is read and written here, through one redis-py client and its breaker (shop/redis_client.py), as
JSON text that this module writes and the Lua scripts read: no other library's storage format in between.

Listings hold product ids only: an order that changes stock invalidates the products it touched, and the
listings only when a product goes in or out of stock (the in_stock filter). Staff edits bump the
generation, which retires every page and count at once; stale pages simply expire.

A cached list page is read in one round trip (READ_PAGE: generation, page and documents together). A
process that already rendered the page sends its fingerprint, and the script checks it against the page
and the versions hash instead of sending the documents back (see reads.product_page).
The keys it reads are built inside the script, which a single Redis allows and Redis Cluster does not.

Any Redis failure is a miss: reads go to PostgreSQL, and a warning is logged at most once a minute. After a
timeout or a refused connection the process's breaker opens, and Redis is not asked at all for a moment
(shop/redis_client.py). A tombstone that could not be written is written by the relay (shop/catalog/relay.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TypeVar, cast

import redis
from flask import current_app
from redis.commands.core import Script

from shop.catalog.documents import ProductDocument
from shop.catalog.queries import ProductFilters
from shop.extensions import redis_client
from shop.observability.throttled import ThrottledWarning
from shop.redis_client import BreakerOpen

CACHE_FORMAT = "v1"
T = TypeVar("T")


def _lua(name: str) -> str:
    """A Lua script of this package (shop/catalog/lua/), read once at import."""
    return files("shop.catalog").joinpath("lua", name).read_text(encoding="utf-8")


log = logging.getLogger(__name__)

# the Redis scripts; each file says what its KEYS and ARGV are and what it returns
SET_IF_NEWER = _lua("set_if_newer.lua")  # store each offered document or tombstone unless Redis holds a newer one
READ_PAGE = _lua("read_page.lua")  # a cached list page, its generation and its documents in one round trip


_warnings = ThrottledWarning(log, "catalog cache unavailable (%s: %s); serving from PostgreSQL")


def _safely(operation: str, action: Callable[[], T], fallback: T) -> T:
    """`action`, or `fallback` when Redis fails or the breaker says it is down (then Redis is not even asked)."""
    try:
        return redis_client.breaker.call(action)
    except BreakerOpen:
        return fallback
    except (redis.RedisError, OSError) as error:  # an outage, or Redis answering with an error
        _warnings.warn(operation, error)
        return fallback


def _raw_key(*parts: object) -> str:
    """The key as Redis sees it: CACHE_KEY_PREFIX, then catalog:<format>:<parts>."""
    prefix: str = current_app.config["CACHE_KEY_PREFIX"]
    return prefix + ":".join(["catalog", CACHE_FORMAT, *(str(part) for part in parts)])


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def tracked_keys() -> tuple[str, str]:
    """What the near cache listens to: the prefix of every product document's key, and the generation's key."""
    return _raw_key("product") + ":", _raw_key("generation")


def _timeout() -> int:
    timeout: int = current_app.config["CACHE_DEFAULT_TIMEOUT"]
    return timeout


def _script(source: str) -> Script:
    """Each Lua script registered once per app (redis-py then calls it by its SHA)."""
    scripts: dict[str, Script] = current_app.extensions.setdefault("catalog_scripts", {})
    if source not in scripts:
        scripts[source] = redis_client.client.register_script(source)
    return scripts[source]


def enabled() -> bool:
    return bool(current_app.config.get("CATALOG_CACHE_ENABLED", True))


# --- product documents ------------------------------------------------------------------------------


def get_products(product_ids: Sequence[int]) -> dict[int, ProductDocument]:
    """The cached documents among `product_ids` (one MGET); tombstones and failures are misses."""
    if not product_ids or not enabled():
        return {}
    keys = [_raw_key("product", product_id) for product_id in product_ids]
    empty: list[bytes | None] = []
    # bytes: the client is made without decode_responses
    values = _safely("mget", lambda: cast(list[bytes | None], redis_client.client.mget(keys)), empty)
    return _documents(product_ids, values)


def _documents(product_ids: Sequence[int], values: Sequence[bytes | None]) -> dict[int, ProductDocument]:
    found: dict[int, ProductDocument] = {}
    for product_id, value in zip(product_ids, values, strict=False):
        if not value:
            continue
        version, _, document = value.decode().partition("|")
        if document:  # else a tombstone: read the product again
            found[product_id] = ProductDocument(product_id, int(version), document)
    return found


def put_products(documents: Iterable[ProductDocument]) -> None:
    """Store what was read, unless Redis already holds something newer."""
    if not enabled():
        return
    _set_if_newer([(d.product_id, d.version, d.json) for d in documents])


def retire_products(versions: Mapping[int, int], *, strict: bool = False) -> None:
    """After a commit: the products now at these versions must be read again (tombstones, no reads needed).

    `strict`: raise if Redis could not be told (the relay keeps its record then), instead of logging it.
    """
    _set_if_newer([(product_id, version, "") for product_id, version in versions.items()], strict=strict)


def _set_if_newer(entries: Sequence[tuple[int, int, str]], *, strict: bool = False) -> None:
    """All of them in one script call: one round trip however many products a commit or a page touched."""
    if not entries:
        return
    keys = [_raw_key("versions"), *(_raw_key("product", product_id) for product_id, _, _ in entries)]
    arguments: list[int | str] = [_timeout()]
    for product_id, version, document in entries:
        arguments += [version, document, product_id]
    _call("set-if-newer", lambda: _script(SET_IF_NEWER)(keys=keys, args=arguments), strict=strict)


def _call(operation: str, action: Callable[[], object], *, strict: bool) -> None:
    """`strict`: Redis failing raises (the relay keeps its rows); otherwise it is logged and passed over."""
    if strict:
        redis_client.breaker.call(action)
    else:
        _safely(operation, action, None)


def forget_everything() -> bool:
    """Delete every catalog key (after the catalog was replaced wholesale); False if Redis could not be reached."""

    def delete_all() -> bool:
        client = redis_client.client
        keys = list(client.scan_iter(match=_raw_key("*"), count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return True

    return _safely("forget everything", delete_all, False)


# --- listings and categories ------------------------------------------------------------------------


def generation() -> int:
    value = _safely("generation", lambda: cast(bytes | None, redis_client.client.get(_raw_key("generation"))), None)
    return int(value or 0)


def retire_listings(*, strict: bool = False) -> None:
    """After a commit that may change any listing or count: every cached page and count is retired at once."""
    _call("retire listings", lambda: redis_client.client.incr(_raw_key("generation")), strict=strict)


@functools.lru_cache(maxsize=4096)
def _page_digest(filters: ProductFilters) -> str:
    return hashlib.sha1(filters.cache_key_part().encode(), usedforsecurity=False).hexdigest()


def _list_key(current_generation: int, filters: ProductFilters) -> str:
    return _raw_key("list", current_generation, _page_digest(filters))


@dataclass(frozen=True)
class CachedPage:
    """What one round trip found: the generation, and the page with its documents when it was cached.

    `unchanged`: the page and every one of its documents are exactly what the caller's fingerprint
    describes, so `documents` is left empty.
    """

    generation: int
    ids: list[int] | None = None
    total: int = 0
    documents: dict[int, ProductDocument] = field(default_factory=dict)
    page_json: bytes = b""
    unchanged: bool = False


@dataclass(frozen=True)
class PageFingerprint:
    """What READ_PAGE checks a held page against: the page of ids it was built from and each document's version."""

    page_json: bytes
    ids: tuple[int, ...]
    versions: str

    @classmethod
    def of(cls, page_json: bytes, documents: Sequence[ProductDocument]) -> PageFingerprint:
        return cls(
            page_json,
            tuple(document.product_id for document in documents),
            ",".join(str(document.version) for document in documents),
        )

    def arguments(self) -> list[bytes | str | int]:
        return [self.page_json, self.versions, *self.ids]


def read_page(filters: ProductFilters, held: PageFingerprint | None = None) -> CachedPage:
    if not enabled():
        return CachedPage(generation=0)
    arguments: list[bytes | str | int] = [
        _raw_key("generation"),
        _raw_key("list") + ":",
        _page_digest(filters),
        _raw_key("product") + ":",
        _raw_key("versions"),
        *(held.arguments() if held is not None and held.ids else []),
    ]
    reply = _safely("read page", lambda: _script(READ_PAGE)(keys=[], args=arguments), None)
    if not reply:
        return CachedPage(generation=0)
    current_generation = int(reply[0])
    if len(reply) == 1:
        return CachedPage(current_generation)
    page_json: bytes = reply[1]
    if reply[2] == 1:
        # the caller holds this very page: no need to parse it
        return CachedPage(current_generation, page_json=page_json, unchanged=True)
    page = json.loads(page_json)
    ids = [int(product_id) for product_id in page["ids"]]
    return CachedPage(current_generation, ids, int(page["total"]), _documents(ids, reply[3:]), page_json)


def put_page(current_generation: int, filters: ProductFilters, ids: list[int], total: int) -> None:
    # stored under the generation read before the database was: if a commit retired it meanwhile, nobody reads it
    if enabled():
        key, page = _list_key(current_generation, filters), _json({"ids": ids, "total": total})
        _safely("put page", lambda: redis_client.client.set(key, page, ex=_timeout()), None)


def get_categories(current_generation: int) -> list[tuple[str, int]] | None:
    if not enabled():
        return None
    key = _raw_key("categories", current_generation)
    cached = _safely("get categories", lambda: cast(bytes | None, redis_client.client.get(key)), None)
    return [(name, count) for name, count in json.loads(cached)] if cached is not None else None


def put_categories(current_generation: int, counts: list[tuple[str, int]]) -> None:
    if enabled():
        key, value = _raw_key("categories", current_generation), _json(counts)
        _safely("put categories", lambda: redis_client.client.set(key, value, ex=_timeout()), None)
