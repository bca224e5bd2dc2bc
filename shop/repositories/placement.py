"""The statements of order placement, the service's hottest transaction: prepared, two round trips.

    1. BEGIN, bound the waits, claim the Idempotency-Key, count the order in its customer's unpaid ones, lock the
       products (reserving the order's id) and read the key's record and the customer's unpaid counts
                                INSERT ... ON CONFLICT DO NOTHING; UPDATE users ...; SELECT ... FOR UPDATE
    2. take the stock, write the order, its lines and first history entry, the key's answer and the record of
       the catalog's changes (shop/catalog/invalidation.py); COMMIT
       (or, for an out-of-stock answer, only the key's answer; COMMIT)

The repository says what to run and which rows it needs; the unit of work's `Statements` decides the round
trips (BEGIN with the first, the writes deferred to go with COMMIT) and commits.

Plain rows and plain values, no ORM objects: nothing here is flushed, and the product rows are changed by
SQL, so `version` is bumped here and the changes are kept (`catalog_changes`) for the unit of work to record
and announce at its commit, as for every writer outside the ORM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from psycopg2 import errors as pg_errors
from sqlalchemy.exc import IntegrityError

from shop.db.prepared import Call, PreparedStatement
from shop.db.statements import Statements


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
class KeyClaim:
    """An Idempotency-Key claimed for a request: whose, the key, and the request's fingerprint."""

    user_id: int
    key: str
    fingerprint: str


@dataclass(frozen=True)
class ClaimedKey:
    """The key's record as the lock read it: its answer is None while the answer is this transaction's to give."""

    id: int
    request_fingerprint: str
    response_status: int | None
    response_body: str | None


@dataclass(frozen=True)
class KeyAnswer:
    """The answer kept with a key's record, for replays: the record, its answer code and its JSON text."""

    record_id: int
    status: int
    body: str


@dataclass
class StockChanges:
    """The products this transaction changed, with their new row versions, and whether a listing may change."""

    product_versions: dict[int, int]
    listings: bool


class NotEnoughStock(Exception):
    """Taking the stock would leave a product below zero (the stock CHECK refused it)."""


@dataclass(frozen=True)
class Unpaid:
    """A customer's pending orders and their units, this order's counted in (the one transaction holding their row)."""

    orders: int
    units: int


@dataclass(frozen=True)
class Locked:
    """The locked products of an order, by id, with the id reserved for the order, the transaction's time,
    the Idempotency-Key's record when there is a key (its answer is None while it is this order's own), and the
    customer's unpaid counts with this order in them."""

    products: dict[int, LockedProduct]
    order_id: int
    placed_at: datetime
    key_record: ClaimedKey | None
    unpaid: Unpaid


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
# The order is counted in its customer's unpaid ones at once, with every unit asked for: the row stays locked to the
# end, so one customer's concurrent orders are counted one after another and none can slip past the limit (the
# caller checks the counts LOCK_PRODUCTS reads back, and rolls everything back when they are over it). The customer
# is locked before the products, as every transition locks them before the order's (shop/services/order_lifecycle.py).
HOLD_UNPAID = PreparedStatement(
    "shop_hold_unpaid",
    ("bigint", "integer"),
    "UPDATE users SET unpaid_orders = unpaid_orders + 1, unpaid_units = unpaid_units + $2 WHERE id = $1",
)
# Lines dropped by allow_partial, or an order refused for stock, give back what HOLD_UNPAID counted (with the commit).
RELEASE_UNPAID = PreparedStatement(
    "shop_release_unpaid",
    ("bigint", "integer", "integer"),
    "UPDATE users SET unpaid_orders = unpaid_orders - $2, unpaid_units = unpaid_units - $3 WHERE id = $1",
)
# Always in id order, so concurrent orders never deadlock. The next_order CTE is materialized (nextval is
# volatile), so one id is drawn per order, not per product; the order's timestamps are now(), the
# transaction's start. The key's record ($2, $3; none without a key) and the customer's unpaid counts ($4) come
# along on every row: a statement's rows are all a message can bring back, and this saves each a round trip.
LOCK_PRODUCTS = PreparedStatement(
    "shop_lock_products",
    ("bigint[]", "bigint", "text", "bigint"),
    """
    WITH next_order AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id, now() AS placed_at
    ), key_record AS (
        SELECT id, request_fingerprint, response_status, response_body
          FROM idempotency_records WHERE user_id = $2 AND key = $3
    ), unpaid AS (
        SELECT unpaid_orders, unpaid_units FROM users WHERE id = $4
    )
    SELECT p.id, p.sku, p.name, p.price, p.stock, p.is_active, p.version, p.category,
           next_order.id AS order_id, next_order.placed_at,
           key_record.id AS key_record_id, key_record.request_fingerprint AS key_fingerprint,
           key_record.response_status AS key_status, key_record.response_body AS key_body,
           unpaid.unpaid_orders, unpaid.unpaid_units
      FROM products p CROSS JOIN next_order CROSS JOIN unpaid LEFT JOIN key_record ON true
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
        INSERT INTO orders (id, user_id, status, currency, total, units, shipping_address, dropped_lines,
                            event_sequence)
        VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, 1)
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
    INSERT INTO order_status_changes (order_id, from_status, to_status, changed_by, event)
    SELECT id, NULL, 'pending', user_id, 'order.placed' FROM new_order
    """,
)  # fmt: skip
# the order's first event (sequence 1, as INSERT_ORDER set the order's event_sequence), its document as answered
RECORD_PLACED = PreparedStatement(
    "shop_record_order_placed",
    ("bigint", "json"),
    "INSERT INTO events (type, resource_type, resource_id, sequence, data) VALUES ('order.placed', 'order', $1, 1, $2)",
)
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


