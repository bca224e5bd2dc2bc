"""The statements of order placement, the service's hottest transaction: prepared, two round trips.

    1. BEGIN, bound the waits, claim the Idempotency-Key, lock the products (reserving the order's id) and
       read the key's record                         INSERT ... ON CONFLICT DO NOTHING; SELECT ... FOR UPDATE
    2. take the stock, write the order, its lines and first history entry, the key's answer and the record of
       the catalog's changes (shop/catalog/invalidation.py); COMMIT
       (or, for an out-of-stock answer, only the key's answer; COMMIT)

BEGIN and COMMIT go with the statements when the unit of work has sent nothing yet (see prepared.run).

Plain rows and plain values, no ORM objects: nothing here is flushed, and the product rows are changed by
SQL, so `version` is bumped here and the catalog is told (`note_product_changes`), as every writer outside
the ORM must.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from shop.catalog.invalidation import note_product_changes, record_statement
from shop.repositories.prepared import Call, PreparedStatement, run


@dataclass(frozen=True)
class LockedProduct:
    """What an order needs of a product it has locked: the snapshot fields, the stock and the row version."""

    id: int
    sku: str
    name: str
    price: Decimal
    stock: int
    is_active: bool
    version: int
    category: str


@dataclass(frozen=True)
class ClaimedKey:
    id: int
    request_fingerprint: str
    response_status: int | None
    response_body: str | None


@dataclass(frozen=True)
class Locked:
    """The locked products of an order, by id, with the id reserved for the order, the transaction's time,
    and the Idempotency-Key's record when there is a key (its answer is None while it is this order's own)."""

    products: dict[int, LockedProduct]
    order_id: int
    placed_at: datetime
    key_record: ClaimedKey | None


@dataclass(frozen=True)
class PlacedLine:
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    category: str
    first_in_category: bool  # the order's first line in its category (the reports count orders by these)


@dataclass(frozen=True)
class PlacedOrder:
    """A new order as it is written, and as its answer describes it (the fields of `order_document`)."""

    id: int
    user_id: int
    currency: str
    items: Sequence[PlacedLine]
    total: Decimal
    units: int
    shipping_address: dict[str, str]
    dropped_lines: list[dict[str, int]]
    created_at: datetime
    status: str = "pending"
    paid_at: None = None
    shipped_at: None = None
    delivered_at: None = None
    cancelled_at: None = None

    @property
    def updated_at(self) -> datetime:
        return self.created_at


# A concurrent request with the same key waits here on the unique index until its transaction ends; then there
# is nothing to do, and the record LOCK_PRODUCTS reads is the one that transaction committed, with its answer.
CLAIM_KEY = PreparedStatement(
    "shop_claim_key",
    ("bigint", "text", "text"),
    "INSERT INTO idempotency_records (user_id, key, request_fingerprint) VALUES ($1, $2, $3)"
    " ON CONFLICT (user_id, key) DO NOTHING",
)
# Always in id order, so concurrent orders never deadlock. The next_order CTE is materialized (nextval is
# volatile), so one id is drawn per order, not per product; the order's timestamps are now(), the
# transaction's start. The key's record ($2, $3; none without a key) comes along on every row: a statement's
# rows are all a message can bring back, and this saves the claim a round trip of its own.
LOCK_PRODUCTS = PreparedStatement(
    "shop_lock_products",
    ("bigint[]", "bigint", "text"),
    """
    WITH next_order AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id, now() AS placed_at
    ), key_record AS (
        SELECT id, request_fingerprint, response_status, response_body
          FROM idempotency_records WHERE user_id = $2 AND key = $3
    )
    SELECT p.id, p.sku, p.name, p.price, p.stock, p.is_active, p.version, p.category,
           next_order.id, next_order.placed_at,
           key_record.id, key_record.request_fingerprint, key_record.response_status, key_record.response_body
      FROM products p CROSS JOIN next_order LEFT JOIN key_record ON true
     WHERE p.id = ANY($1)
     ORDER BY p.id
       FOR UPDATE OF p
    """,
)
# Going below zero violates the stock CHECK: the caller decides whether that fails the order or, inside a
# savepoint, one line.
TAKE_STOCK = PreparedStatement(
    "shop_take_stock",
    ("bigint[]", "integer[]"),
    """
    UPDATE products
       SET stock = products.stock - taken.quantity, version = products.version + 1, updated_at = now()
      FROM unnest($1, $2) AS taken (product_id, quantity)
     WHERE products.id = taken.product_id
    """,
)
# The order, its lines (in the order given, so their ids keep it) and its first history entry, in one statement.
# A new order is pending: it does not count yet, and its lines' placed_at is now(), like its created_at.
INSERT_ORDER = PreparedStatement(
    "shop_insert_order",
    (
        "bigint", "bigint", "text", "numeric", "integer", "jsonb", "jsonb",
        "bigint[]", "text[]", "text[]", "integer[]", "numeric[]", "numeric[]", "text[]", "boolean[]",
    ),
    """
    WITH new_order AS (
        INSERT INTO orders (id, user_id, status, currency, total, units, shipping_address, dropped_lines)
        VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7)
        RETURNING id, user_id
    ), new_lines AS (
        INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total, category,
                                 first_in_category)
        SELECT new_order.id, line.product_id, line.sku, line.name, line.quantity, line.unit_price, line.line_total,
               line.category, line.first_in_category
          FROM new_order, unnest($8, $9, $10, $11, $12, $13, $14, $15) WITH ORDINALITY
               AS line (product_id, sku, name, quantity, unit_price, line_total, category, first_in_category,
                        position)
         ORDER BY line.position
    )
    INSERT INTO order_status_changes (order_id, from_status, to_status, changed_by)
    SELECT id, NULL, 'pending', user_id FROM new_order
    """,
)  # fmt: skip
RECORD_ANSWER = PreparedStatement(
    "shop_record_answer",
    ("bigint", "integer", "text"),
    "UPDATE idempotency_records SET response_status = $2, response_body = $3 WHERE id = $1",
)


# a customer can be refused as often as they like (each refusal keeps its key's answer for replays): only the
# newest `$2` refusals of a customer are kept, so refused orders cannot grow the table without bound
PRUNE_REFUSALS = PreparedStatement(
    "shop_prune_refusals",
    ("bigint", "integer"),
    """
    DELETE FROM idempotency_records
     WHERE id IN (SELECT id FROM idempotency_records
                   WHERE user_id = $1 AND response_status >= 400
                   ORDER BY id DESC OFFSET $2)
    """,
)


class PlacementRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        """The transaction's connection, asked of the session once: a unit of work is one transaction.

        Not for statements inside a savepoint (see take_stock).
        """
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection

    def claim_and_lock(
        self, first: Call, product_ids: Sequence[int], key: tuple[int, str, str] | None
    ) -> Locked | None:
        """In one round trip: `first` (the transaction's bounded waits), the claim of `key` (user id, key,
        request fingerprint) when there is one, and the locks. None if none of the products exists."""
        user_id, key_text = (key[0], key[1]) if key is not None else (None, None)
        calls: list[Call] = [first]
        if key is not None:
            calls.append((CLAIM_KEY, key))
        calls.append((LOCK_PRODUCTS, (sorted(set(product_ids)), user_id, key_text)))
        rows = run(self.connection, *calls, begin=True)
        if not rows:
            return None
        products = {row[0]: LockedProduct(*row[:8]) for row in rows}
        first_row = rows[0]
        record = ClaimedKey(*first_row[10:14]) if first_row[10] is not None else None
        return Locked(products, order_id=first_row[8], placed_at=first_row[9], key_record=record)

    def take_stock(self, products: Mapping[int, LockedProduct], quantities: Mapping[int, int]) -> None:
        """Take these quantities from the locked products now (one round trip): allow_partial, line by line.

        Through the session, not the kept connection: inside `session.begin_nested()`, asking the session for
        its connection is what emits the SAVEPOINT.
        """
        run(self.session, _take(quantities))
        self._note_taken(products, quantities)

    def write(
        self,
        order: PlacedOrder,
        *,
        take_from: Mapping[int, LockedProduct] | None,
        answer: tuple[int, int, str] | None,
    ) -> None:
        """In one round trip, the transaction's last: the order's stock (unless already taken, line by line), the
        order, and the key's answer (record id, status, body) when there is a key. The unit of work's commit
        must follow."""
        quantities = {line.product_id: line.quantity for line in order.items}
        calls: list[Call] = [_take(quantities)] if take_from is not None else []
        calls.append((INSERT_ORDER, _insert_parameters(order)))
        if answer is not None:
            calls.append((RECORD_ANSWER, answer))
        if take_from is not None:
            self._note_taken(take_from, quantities)  # noted before the COMMIT is sent, so it is recorded with it
        run(self.connection, *calls, *self._catalog_record(), commit=True)

    def record_refusal(self, record_id: int, status: int, body: str, *, user_id: int, keep: int) -> None:
        """The transaction's last statements (nothing else is written): the key's refusal, and the user's older
        refusals beyond the newest `keep` pruned. The unit of work's commit must follow."""
        calls: list[Call] = [(RECORD_ANSWER, (record_id, status, body)), (PRUNE_REFUSALS, (user_id, keep))]
        run(self.connection, *calls, *self._catalog_record(), commit=True)

    def _catalog_record(self) -> list[Call]:
        """The row that records the transaction's catalog changes, sent in the last round trip with the COMMIT."""
        record = record_statement(self.session)
        return [record] if record is not None else []

    def _note_taken(self, products: Mapping[int, LockedProduct], quantities: Mapping[int, int]) -> None:
        # the rows are locked, so their new versions and stock are known without reading them back
        note_product_changes(
            self.session,
            {product_id: products[product_id].version + 1 for product_id in quantities},
            # stock only goes down here, so a listing changes only when a product runs out (the in_stock filter)
            listings=any(products[product_id].stock == taken for product_id, taken in quantities.items()),
        )


def _take(quantities: Mapping[int, int]) -> Call:
    return TAKE_STOCK, (list(quantities), list(quantities.values()))


def _insert_parameters(order: PlacedOrder) -> tuple[object, ...]:
    items = order.items
    return (
        order.id,
        order.user_id,
        order.currency,
        order.total,
        order.units,
        json.dumps(order.shipping_address),
        json.dumps(order.dropped_lines),
        [item.product_id for item in items],
        [item.sku for item in items],
        [item.name for item in items],
        [item.quantity for item in items],
        [item.unit_price for item in items],
        [item.line_total for item in items],
        [item.category for item in items],
        [item.first_in_category for item in items],
    )
