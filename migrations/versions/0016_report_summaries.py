"""Report summaries: the counted orders, lines and refunds added up by UTC quarter hour, day and month, so that a
report over a year reads a few thousand summed rows instead of millions of orders.

Every IANA zone is a whole number of quarter hours from UTC, so every local midnight is the start of a UTC quarter
hour: a range of local days is exactly a run of quarter hours, of which the whole UTC days and months in the middle
are read from their own, coarser rows (summary_segments()).

Kept current in the writing transaction, by triggers on orders, order_items, ledger_entries and refund_lines,
without a hot row: a trigger only appends a change (+1 order, -3 units, ...) to a `*_summary_changes` table, which
no two transactions ever both update (customer_revenue alone is updated in place, a row per customer, whose
counted orders change one at a time anyway: the order code locks the customer first). shop folds the changes into
the summaries now and then (roll_up, in shop/reports/summaries.py), one transaction moving them: a report reads
summaries and changes together, in one snapshot, so it is exact whether or not they were folded in yet.

- revenue_summary (grains q, d, m): counted orders, units, revenue by when the order was placed; refunds of orders
  in the revenue by when they were paid out.
- category_summary, product_summary (grains d, m): counted lines by when their order was placed (orders: lines
  first of their category in their order), refunded lines by when the refund was paid out. Their reports read the
  partial days at a range's ends from the lines themselves (ix_order_items_revenue), so need no quarter hours.
- order_pair_summary, first_order_summary (grain d): counted orders by their day and their customer's previous
  (first) counted order's day, for the distinct-customer counts.
- customer_revenue: each customer's counted orders' total ever, the bound that lets top customers read only the
  customers who could be in it.

Revision ID: 0016_report_summaries
Revises: 0015_first_orders_index
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_report_summaries"
down_revision = "0015_first_orders_index"
branch_labels = None
depends_on = None

COUNTED = "('paid', 'shipped', 'delivered')"
MONEY = sa.Numeric(14, 2)

FUNCTIONS = """
    -- the UTC quarter hour holding a moment: the finest bucket of the summaries
    CREATE FUNCTION summary_quarter_hour(at timestamptz) RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT date_bin('15 minutes', at, TIMESTAMPTZ 'epoch') $$;

    -- where the UTC day or month holding a moment began ('day' or 'month'); in UTC whatever the session's zone
    CREATE FUNCTION summary_floor(grain text, at timestamptz) RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT date_trunc(grain, at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' $$;

    -- the first UTC day or month start at or after a moment
    CREATE FUNCTION summary_ceiling(grain text, at timestamptz) RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT CASE WHEN summary_floor(grain, at) = at THEN at
                          ELSE (date_trunc(grain, at AT TIME ZONE 'UTC') + CAST('1 ' || grain AS interval))
                               AT TIME ZONE 'UTC' END $$;

    -- [from_at, until_at) as the fewest summary rows: whole UTC months ('m'), then whole UTC days ('d'), then the
    -- quarter hours left at either end ('q'); each segment [seg_from, seg_until) holds the rows of its grain that
    -- start in it. Exact when both ends are quarter hours (every local midnight of every zone is).
    CREATE FUNCTION summary_segments(from_at timestamptz, until_at timestamptz)
        RETURNS TABLE (grain character(1), seg_from timestamptz, seg_until timestamptz)
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
        WITH days AS (
            SELECT summary_ceiling('day', from_at) AS first_day, summary_floor('day', until_at) AS last_day
        ), edges AS (
            SELECT first_day, last_day,
                   summary_ceiling('month', first_day) AS first_month, summary_floor('month', last_day) AS last_month
              FROM days
        )
        SELECT CAST('m' AS character(1)), first_month, last_month FROM edges WHERE first_month < last_month
        UNION ALL SELECT 'd', first_day, first_month FROM edges
                   WHERE first_month < last_month AND first_day < first_month
        UNION ALL SELECT 'd', last_month, last_day FROM edges WHERE first_month < last_month AND last_month < last_day
        UNION ALL SELECT 'd', first_day, last_day FROM edges WHERE first_month >= last_month AND first_day < last_day
        UNION ALL SELECT 'q', from_at, first_day FROM edges WHERE first_day < last_day AND from_at < first_day
        UNION ALL SELECT 'q', last_day, until_at FROM edges WHERE first_day < last_day AND last_day < until_at
        UNION ALL SELECT 'q', from_at, until_at FROM edges WHERE first_day >= last_day AND from_at < until_at
        $$;
"""

TRIGGERS = f"""
    -- an order counts (paid, shipped or delivered) or stops counting, a counted order's figures change, or its
    -- customer's previous or first counted order does (previous_counted_at, first_counted_at: kept by the order code)
    CREATE FUNCTION summarize_order() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        was_counted boolean := TG_OP <> 'INSERT' AND OLD.status IN {COUNTED};
        is_counted boolean := TG_OP <> 'DELETE' AND NEW.status IN {COUNTED};
        was_repeat boolean := was_counted AND OLD.previous_counted_at IS NOT NULL;
        is_repeat boolean := is_counted AND NEW.previous_counted_at IS NOT NULL;
        -- a counted order always has a first order by commit (check_order_total()), not always at each statement
        had_first boolean := was_counted AND OLD.first_counted_at IS NOT NULL;
        has_first boolean := is_counted AND NEW.first_counted_at IS NOT NULL;
    BEGIN
        IF was_counted <> is_counted
           OR (is_counted AND (OLD.total, OLD.units, OLD.created_at, OLD.previous_counted_at IS NULL)
                              IS DISTINCT FROM (NEW.total, NEW.units, NEW.created_at, NEW.previous_counted_at IS NULL))
        THEN
            IF was_counted THEN
                INSERT INTO revenue_summary_changes (starts_at, orders, units, revenue, refunds, first_orders)
                VALUES (summary_quarter_hour(OLD.created_at), -1, -OLD.units, -OLD.total, 0,
                        -CAST(OLD.previous_counted_at IS NULL AS integer));
                UPDATE customer_revenue SET revenue = revenue - OLD.total WHERE user_id = OLD.user_id;
            END IF;
            IF is_counted THEN
                INSERT INTO revenue_summary_changes (starts_at, orders, units, revenue, refunds, first_orders)
                VALUES (summary_quarter_hour(NEW.created_at), 1, NEW.units, NEW.total, 0,
                        CAST(NEW.previous_counted_at IS NULL AS integer));
                -- the one summary row updated in place: its customer's, whose counted orders change one at a time
                -- already (the order code locks the customer first)
                INSERT INTO customer_revenue AS c (user_id, revenue) VALUES (NEW.user_id, NEW.total)
                    ON CONFLICT (user_id) DO UPDATE SET revenue = c.revenue + excluded.revenue;
            END IF;
        END IF;
        IF was_repeat <> is_repeat
           OR (is_repeat AND (OLD.previous_counted_at, OLD.created_at) IS DISTINCT FROM
                             (NEW.previous_counted_at, NEW.created_at)) THEN
            IF was_repeat THEN
                INSERT INTO order_pair_summary_changes (starts_at, previous_day, pairs)
                VALUES (summary_quarter_hour(OLD.created_at), summary_floor('day', OLD.previous_counted_at), -1);
            END IF;
            IF is_repeat THEN
                INSERT INTO order_pair_summary_changes (starts_at, previous_day, pairs)
                VALUES (summary_quarter_hour(NEW.created_at), summary_floor('day', NEW.previous_counted_at), 1);
            END IF;
        END IF;
        IF had_first <> has_first
           OR (has_first AND (OLD.total, OLD.created_at, OLD.first_counted_at, OLD.previous_counted_at)
                             IS DISTINCT FROM
                             (NEW.total, NEW.created_at, NEW.first_counted_at, NEW.previous_counted_at))
        THEN
            IF had_first THEN
                INSERT INTO first_order_summary_changes (starts_at, first_day, orders, revenue, second_orders)
                VALUES (summary_quarter_hour(OLD.created_at), summary_floor('day', OLD.first_counted_at), -1,
                        -OLD.total, -CAST(coalesce(OLD.previous_counted_at = OLD.first_counted_at
                                              AND OLD.created_at > OLD.first_counted_at, false) AS integer));
            END IF;
            IF has_first THEN
                INSERT INTO first_order_summary_changes (starts_at, first_day, orders, revenue, second_orders)
                VALUES (summary_quarter_hour(NEW.created_at), summary_floor('day', NEW.first_counted_at), 1,
                        NEW.total, CAST(coalesce(NEW.previous_counted_at = NEW.first_counted_at
                                             AND NEW.created_at > NEW.first_counted_at, false) AS integer));
            END IF;
        END IF;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER summarize_order_insert AFTER INSERT ON orders
        FOR EACH ROW WHEN (NEW.status IN {COUNTED}) EXECUTE FUNCTION summarize_order();
    CREATE TRIGGER summarize_order_update
        AFTER UPDATE OF status, total, units, created_at, previous_counted_at, first_counted_at ON orders
        FOR EACH ROW WHEN ((OLD.status, OLD.total, OLD.units, OLD.created_at, OLD.previous_counted_at,
                            OLD.first_counted_at)
                           IS DISTINCT FROM (NEW.status, NEW.total, NEW.units, NEW.created_at, NEW.previous_counted_at,
                                             NEW.first_counted_at))
        EXECUTE FUNCTION summarize_order();
    CREATE TRIGGER summarize_order_delete AFTER DELETE ON orders
        FOR EACH ROW WHEN (OLD.status IN {COUNTED}) EXECUTE FUNCTION summarize_order();

    -- a line counts or stops counting (its order's status), or a counted line's figures change
    CREATE FUNCTION summarize_order_item() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.counted THEN
            INSERT INTO category_summary_changes (starts_at, category, orders, units, revenue, refunded_units, refunds)
            VALUES (summary_quarter_hour(OLD.placed_at), OLD.category, -CAST(OLD.first_in_category AS integer),
                    -OLD.quantity, -OLD.line_total, 0, 0);
            INSERT INTO product_summary_changes (starts_at, product_id, units, revenue, refunded_units, refunds)
            VALUES (summary_quarter_hour(OLD.placed_at), OLD.product_id, -OLD.quantity, -OLD.line_total, 0, 0);
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.counted THEN
            INSERT INTO category_summary_changes (starts_at, category, orders, units, revenue, refunded_units, refunds)
            VALUES (summary_quarter_hour(NEW.placed_at), NEW.category, CAST(NEW.first_in_category AS integer),
                    NEW.quantity, NEW.line_total, 0, 0);
            INSERT INTO product_summary_changes (starts_at, product_id, units, revenue, refunded_units, refunds)
            VALUES (summary_quarter_hour(NEW.placed_at), NEW.product_id, NEW.quantity, NEW.line_total, 0, 0);
        END IF;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER summarize_order_item_insert AFTER INSERT ON order_items
        FOR EACH ROW WHEN (NEW.counted) EXECUTE FUNCTION summarize_order_item();
    CREATE TRIGGER summarize_order_item_update
        AFTER UPDATE OF counted, quantity, line_total, placed_at, category, product_id, first_in_category
        ON order_items
        FOR EACH ROW WHEN (OLD.counted IS DISTINCT FROM NEW.counted
                           OR (NEW.counted AND (OLD.quantity, OLD.line_total, OLD.placed_at, OLD.category,
                                                OLD.product_id, OLD.first_in_category)
                                               IS DISTINCT FROM (NEW.quantity, NEW.line_total, NEW.placed_at,
                                                                 NEW.category, NEW.product_id, NEW.first_in_category)))
        EXECUTE FUNCTION summarize_order_item();
    CREATE TRIGGER summarize_order_item_delete AFTER DELETE ON order_items
        FOR EACH ROW WHEN (OLD.counted) EXECUTE FUNCTION summarize_order_item();

    -- a refund of an order in the revenue was paid out (ledger entries are never changed or deleted), and its lines:
    -- whichever of the entry and a line is written second adds the line's change, so the order they are written in
    -- (one transaction, shop/services/refunds.py) does not matter
    CREATE FUNCTION summarize_refund() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO revenue_summary_changes (starts_at, orders, units, revenue, refunds, first_orders)
        VALUES (summary_quarter_hour(NEW.occurred_at), 0, 0, 0, NEW.amount, 0);
        INSERT INTO category_summary_changes (starts_at, category, orders, units, revenue, refunded_units, refunds)
        SELECT summary_quarter_hour(NEW.occurred_at), l.category, 0, 0, 0, sum(l.quantity), sum(l.amount)
          FROM refund_lines l WHERE l.refund_id = NEW.refund_id GROUP BY l.category;
        INSERT INTO product_summary_changes (starts_at, product_id, units, revenue, refunded_units, refunds)
        SELECT summary_quarter_hour(NEW.occurred_at), l.product_id, 0, 0, sum(l.quantity), sum(l.amount)
          FROM refund_lines l WHERE l.refund_id = NEW.refund_id GROUP BY l.product_id;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER summarize_refund AFTER INSERT ON ledger_entries
        FOR EACH ROW WHEN (NEW.kind = 'refund' AND NEW.in_revenue) EXECUTE FUNCTION summarize_refund();

    CREATE FUNCTION summarize_refund_line() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO category_summary_changes (starts_at, category, orders, units, revenue, refunded_units, refunds)
        SELECT summary_quarter_hour(e.occurred_at), NEW.category, 0, 0, 0, NEW.quantity, NEW.amount
          FROM ledger_entries e WHERE e.refund_id = NEW.refund_id AND e.kind = 'refund' AND e.in_revenue;
        INSERT INTO product_summary_changes (starts_at, product_id, units, revenue, refunded_units, refunds)
        SELECT summary_quarter_hour(e.occurred_at), NEW.product_id, 0, 0, NEW.quantity, NEW.amount
          FROM ledger_entries e WHERE e.refund_id = NEW.refund_id AND e.kind = 'refund' AND e.in_revenue;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER summarize_refund_line AFTER INSERT ON refund_lines
        FOR EACH ROW EXECUTE FUNCTION summarize_refund_line();
"""  # noqa: S608 - the counted statuses, our constant

DROP = """
    DROP TRIGGER summaries_after_truncate ON orders;
    DROP TRIGGER summaries_after_truncate ON order_items;
    DROP TRIGGER summaries_after_truncate ON ledger_entries;
    DROP TRIGGER summaries_after_truncate ON refund_lines;
    DROP FUNCTION summaries_after_truncate();
    DROP TRIGGER summarize_refund ON ledger_entries;
    DROP TRIGGER summarize_refund_line ON refund_lines;
    DROP TRIGGER summarize_order_item_insert ON order_items;
    DROP TRIGGER summarize_order_item_update ON order_items;
    DROP TRIGGER summarize_order_item_delete ON order_items;
    DROP TRIGGER summarize_order_insert ON orders;
    DROP TRIGGER summarize_order_update ON orders;
    DROP TRIGGER summarize_order_delete ON orders;
    DROP FUNCTION rebuild_report_summaries();
    DROP FUNCTION summarize_refund();
    DROP FUNCTION summarize_refund_line();
    DROP FUNCTION summarize_order_item();
    DROP FUNCTION summarize_order();
    DROP FUNCTION summary_segments(timestamptz, timestamptz);
    DROP FUNCTION summary_ceiling(text, timestamptz);
    DROP FUNCTION summary_floor(text, timestamptz);
    DROP FUNCTION summary_quarter_hour(timestamptz);
"""

# The pieces of the rebuild below that migration 0017's one-pass rebuild shares (it loads them from here)
CLEAR_SUMMARIES = """\
        LOCK TABLE revenue_summary_changes, order_pair_summary_changes, first_order_summary_changes,
                   category_summary_changes, product_summary_changes, customer_revenue
            IN ACCESS EXCLUSIVE MODE;
        -- DELETE, not TRUNCATE: this also runs inside a TRUNCATE of these tables (summaries_after_truncate())
        DELETE FROM revenue_summary; DELETE FROM revenue_summary_changes;
        DELETE FROM order_pair_summary; DELETE FROM order_pair_summary_changes;
        DELETE FROM first_order_summary; DELETE FROM first_order_summary_changes;
        DELETE FROM category_summary; DELETE FROM category_summary_changes;
        DELETE FROM product_summary; DELETE FROM product_summary_changes;
        DELETE FROM customer_revenue;
"""
DAYS_FROM_QUARTERS = """\
        INSERT INTO revenue_summary (grain, starts_at, orders, units, revenue, refunds, first_orders)
        SELECT 'd', summary_floor('day', starts_at), sum(orders), sum(units), sum(revenue), sum(refunds),
               sum(first_orders)
          FROM revenue_summary WHERE grain = 'q' GROUP BY 2;
"""
MONTHS_FROM_DAYS = """\
        -- the months, from the days
        INSERT INTO revenue_summary (grain, starts_at, orders, units, revenue, refunds, first_orders)
        SELECT 'm', summary_floor('month', starts_at), sum(orders), sum(units), sum(revenue), sum(refunds),
               sum(first_orders)
          FROM revenue_summary WHERE grain = 'd' GROUP BY 2;
        INSERT INTO category_summary (grain, starts_at, category, orders, units, revenue, refunded_units, refunds)
        SELECT 'm', summary_floor('month', starts_at), category, sum(orders), sum(units), sum(revenue),
               sum(refunded_units), sum(refunds)
          FROM category_summary WHERE grain = 'd' GROUP BY 2, 3;
        INSERT INTO product_summary (grain, starts_at, product_id, units, revenue, refunded_units, refunds)
        SELECT 'm', summary_floor('month', starts_at), product_id, sum(units), sum(revenue), sum(refunded_units),
               sum(refunds)
          FROM product_summary WHERE grain = 'd' GROUP BY 2, 3;"""

# Every summary made again from the orders, lines and ledger there are, its changes dropped: the migration's
# backfill, and the seed's after its bulk load (which it makes with these triggers off). The changes tables are
# locked first, so that a writer's change is either in what this reads or appended after it commits, never lost.
REBUILD = f"""
    CREATE FUNCTION rebuild_report_summaries() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
{CLEAR_SUMMARIES}
        INSERT INTO customer_revenue (user_id, revenue)
        SELECT user_id, sum(total) FROM orders WHERE status IN {COUNTED} GROUP BY user_id;

        INSERT INTO revenue_summary (grain, starts_at, orders, units, revenue, refunds, first_orders)
        SELECT 'q', starts_at, sum(orders), sum(units), sum(revenue), sum(refunds), sum(first_orders)
          FROM (SELECT summary_quarter_hour(created_at) AS starts_at, count(*) AS orders, sum(units) AS units,
                       sum(total) AS revenue, 0 AS refunds,
                       count(*) FILTER (WHERE previous_counted_at IS NULL) AS first_orders
                  FROM orders WHERE status IN {COUNTED} GROUP BY 1
                UNION ALL
                SELECT summary_quarter_hour(occurred_at), 0, 0, 0, sum(amount), 0
                  FROM ledger_entries WHERE kind = 'refund' AND in_revenue GROUP BY 1) AS quarters
         GROUP BY starts_at;
{DAYS_FROM_QUARTERS}
        INSERT INTO first_order_summary (grain, starts_at, first_day, orders, revenue, second_orders)
        SELECT 'd', summary_floor('day', created_at), summary_floor('day', first_counted_at), count(*), sum(total),
               count(*) FILTER (WHERE previous_counted_at = first_counted_at AND created_at > first_counted_at)
          FROM orders WHERE status IN {COUNTED} GROUP BY 2, 3;

        INSERT INTO order_pair_summary (grain, starts_at, previous_day, pairs)
        SELECT 'd', summary_floor('day', created_at), summary_floor('day', previous_counted_at), count(*)
          FROM orders WHERE status IN {COUNTED} AND previous_counted_at IS NOT NULL GROUP BY 2, 3;

        INSERT INTO category_summary (grain, starts_at, category, orders, units, revenue, refunded_units, refunds)
        SELECT 'd', starts_at, category, sum(orders), sum(units), sum(revenue), sum(refunded_units), sum(refunds)
          FROM (SELECT summary_floor('day', placed_at) AS starts_at, category,
                       count(*) FILTER (WHERE first_in_category) AS orders, sum(quantity) AS units,
                       sum(line_total) AS revenue, 0 AS refunded_units, 0 AS refunds
                  FROM order_items WHERE counted GROUP BY 1, 2
                UNION ALL
                SELECT summary_floor('day', e.occurred_at), l.category, 0, 0, 0, sum(l.quantity), sum(l.amount)
                  FROM ledger_entries e JOIN refund_lines l ON l.refund_id = e.refund_id
                 WHERE e.kind = 'refund' AND e.in_revenue GROUP BY 1, 2) AS days
         GROUP BY starts_at, category;

        INSERT INTO product_summary (grain, starts_at, product_id, units, revenue, refunded_units, refunds)
        SELECT 'd', starts_at, product_id, sum(units), sum(revenue), sum(refunded_units), sum(refunds)
          FROM (SELECT summary_floor('day', placed_at) AS starts_at, product_id, sum(quantity) AS units,
                       sum(line_total) AS revenue, 0 AS refunded_units, 0 AS refunds
                  FROM order_items WHERE counted GROUP BY 1, 2
                UNION ALL
                SELECT summary_floor('day', e.occurred_at), l.product_id, 0, 0, sum(l.quantity), sum(l.amount)
                  FROM ledger_entries e JOIN refund_lines l ON l.refund_id = e.refund_id
                 WHERE e.kind = 'refund' AND e.in_revenue GROUP BY 1, 2) AS days
         GROUP BY starts_at, product_id;

{MONTHS_FROM_DAYS}
    END
    $$;
"""  # noqa: S608 - the counted statuses, our constant


# a TRUNCATE fires no row trigger: the summaries are made again from what is left (nothing, usually: a moment)
ON_TRUNCATE = """
    CREATE FUNCTION summaries_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM rebuild_report_summaries();
        RETURN NULL;
    END
    $$;
""" + "".join(
    f"CREATE TRIGGER summaries_after_truncate AFTER TRUNCATE ON {table}"
    " FOR EACH STATEMENT EXECUTE FUNCTION summaries_after_truncate();\n"
    for table in ("orders", "order_items", "ledger_entries", "refund_lines")
)

SUMMARIES = ("revenue_summary", "category_summary", "product_summary", "order_pair_summary", "first_order_summary")
# the distinct-customer counts' reads of the orders at a period's partial days (shop/reports/sql/summary_spans.sql,
# customers_summarized.sql), all on counted orders: name: (column, included columns, condition after the status's)
INDEXES = {
    "ix_orders_previous_counted": ("previous_counted_at", ["created_at"], " AND previous_counted_at IS NOT NULL"),
    "ix_orders_close_repeats": (
        "created_at", ["previous_counted_at"], " AND created_at - previous_counted_at < interval '25 hours'"
    ),
    "ix_orders_by_first_order": ("first_counted_at", ["created_at", "total", "previous_counted_at"], ""),
    "ix_orders_tied_first_orders": (
        "first_counted_at", ["user_id"], " AND created_at = first_counted_at AND previous_counted_at IS NOT NULL"
    ),
    "ix_orders_close_to_first": (
        "created_at", ["first_counted_at", "total", "previous_counted_at"],
        " AND created_at - first_counted_at < interval '25 hours'",
    ),
}  # fmt: skip


def _figures(*names: str) -> list[sa.Column]:
    return [
        sa.Column(name, MONEY if name in ("revenue", "refunds") else sa.BigInteger(), nullable=False) for name in names
    ]


def _summary(table: str, keys: dict[str, sa.types.TypeEngine], figures: list[str]) -> None:
    """The summary table and its changes: the same columns, the summary keyed by grain and start."""
    op.create_table(
        table,
        sa.Column("grain", sa.CHAR(1), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, kind, nullable=False) for name, kind in keys.items()),
        *_figures(*figures),
        sa.PrimaryKeyConstraint("grain", "starts_at", *keys, name=f"pk_{table}"),
    )
    op.create_table(
        f"{table}_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, kind, nullable=False) for name, kind in keys.items()),
        *_figures(*figures),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}_changes"),
    )
    op.create_index(f"ix_{table}_changes_starts_at", f"{table}_changes", ["starts_at"])


def upgrade() -> None:
    _summary("revenue_summary", {}, ["orders", "units", "revenue", "refunds", "first_orders"])
    _summary(
        "category_summary", {"category": sa.String(100)}, ["orders", "units", "revenue", "refunded_units", "refunds"]
    )
    _summary("product_summary", {"product_id": sa.BigInteger()}, ["units", "revenue", "refunded_units", "refunds"])
    _summary("order_pair_summary", {"previous_day": sa.DateTime(timezone=True)}, ["pairs"])
    _summary("first_order_summary", {"first_day": sa.DateTime(timezone=True)}, ["orders", "revenue", "second_orders"])
    op.create_table(
        "customer_revenue",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_customer_revenue"),
    )
    op.create_index("ix_customer_revenue_revenue", "customer_revenue", [sa.text("revenue DESC"), "user_id"])
    # the customer's counted orders by time, now with their totals: top customers reads its candidates' orders of
    # the range from the index alone
    op.drop_index("ix_orders_customer_counted", table_name="orders")
    op.create_index(
        "ix_orders_customer_counted", "orders", ["user_id", "created_at", "id"], postgresql_include=["total"],
        postgresql_where=sa.text(f"status IN {COUNTED}"),
    )  # fmt: skip
    for name, (column, include, where) in INDEXES.items():
        condition = sa.text(f"status IN {COUNTED}{where}")
        op.create_index(name, "orders", [column], postgresql_include=include, postgresql_where=condition)
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)
    op.execute(REBUILD)
    op.execute(ON_TRUNCATE)
    op.execute("SELECT rebuild_report_summaries()")
    op.execute(f"ANALYZE {', '.join(SUMMARIES)}, customer_revenue")


def downgrade() -> None:
    op.execute(DROP)
    for name in INDEXES:
        op.drop_index(name, table_name="orders")
    for table in SUMMARIES:
        op.drop_table(f"{table}_changes")
        op.drop_table(table)
    op.drop_table("customer_revenue")
    op.drop_index("ix_orders_customer_counted", table_name="orders")
    op.create_index(
        "ix_orders_customer_counted", "orders", ["user_id", "created_at", "id"],
        postgresql_where=sa.text(f"status IN {COUNTED}"),
    )  # fmt: skip
