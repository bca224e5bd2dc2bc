"""Each process's own copies of catalog values it read from Redis, dropped as soon as Redis says they changed.

Redis's client-side caching protocol does the telling. Every process keeps one connection on which it asked
for `CLIENT TRACKING ON BCAST` over the product documents and the listing generation; from then on Redis
sends that connection the name of every such key that is written, deleted, expired or evicted, whoever
changed it. Before a request uses a copy, it reads what has arrived on that connection (a non-blocking poll:
no round trip) and drops what changed. A hot product or list page then costs no Redis round trip at all,
which is what lets a cached read cost about as much as /healthz.

Why a copy is never older than what Redis holds:

- Copies are only ever values just read from Redis, never values this process computed or wrote itself
  (those reach Redis first and come back through a read).
- A writer's tombstone reaches Redis before the writer answers its client, and Redis sends the invalidation
  to every listening process in the same turn of its event loop, so a read that starts after the writer's
  answer finds it already waiting on its connection. Invalidations from this process's own commits are
  applied here directly as well (`forget`), so they do not depend even on that.
- A value read from Redis while an invalidation of its key was on the way is not kept: `refresh` hands out
  a ticket (the count of invalidations seen so far) before the read, and `keep` refuses keys invalidated since.
- Copies are used only while the connection is known to be alive: it is pinged every PING_SECONDS, and
  once nothing has been heard for `liveness_seconds` (an idle process, a stopped Redis), or the connection
  fails or drops, every copy is thrown away. If the connection dies silently (a network partition, no FIN),
  a copy can be served for at most that long; Redis itself would miss the writers' tombstones then too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis
from flask import Flask, current_app

from shop.catalog import cache as catalog_cache
from shop.catalog.documents import ProductDocument
from shop.observability.throttled import ThrottledWarning
from shop.redis_client import Breaker, BreakerOpen

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = b"__redis__:invalidate"
PING_SECONDS = 0.5
RECONNECT_SECONDS = 1.0
RECENT_INVALIDATIONS = 4096  # how far back a ticket can be checked; an older ticket keeps nothing
GENERATION = -1  # the listing generation's token among invalidated product ids
DOCUMENT_OVERHEAD_BYTES = 200  # the dict entry and objects around one document's JSON


class Connection(Protocol):
    """The part of redis-py's Connection used here (redis-py's own methods carry no type hints)."""

    def connect(self) -> None: ...
    def disconnect(self) -> None: ...
    def send_command(self, *args: Any) -> None: ...
    def read_response(self) -> Any: ...
    def can_read(self, timeout: float = 0) -> bool: ...


@dataclass(frozen=True)
class Ticket:
    """Taken before a Redis read: what was known then, so `keep` can refuse what changed since."""

    epoch: int
    sequence: int


class NearCache:
    """Product documents, the listing generation and category counts, as this process last read them from Redis.

    Thread-safe: the gthread workers' threads share one instance, and one lock guards the connection and copies.
    """

    def __init__(
        self,
        open_connection: Callable[[], Connection],
        *,
        product_prefix: str,
        generation_key: str,
        budget_bytes: int,
        liveness_seconds: float,
        enabled: bool = True,
        breaker: Breaker | None = None,
    ) -> None:
        self._open_connection = open_connection
        self._breaker = breaker if breaker is not None else Breaker(0.0)
        self._product_prefix = product_prefix.encode()
        self._generation_key = generation_key.encode()
        self._budget = budget_bytes
        self._liveness = liveness_seconds
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._connection: Connection | None = None
        self._connecting = False
        self._disabled = not enabled
        self._next_attempt = 0.0
        self._last_heard = float("-inf")
        self._last_ping = float("-inf")
        self._warnings = ThrottledWarning(
            log, "catalog near cache: Redis connection lost (%s: %s); reading through Redis"
        )
        # every invalidation counts; a flush or a new connection starts a new epoch (nothing older can be kept)
        self._epoch = 0
        self._sequence = 0
        self._recent: deque[tuple[int, int]] = deque(maxlen=RECENT_INVALIDATIONS)
        self._documents: OrderedDict[int, ProductDocument] = OrderedDict()
        self._held_bytes = 0
        self._generation: int | None = None
        self._categories: tuple[int, list[tuple[str, int]]] | None = None

    # --- what a request asks -------------------------------------------------------------------------

    def refresh(self) -> Ticket | None:
        """Apply what Redis has sent; a ticket if the copies may be used now, else None (read Redis instead)."""
        if self._disabled:
            return None
        if os.getpid() != self._pid:
            self._after_fork()
        with self._lock:
            if self._connection is not None:
                return self._drained_ticket()
            if self._connecting or time.monotonic() < self._next_attempt:
                return None
            self._connecting = True
        self._connect()
        return None  # copies are used from the next request on, once the connection has been heard from

    def documents(self, product_ids: Sequence[int], ticket: Ticket) -> dict[int, ProductDocument]:
        with self._lock:
            if ticket.epoch != self._epoch:
                return {}
            found = {}
            for product_id in product_ids:
                document = self._documents.get(product_id)
                if document is not None:
                    self._documents.move_to_end(product_id)
                    found[product_id] = document
            return found

    def holds_page(self, generation: int, documents: Sequence[ProductDocument], ticket: Ticket) -> bool:
        """Is a page rendered under `generation` from these documents still current here?"""
        with self._lock:
            if ticket.epoch != self._epoch or self._generation != generation:
                return False
            for document in documents:
                held = self._documents.get(document.product_id)
                if held is None or held.version != document.version:
                    return False
                self._documents.move_to_end(document.product_id)
            return True

    def categories(self, ticket: Ticket) -> list[tuple[str, int]] | None:
        with self._lock:
            held = self._categories
            if ticket.epoch != self._epoch or held is None or held[0] != self._generation:
                return None
            return held[1]

    def keep(
        self,
        ticket: Ticket | None,
        documents: Iterable[ProductDocument] = (),
        *,
        generation: int | None = None,
        categories: list[tuple[str, int]] | None = None,
    ) -> None:
        """Hold copies of what was just read from Redis under `ticket`, except what was invalidated meanwhile."""
        if ticket is None:
            return
        with self._lock:
            if ticket.epoch != self._epoch or self._connection is None:
                return
            changed = self._invalidated_since(ticket)
            if changed is None:
                return
            for document in documents:
                if document.product_id not in changed:
                    self._hold(document)
            if generation is not None and GENERATION not in changed:
                self._generation = generation
                if categories is not None:
                    self._categories = (generation, categories)

    def forget(self, product_ids: Iterable[int] = (), *, listings: bool = False) -> None:
        """This process committed a change: drop the copies now, whatever the connection delivers later."""
        with self._lock:
            for product_id in product_ids:
                self._invalidate(product_id)
            if listings:
                self._invalidate(GENERATION)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    # --- the connection ------------------------------------------------------------------------------

    def _connect(self) -> None:
        """Open the listening connection (outside the lock: a dead Redis must not stall the other threads), through
        the process's Redis breaker: a paused Redis costs the process one timeout, not one per reconnect."""
        opened: list[Connection] = []

        def handshake() -> Connection:
            connection = self._open_connection()
            opened.append(connection)
            connection.connect()
            connection.send_command("CLIENT", "ID")
            client_id = connection.read_response()
            # redirected to itself, then subscribed: RESP2 delivers the invalidations as pub/sub messages
            connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST",
                "PREFIX", self._product_prefix, "PREFIX", self._generation_key,
            )  # fmt: skip
            connection.read_response()
            connection.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            connection.read_response()
            return connection

        connected: Connection | None = None
        try:
            connected = self._breaker.call(handshake)
        except BreakerOpen:
            pass
        except redis.ResponseError as refused:
            # an old Redis, or an ACL without CLIENT: go on without copies, every read through Redis
            log.warning("catalog near cache off: Redis refused client tracking (%s)", refused)
            self._disabled = True
        except (redis.RedisError, OSError) as error:
            self._warnings.warn("connect", error)
        if connected is None and opened:
            opened[0].disconnect()
        with self._lock:
            self._connecting = False
            if connected is None:
                self._next_attempt = time.monotonic() + RECONNECT_SECONDS
                return
            self._connection = connected
            self._start_epoch()
            self._last_heard = self._last_ping = time.monotonic()

    def _drained_ticket(self) -> Ticket | None:
        """Under the lock, with a connection: read every message that has arrived, ping when due."""
        connection = cast(Connection, self._connection)
        now = time.monotonic()
        try:
            while connection.can_read(timeout=0):
                self._handle(connection.read_response())
                now = time.monotonic()
                self._last_heard = now
            if now - self._last_ping >= PING_SECONDS:
                connection.send_command("PING")
                self._last_ping = now
        except (redis.RedisError, OSError) as error:
            self._warnings.warn("read", error)
            self._drop_connection()
            self._next_attempt = time.monotonic() + RECONNECT_SECONDS
            return None
        if now - self._last_heard > self._liveness:
            # perhaps alive, but not heard from lately (idle, or Redis stopped answering): what it may not have
            # told us cannot be known, so nothing held so far is used; the ping just sent decides from here on
            if self._documents or self._generation is not None:
                self._start_epoch()
            return None
        return Ticket(self._epoch, self._sequence)

    def _handle(self, message: Any) -> None:
        # [b"message", channel, [keys] or None] for invalidations; [b"pong", b""] for our pings
        if not isinstance(message, list) or len(message) < 3 or message[0] != b"message":
            return
        keys = message[2]
        if keys is None:  # FLUSHDB / FLUSHALL: everything is gone
            self._start_epoch()
            return
        for key in keys:
            if key == self._generation_key:
                self._invalidate(GENERATION)
            elif key.startswith(self._product_prefix):
                suffix = key[len(self._product_prefix) :]
                if suffix.isdigit():
                    self._invalidate(int(suffix))

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None
        self._start_epoch()

    def _after_fork(self) -> None:
        # the socket belongs to the parent: forget it without closing it, and everything held with it. Not under
        # the lock: a forked child starts with one thread, and a lock held in the parent at the fork stays held.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._connection = None
        self._connecting = False
        self._next_attempt = 0.0
        self._start_epoch()

    # --- the copies (all under the lock) -------------------------------------------------------------

    def _start_epoch(self) -> None:
        self._epoch += 1
        self._recent.clear()
        self._documents.clear()
        self._held_bytes = 0
        self._generation = None
        self._categories = None

    def _invalidate(self, token: int) -> None:
        self._sequence += 1
        self._recent.append((self._sequence, token))
        if token == GENERATION:
            self._generation = None
            self._categories = None
            return
        dropped = self._documents.pop(token, None)
        if dropped is not None:
            self._held_bytes -= _size(dropped)

    def _invalidated_since(self, ticket: Ticket) -> set[int] | None:
        """The tokens invalidated after `ticket`; None when they are no longer all known."""
        if ticket.sequence == self._sequence:
            return set()
        if not self._recent or self._recent[0][0] > ticket.sequence + 1:
            return None
        return {token for sequence, token in self._recent if sequence > ticket.sequence}

    def _hold(self, document: ProductDocument) -> None:
        replaced = self._documents.pop(document.product_id, None)
        if replaced is not None:
            self._held_bytes -= _size(replaced)
        self._documents[document.product_id] = document
        self._held_bytes += _size(document)
        while self._held_bytes > self._budget and len(self._documents) > 1:
            _, evicted = self._documents.popitem(last=False)
            self._held_bytes -= _size(evicted)