@dataclass(frozen=True)
class LockedRow(LockedProduct):
    """A row of LOCK_PRODUCTS, in its column order: the product's fields, then the id and time reserved for the
    order and the key's record (the same on every row)."""

    order_id: int
    placed_at: datetime
    key_record_id: int | None
    key_fingerprint: str | None
    key_status: int | None
    key_body: str | None
    unpaid_orders: int
    unpaid_units: int

    def key_record(self) -> ClaimedKey | None:
        if self.key_record_id is None or self.key_fingerprint is None:
            return None
        return ClaimedKey(self.key_record_id, self.key_fingerprint, self.key_status, self.key_body)


STOCK_CHECK = "ck_products_stock_not_negative"

# keys older than the window are forgotten; a retry with one after that is a new order
PURGE_KEYS = PreparedStatement(
    "shop_purge_keys",
    ("integer",),
    """
    WITH gone AS (DELETE FROM idempotency_records WHERE created_at < now() - make_interval(hours => $1) RETURNING 1)
    SELECT count(*) FROM gone
    """,
)


class PlacementRepository:
    def __init__(self, statements: Statements) -> None:
        self._statements = statements
        self.catalog_changes: StockChanges | None = None
        self.wrote_events = False

    def claim_and_lock(
        self, customer_id: int, product_ids: Sequence[int], units: int, claim: KeyClaim | None
    ) -> Locked | None:
        """The claim of the key, when there is one, the order and its `units` counted in the customer's unpaid
        ones, and the locks, read at once. None if none of the products exists."""
        calls: list[Call] = []
        if claim is not None:
            calls.append((CLAIM_KEY, (claim.user_id, claim.key, claim.fingerprint)))
        calls.append((HOLD_UNPAID, (customer_id, units)))
        user_id, key = (claim.user_id, claim.key) if claim is not None else (None, None)
        calls.append((LOCK_PRODUCTS, (sorted(set(product_ids)), user_id, key, customer_id)))
        rows = [LockedRow(*row) for row in self._statements.run(*calls)]
        if not rows:
            return None
        first = rows[0]
        return Locked(
            {row.id: row for row in rows},
            order_id=first.order_id,
            placed_at=first.placed_at,
            key_record=first.key_record(),
            unpaid=Unpaid(first.unpaid_orders, first.unpaid_units),
        )

    def take_stock(self, products: Mapping[int, LockedProduct], quantities: Mapping[int, int]) -> None:
        """Take these quantities from the locked products now, or raise NotEnoughStock (in a savepoint, that
        fails that step alone): allow_partial, line by line."""
        try:
            self._statements.run(_take(quantities))
        except IntegrityError as error:
            if isinstance(error.orig, pg_errors.CheckViolation) and STOCK_CHECK in str(error.orig):
                raise NotEnoughStock from None
            raise
        self._note_taken(products, quantities)

    def write(
        self,
        order: PlacedOrder,
        document: str,
        *,
        take_from: Mapping[int, LockedProduct] | None,
        answer: KeyAnswer | None,
    ) -> None:
        """The order's stock (unless already taken, line by line), the order, its `order.placed` event carrying
        `document` (its JSON), and the key's answer when there is a key: sent with the unit of work's commit."""
        quantities = {line.product_id: line.quantity for line in order.items}
        if take_from is not None:
            self._statements.defer(_take(quantities))
            self._note_taken(take_from, quantities)
        self._statements.defer((INSERT_ORDER, _insert_parameters(order)), (RECORD_PLACED, (order.id, document)))
        self.wrote_events = True
        if answer is not None:
            self._statements.defer(_record_answer(answer))

    def release_unpaid(self, customer_id: int, *, orders: int, units: int) -> None:
        """Give back part of what claim_and_lock counted unpaid (lines dropped, an order refused): with the commit."""
        self._statements.defer((RELEASE_UNPAID, (customer_id, orders, units)))

    def record_refusal(self, answer: KeyAnswer, *, user_id: int, keep: int) -> None:
        """The key's refusal, and the user's older refusals beyond the newest `keep` pruned: sent with the commit."""
        self._statements.defer(_record_answer(answer), (PRUNE_REFUSALS, (user_id, keep)))

    def purge_keys(self, older_than_hours: int) -> int:
        return int(self._statements.run((PURGE_KEYS, (older_than_hours,)))[0][0])

    def _note_taken(self, products: Mapping[int, LockedProduct], quantities: Mapping[int, int]) -> None:
        # the rows are locked, so their new versions and stock are known without reading them back
        changes = self.catalog_changes or StockChanges({}, listings=False)
        for product_id in quantities:
            changes.product_versions[product_id] = products[product_id].version + 1
        # stock only goes down here, so a listing changes only when a product runs out (the in_stock filter)
        changes.listings = changes.listings or any(
            products[product_id].stock == taken for product_id, taken in quantities.items()
        )
        self.catalog_changes = changes


def _take(quantities: Mapping[int, int]) -> Call:
    return TAKE_STOCK, (list(quantities), list(quantities.values()))


def _record_answer(answer: KeyAnswer) -> Call:
    return RECORD_ANSWER, (answer.record_id, answer.status, answer.body)


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
