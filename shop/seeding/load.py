"""Writing a seeded store: one transaction, COPY streams, constraints checked once, set-based, at the end.

Per-row work is what makes bulk loads slow, so for the length of the load (inside the one transaction, under
exclusive locks, so nobody else ever sees it) the foreign keys of the order tables are dropped and the deferred
order-total triggers disabled. Afterwards the foreign keys are added back, which validates every row in one
join, the totals are checked in one query, and the triggers are enabled again. If anything fails, the
transaction rolls back and the database is as it was.
"""

from __future__ import annotations

import contextlib
import functools
import io
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.catalog import cache as catalog_cache
from shop.extensions import db
from shop.models.base import Base
from shop.models.order import COUNTED_SQL, counted_sql
from shop.reports.summaries import SUMMARIES
from shop.seeding import money
from shop.seeding.generate import Rows, SeedPlan, StoreGenerator

# every table of the shop's data (not alembic_version), children first
SHOP_TABLES = (
    *money.MONEY_TABLES, "order_status_changes", "order_items", "idempotency_records", "api_tokens", "orders",
    "products", "users",
)  # fmt: skip
CHECKED_LATER = ("orders", "order_items", "order_status_changes")  # their foreign keys are checked after the load
INDEXED_LATER = (*CHECKED_LATER, "ledger_entries")  # their keys and indexes are built after it
TOTAL_TRIGGERS = (("orders", "trg_orders_total_matches_lines"), ("order_items", "trg_order_items_total_matches_lines"))
# the report summaries' triggers (migration 0016): a change row per loaded row would cost more than the summaries
# made once from the loaded rows (rebuild_report_summaries())
SUMMARY_TRIGGERS = (
    *((table, f"summarize_{name}_{when}") for table, name in (("orders", "order"), ("order_items", "order_item"))
      for when in ("insert", "update", "delete")),
    ("ledger_entries", "summarize_refund"),
    ("refund_lines", "summarize_refund_line"),
)  # fmt: skip
SUMMARY_TABLES = (*(summary.table for summary in SUMMARIES), "customer_revenue")

USER_COLUMNS = "id, email, name, password_hash, role, is_active, created_at, updated_at"
PRODUCT_COLUMNS = "id, sku, name, description, category, price, stock, is_active, created_at, updated_at, version"
ITEM_COLUMNS = (
    "id, order_id, product_id, sku, name, quantity, unit_price, line_total, placed_at, counted, category, "
    "first_in_category"
)
CAPTURE_COLUMNS = "id, order_id, kind, amount, currency, occurred_at, provider, reference"
HISTORY_COLUMNS = "id, order_id, from_status, to_status, changed_by, changed_at, note, event"
ORDER_COLUMNS = (
    "id, user_id, status, currency, total, units, shipping_address, payment_reference, cancel_reason, "
    "paid_at, shipped_at, delivered_at, cancelled_at, created_at, updated_at, dropped_lines, previous_counted_at, "
    "first_counted_at"
)

# What the disabled triggers would have checked, for every order at once: totals and units, and the facts the
# reports read (each line carries its order's time and counted status, and has a first of its category; each
# counted order points at its customer's previous one). One first per category exactly is left to the tests:
# counting distinct categories per order would double the check's time.
WRONG_TOTALS = sa.text(
    f"""
    SELECT count(*) FROM orders o
      LEFT JOIN (SELECT order_id, count(*) AS lines, sum(line_total) AS total, sum(quantity) AS units,
                        min(placed_at) AS first_placed, max(placed_at) AS last_placed,
                        bool_and(counted) AS all_counted, bool_or(counted) AS any_counted,
                        bool_or(first_in_category) AS has_first
                   FROM order_items GROUP BY order_id) l
        ON l.order_id = o.id
     WHERE l.lines IS NULL OR l.total <> o.total OR l.units <> o.units
        OR l.first_placed <> o.created_at OR l.last_placed <> o.created_at
        OR l.all_counted <> ({counted_sql("o.status")})
        OR l.any_counted <> ({counted_sql("o.status")}) OR NOT l.has_first
    """  # noqa: S608 - the counted statuses, our constant
)
# switched off for WRONG_TOTALS and the foreign keys to orders: with no hash and no sort left, their plans read both
# sides by their keys
STREAMING_PLAN = ("enable_hashagg", "enable_hashjoin", "enable_sort")
WRONG_CHAINS = sa.text(
    f"""
    SELECT count(*) FROM (
        SELECT previous_counted_at, first_counted_at,
               CASE WHEN counted THEN lag(created_at) OVER (PARTITION BY user_id, counted ORDER BY created_at, id)
               END AS expected,
               CASE WHEN counted THEN min(created_at) OVER (PARTITION BY user_id, counted) END AS expected_first
          FROM (SELECT id, user_id, created_at, previous_counted_at, first_counted_at,
                       {COUNTED_SQL} AS counted FROM orders) o
    ) chain
     WHERE previous_counted_at IS DISTINCT FROM expected OR first_counted_at IS DISTINCT FROM expected_first
    """  # noqa: S608 - the counted statuses, our constant
)