def _size(document: ProductDocument) -> int:
    return len(document.json) + DOCUMENT_OVERHEAD_BYTES


EXTENSION = "catalog_near_cache"


def for_app() -> NearCache:
    """The current app's near cache, made on first use (one per app and process; off with CATALOG_NEAR_CACHE)."""
    near: NearCache | None = current_app.extensions.get(EXTENSION)
    if near is None:
        near = current_app.extensions.setdefault(EXTENSION, _made_for(current_app))
    return near


def _made_for(app: Flask) -> NearCache:
    client: redis.Redis = app.extensions["redis"]
    pool = client.connection_pool

    def open_connection() -> Connection:
        # the app's URL, credentials and short timeouts; RESP2, where invalidations are plain pub/sub messages;
        # no health checks, which expect a plain PONG
        return cast(
            Connection, pool.connection_class(**(pool.connection_kwargs | {"health_check_interval": 0, "protocol": 2}))
        )

    product_prefix, generation_key = catalog_cache.tracked_keys()
    return NearCache(
        open_connection,
        product_prefix=product_prefix,
        generation_key=generation_key,
        budget_bytes=app.config["CATALOG_NEAR_CACHE_BYTES"],
        liveness_seconds=app.config["CATALOG_NEAR_CACHE_LIVENESS_SECONDS"],
        enabled=app.config["CATALOG_NEAR_CACHE"] and app.config["CATALOG_CACHE_ENABLED"],
        breaker=app.extensions["redis_breaker"],
    )
