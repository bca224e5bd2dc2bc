"""rebuild_report_summaries() in two passes instead of six: the orders read once for customer_revenue, the quarter
hours, the first-order days and the order pairs (one GROUPING SETS aggregate), and the lines read once for both the
product and the category days. The same rows as 0016's rebuild; `flask seed-db` of ten million orders spent
100 s of its 600 in it.

Revision ID: 0017_one_pass_summary_rebuild
Revises: 0016_report_summaries
Create Date: 2026-12-03
"""

from importlib import util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0017_one_pass_summary_rebuild"
down_revision = "0016_report_summaries"
branch_labels = None
depends_on = None


def _report_summaries() -> ModuleType:
    """Migration 0016, whose rebuild this one replaces: its function for the downgrade, and the pieces they share."""
    spec = util.spec_from_file_location("report_summaries", Path(__file__).with_name("0016_report_summaries.py"))
    if spec is None or spec.loader is None:
        raise RuntimeError("migration 0016 is missing beside 0017")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPORT_SUMMARIES = _report_summaries()
COUNTED = REPORT_SUMMARIES.COUNTED

# GROUPING(user_id, quarter, day, first_day, previous_day) has a bit set for each column a set leaves out
BY_CUSTOMER, BY_QUARTER, BY_FIRST_DAY, BY_PREVIOUS_DAY = 0b01111, 0b10111, 0b11001, 0b11010

REBUILD = f"""
    CREATE OR REPLACE FUNCTION rebuild_report_summaries() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
{REPORT_SUMMARIES.CLEAR_SUMMARIES}
        -- the counted orders, once: four groupings, told apart by GROUPING()
        WITH orders_grouped AS MATERIALIZED (
            SELECT GROUPING(user_id, quarter, day, first_day, previous_day) AS grouping_set,
                   user_id, quarter, day, first_day, previous_day,
                   count(*) AS orders, sum(units) AS units, sum(total) AS revenue,
                   count(*) FILTER (WHERE previous_counted_at IS NULL) AS first_orders,
                   count(*) FILTER (WHERE previous_counted_at = first_counted_at
                                      AND created_at > first_counted_at) AS second_orders
              FROM (SELECT user_id, units, total, created_at, previous_counted_at, first_counted_at,
                           summary_quarter_hour(created_at) AS quarter, summary_floor('day', created_at) AS day,
                           summary_floor('day', first_counted_at) AS first_day,
                           summary_floor('day', previous_counted_at) AS previous_day
                      FROM orders WHERE status IN {COUNTED}) counted
             GROUP BY GROUPING SETS ((user_id), (quarter), (day, first_day), (day, previous_day))
        ), customers AS (
            INSERT INTO customer_revenue (user_id, revenue)
            SELECT user_id, revenue FROM orders_grouped WHERE grouping_set = {BY_CUSTOMER}
        ), firsts AS (
            INSERT INTO first_order_summary (grain, starts_at, first_day, orders, revenue, second_orders)
            SELECT 'd', day, first_day, orders, revenue, second_orders
              FROM orders_grouped WHERE grouping_set = {BY_FIRST_DAY}
        ), pairs AS (
            INSERT INTO order_pair_summary (grain, starts_at, previous_day, pairs)
            SELECT 'd', day, previous_day, orders
              FROM orders_grouped WHERE grouping_set = {BY_PREVIOUS_DAY} AND previous_day IS NOT NULL
        )
        INSERT INTO revenue_summary (grain, starts_at, orders, units, revenue, refunds, first_orders)
        SELECT 'q', starts_at, sum(orders), sum(units), sum(revenue), sum(refunds), sum(first_orders)
          FROM (SELECT quarter AS starts_at, orders, units, revenue, 0 AS refunds, first_orders
                  FROM orders_grouped WHERE grouping_set = {BY_QUARTER}
                UNION ALL
                SELECT summary_quarter_hour(occurred_at), 0, 0, 0, sum(amount), 0
                  FROM ledger_entries WHERE kind = 'refund' AND in_revenue GROUP BY 1) AS quarters
         GROUP BY starts_at;
{REPORT_SUMMARIES.DAYS_FROM_QUARTERS}
        -- the counted lines, once, by day, product and category; then the refunded lines
        WITH lines AS MATERIALIZED (
            SELECT summary_floor('day', placed_at) AS day, product_id, category,
                   count(*) FILTER (WHERE first_in_category) AS orders, sum(quantity) AS units,
                   sum(line_total) AS revenue, 0 AS refunded_units, 0 AS refunds
              FROM order_items WHERE counted GROUP BY 1, 2, 3
            UNION ALL
            SELECT summary_floor('day', e.occurred_at), l.product_id, l.category, 0, 0, 0, sum(l.quantity),
                   sum(l.amount)
              FROM ledger_entries e JOIN refund_lines l ON l.refund_id = e.refund_id
             WHERE e.kind = 'refund' AND e.in_revenue GROUP BY 1, 2, 3
        ), products AS (
            INSERT INTO product_summary (grain, starts_at, product_id, units, revenue, refunded_units, refunds)
            SELECT 'd', day, product_id, sum(units), sum(revenue), sum(refunded_units), sum(refunds)
              FROM lines GROUP BY day, product_id
             ORDER BY day, product_id  -- the key's order: each insert goes to the index's last page
        )
        INSERT INTO category_summary (grain, starts_at, category, orders, units, revenue, refunded_units, refunds)
        SELECT 'd', day, category, sum(orders), sum(units), sum(revenue), sum(refunded_units), sum(refunds)
          FROM lines GROUP BY day, category;

{REPORT_SUMMARIES.MONTHS_FROM_DAYS}
    END
    $$;
"""  # noqa: S608 - the counted statuses, our constant


def upgrade() -> None:
    op.execute(REBUILD)


def downgrade() -> None:
    # 0016's function (CREATE FUNCTION there; it is replaced here)
    op.execute(REPORT_SUMMARIES.REBUILD.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