class SeedRefused(click.UsageError):
    """A reason not to write anything; click prints it and exits with status 2."""


NOT_EMPTY = (
    "The database already holds users, products or orders; seeding would mix with them. "
    "Use --reset to empty the shop's tables first."
)


@dataclass
class SeedReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cache_cleared: bool = True


class _Progress:
    """Rows per table, with a bar for the big ones and the time taken, on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def table(self, name: str, rows: Rows, expected: int) -> Rows:
        if not self.enabled:
            yield from rows
            return
        started, count = time.monotonic(), 0
        with click.progressbar(length=expected, label=f"  {name:<22}", file=sys.stderr, width=30) as bar:
            for text, many in rows:
                yield text, many
                count += many
                bar.update(many)
        click.echo(f"  {name:<22} {count:>11,} rows  {time.monotonic() - started:6.1f} s", err=True)

    def step(self, what: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = action()
        if self.enabled:
            click.echo(f"  {what:<34} {time.monotonic() - started:6.1f} s", err=True)
        return result


CHUNK_CHARACTERS = 1 << 20
CHUNKS_AHEAD = 8


class _RowStream(io.TextIOBase):
    """A file whose reads come from an iterator of COPY rows, generated by a thread of its own while PostgreSQL
    loads the chunks before: psycopg2 lets go of the GIL while it sends, so generating and loading overlap
    (in one thread they took turns, each waiting on the other, and the load took as long as both)."""

    def __init__(self, rows: Rows) -> None:
        self.count = 0
        self._chunks: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=CHUNKS_AHEAD)
        self._pending = ""
        self._done = False
        self._abandoned = threading.Event()
        self._producer = threading.Thread(target=self._produce, args=(rows,), name="seed-rows", daemon=True)
        self._producer.start()

    def _produce(self, rows: Rows) -> None:
        try:
            parts: list[str] = []
            length = 0
            for text, many in rows:
                parts.append(text)
                length += len(text)
                self.count += many
                if length >= CHUNK_CHARACTERS:
                    if not self._hand_over("".join(parts)):
                        return
                    parts, length = [], 0
            if parts and not self._hand_over("".join(parts)):
                return
            self._hand_over(None)
        except BaseException as error:
            # raised again in the load's own thread, by read()
            self._hand_over(error)

    def _hand_over(self, item: str | BaseException | None) -> bool:
        """Queue `item` for the reader; False if the load was abandoned (a failed COPY reads no more)."""
        while not self._abandoned.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        wanted = sys.maxsize if size is None or size < 0 else size
        while len(self._pending) < wanted and not self._done:
            chunk = self._chunks.get()
            if isinstance(chunk, BaseException):
                raise chunk
            if chunk is None:
                self._done = True
            else:
                self._pending += chunk
        answer, self._pending = self._pending[:wanted], self._pending[wanted:]
        return answer

    def finish(self) -> int:
        """The rows generated, once the producer has ended (it has, when read() has seen the end)."""
        self._producer.join()
        return self.count

    def abandon(self) -> None:
        """The load failed: let the producer stop instead of waiting forever for a reader."""
        self._abandoned.set()
        self._producer.join()


def _copy(connection: Connection, table: str, columns: str, rows: Rows) -> int:
    stream = _RowStream(rows)
    cursor = connection.connection.cursor()
    try:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FREEZE)", stream, size=CHUNK_CHARACTERS)
    except BaseException:
        stream.abandon()
        raise
    finally:
        cursor.close()
    return stream.finish()


@contextlib.contextmanager
def _streaming_plan(connection: Connection) -> Iterator[None]:
    """Plans that read both sides in key order, for a statement over whole tables that the planner, with no
    statistics yet, would give hash tables of ten million rows."""
    for setting in STREAMING_PLAN:
        connection.execute(sa.text(f"SET LOCAL {setting} = off"))
    yield
    for setting in STREAMING_PLAN:
        connection.execute(sa.text(f"RESET {setting}"))


def _continue_ids(connection: Connection, table: str, loaded: int | None = None) -> None:
    """Ids were written explicitly: the next one the database hands out must follow them. `loaded`: the table was
    just loaded with ids 1 to `loaded` and has no key yet to find the largest by (at ten million orders, max(id)
    read the whole 4.7 GB history to learn what the load had counted)."""
    next_id = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
    if loaded is None:
        connection.execute(sa.text(f"{next_id}coalesce(max(id), 0) + 1, false) FROM {table}"))
    else:
        connection.execute(sa.text(f"{next_id}:next, false)"), {"next": loaded + 1})


def seed_money(connection: Connection, staff_id: int | None, until: date) -> None:
    """The refunds and returns of the loaded orders, and each customer's unpaid counts (seeding/money.py)."""
    # the seed's "now", midnight UTC of --until, as the generator's timestamps are
    connection.execute(money.PLAN, {"until": datetime.combine(until, datetime.min.time(), tzinfo=UTC)})
    connection.execute(money.RETURNS, {"provider": money.PROVIDER, "staff_id": staff_id})
    connection.execute(money.UNPAID)


def shop_is_empty(connection: Connection) -> bool:
    return not connection.scalar(
        sa.text("SELECT EXISTS (SELECT FROM users) OR EXISTS (SELECT FROM products) OR EXISTS (SELECT FROM orders)")
    )


def seed_store(
    plan: SeedPlan, *, reset: bool, currency: str, demo_password_hashes: dict[str, str] | None, progress: bool
) -> SeedReport:
    """Write the store `plan` describes, or nothing at all."""
    show = _Progress(progress)
    report = SeedReport()
    store = StoreGenerator(plan)
    with db.engine.begin() as connection:
        # a long load is not an order: no statement timeout, and nobody else touches these tables meanwhile
        connection.execute(sa.text("SELECT set_config('statement_timeout', '0', true)"))
        # index builds and foreign key checks (which take maintenance_work_mem too) sort and hash tens of millions
        # of rows, the summaries hash a million groups: room enough that ten million orders stay in memory
        connection.execute(sa.text("SELECT set_config('maintenance_work_mem', '1GB', true)"))
        connection.execute(sa.text("SELECT set_config('work_mem', '256MB', true)"))
        # a few dozen statements of seconds each, run once: compiling each with JIT costs more than it saves
        connection.execute(sa.text("SELECT set_config('jit', 'off', true)"))
        connection.execute(sa.text(f"LOCK TABLE {', '.join(SHOP_TABLES)} IN ACCESS EXCLUSIVE MODE"))
        if not reset and not shop_is_empty(connection):
            raise SeedRefused(NOT_EMPTY)  # the caller checked too, but not under these locks
        # emptied in this transaction (already empty without --reset), so COPY may write the rows frozen: no
        # hint-bit writes and no vacuum freeze when the first reports read a million orders
        connection.execute(sa.text(f"TRUNCATE {', '.join(SHOP_TABLES)} RESTART IDENTITY CASCADE"))
        foreign_keys = [
            constraint
            for table in (*CHECKED_LATER, *money.MONEY_TABLES)
            for constraint in Base.metadata.tables[table].constraints
            if isinstance(constraint, sa.ForeignKeyConstraint)
        ]
        # their keys and indexes too: built once from the loaded rows, they cost a fraction of row-by-row upkeep
        keys = [
            constraint
            for table in INDEXED_LATER
            for constraint in Base.metadata.tables[table].constraints
            if isinstance(constraint, sa.PrimaryKeyConstraint | sa.UniqueConstraint)
        ]
        indexes = [index for table in INDEXED_LATER for index in Base.metadata.tables[table].indexes]
        # the users' e-mail index too, built once they are in (half a million random inserts into it took longer)
        user_indexes = list(Base.metadata.tables["users"].indexes)
        for constraint in [*foreign_keys, *keys]:
            connection.execute(sa.schema.DropConstraint(constraint))
        for index in [*indexes, *user_indexes]:
            connection.execute(sa.schema.DropIndex(index))
        for table, trigger in (*TOTAL_TRIGGERS, *SUMMARY_TRIGGERS):
            connection.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))

        demo_rows = 2 if demo_password_hashes is not None else 0
        report.rows["users"] = _copy(
            connection,
            "users",
            USER_COLUMNS,
            show.table("users", store.users(demo_password_hashes), plan.users + demo_rows),
        )
        for index in user_indexes:
            connection.execute(sa.schema.CreateIndex(index))
        store.products()
        report.rows["order_items"] = _copy(
            connection, "order_items", ITEM_COLUMNS, show.table("order_items", store.order_items(), plan.orders * 3)
        )
        report.rows["orders"] = _copy(
            connection, "orders", ORDER_COLUMNS, show.table("orders", store.order_rows(currency), plan.orders)
        )
        report.rows["products"] = _copy(
            connection, "products", PRODUCT_COLUMNS, show.table("products", store.product_rows(), plan.products)
        )
        report.rows["order_status_changes"] = _copy(
            connection,
            "order_status_changes",
            HISTORY_COLUMNS,
            show.table("order_status_changes", store.history_rows(currency), plan.orders * 5),
        )

        captures = _copy(  # not counted in the report: the refunds add to the ledger below
            connection,
            "ledger_entries",
            CAPTURE_COLUMNS,
            show.table("ledger_entries", store.capture_rows(currency, money.PROVIDER), plan.orders),
        )
        # the refunds' steps and entries follow (both numbered from 1, row by row)
        _continue_ids(connection, "order_status_changes", loaded=report.rows["order_status_changes"])
        _continue_ids(connection, "ledger_entries", loaded=captures)

        def rebuild(table: str) -> None:
            """A table's keys (each checks its uniqueness as it builds its index), indexes and foreign keys (each
            validates every row), one table after another while its rows are still in the cache: at ten million
            orders the tables outgrow it, and going back to each for its checks read them from disk again."""
            for key in keys:
                if key.table.name == table:
                    connection.execute(sa.schema.AddConstraint(key))
            for index in indexes:
                if index.table is not None and index.table.name == table:
                    connection.execute(sa.schema.CreateIndex(index))
            for foreign_key in foreign_keys:
                if foreign_key.table.name == table:
                    # each row's order found by a merge of two key-ordered indexes, not a hash of ten million
                    # orders (at ten million: the history's 18 s became 8, the lines' 11 s 5)
                    to_orders = foreign_key.referred_table.name == "orders"
                    with _streaming_plan(connection) if to_orders else contextlib.nullcontext():
                        connection.execute(sa.schema.AddConstraint(foreign_key))

        def rebuild_money_references() -> None:
            for table in money.MONEY_TABLES:
                if table not in INDEXED_LATER:
                    rebuild(table)

        def check_orders() -> None:
            # each order beside its lines, both read in order id order from their keys: a merge of two streams
            # (10M orders against 30M lines in 26 s; the hash join the planner picks spilled 10M groups, 60-150 s)
            with _streaming_plan(connection):
                wrong = connection.scalar(WRONG_TOTALS)
            if wrong:
                raise RuntimeError(f"{wrong} seeded orders do not match their lines (totals, units or report facts)")
            wrong = connection.scalar(WRONG_CHAINS)
            if wrong:
                raise RuntimeError(
                    f"{wrong} seeded orders do not point at their customer's previous (or first) counted order"
                )

        def restore_triggers_and_sequences() -> None:
            for table, trigger in (*TOTAL_TRIGGERS, *SUMMARY_TRIGGERS):
                connection.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
            for table in ("users", "products", "orders", "order_items", *money.NUMBERED):
                _continue_ids(connection, table)

        # the money first, while the tables it writes have no indexes to keep
        show.step("refunds and returns", lambda: seed_money(connection, store.staff_id(), plan.until))
        for table in INDEXED_LATER:  # the tables their foreign keys point at first
            show.step(f"{table}: keys, indexes, references", functools.partial(rebuild, table))
        show.step("the money's references", rebuild_money_references)
        show.step("totals and chains checked", check_orders)
        show.step("report summaries", lambda: connection.execute(sa.text("SELECT rebuild_report_summaries()")))
        show.step("triggers and sequences", restore_triggers_and_sequences)
    # fresh statistics, so the first reports and lists are planned for the data that is there (made inside the
    # load they bought nothing: the plans the checks got from them were slower than those without)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        show.step(
            "analyze", lambda: connection.execute(sa.text(f"ANALYZE {', '.join((*SHOP_TABLES, *SUMMARY_TABLES))}"))
        )
    # product ids start again at 1: documents cached for the old catalog must never be served for the new one
    report.cache_cleared = catalog_cache.forget_everything()
    report.seconds = time.monotonic() - show.started
    return report
