"""Reports: facts kept with the orders and lines so each report reads one index (kept by the order code, checked
by the database at commit).

- orders.previous_counted_at: when the same customer's previous counted (paid, shipped, delivered) order was
  placed (NULL for their first). A period's unique customers are then its counted orders whose previous one
  came before the period started: a count, not a DISTINCT, for any period in any time zone.
- order_items.placed_at and .counted: the order's placement time and whether it counts, on each line, so the
  line reports need not join the orders.
- order_items.category: the product's category when the order was placed (a snapshot, like sku, name and
  price), and .first_in_category, true on one line of each category of an order, so the orders of a category
  are counted without a DISTINCT.

The check_order_total() trigger function now also holds every line to its order's placement time, counted
status and category firsts, and each order to its place in its customer's chain of counted orders.

Revision ID: 0006_report_facts
Revises: 0005_revenue
Create Date: 2026-12-01
"""

import importlib.util
from pathlib import Path

from alembic import op
import sqlalchemy as sa

revision = "0006_report_facts"
down_revision = "0005_revenue"
branch_labels = None
depends_on = None

COUNTED = "status IN ('paid', 'shipped', 'delivered')"

CHECK_ORDER_FACTS = """
CREATE OR REPLACE FUNCTION check_order_total() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    checked_order_id bigint;
    order_total numeric;
    order_units integer;
    order_user bigint;
    order_placed_at timestamptz;
    order_counted boolean;
    order_previous timestamptz;
    line_count bigint;
    lines_total numeric;
    lines_units bigint;
    lines_unlike_order bigint;
    line_categories bigint;
    category_firsts bigint;
    first_categories bigint;
    before_this timestamptz;
    next_previous timestamptz;
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        checked_order_id := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        checked_order_id := OLD.order_id;
    ELSE
        checked_order_id := NEW.order_id;
    END IF;

    SELECT total, units, user_id, created_at, status IN ('paid', 'shipped', 'delivered'), previous_counted_at
      INTO order_total, order_units, order_user, order_placed_at, order_counted, order_previous
      FROM orders WHERE id = checked_order_id;
    IF NOT FOUND THEN
        RETURN NULL;  -- the order itself was deleted along with its lines
    END IF;
    SELECT count(*), coalesce(sum(line_total), 0), coalesce(sum(quantity), 0),
           count(*) FILTER (WHERE placed_at <> order_placed_at OR counted <> order_counted),
           count(DISTINCT category), count(*) FILTER (WHERE first_in_category),
           count(DISTINCT category) FILTER (WHERE first_in_category)
      INTO line_count, lines_total, lines_units, lines_unlike_order, line_categories, category_firsts,
           first_categories
      FROM order_items WHERE order_id = checked_order_id;

    IF line_count = 0 THEN
        RAISE EXCEPTION 'order % has no lines', checked_order_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_orders_total_matches_lines';
    END IF;
    IF order_total <> lines_total THEN
        RAISE EXCEPTION 'order % total % does not equal the sum of its lines %',
                checked_order_id, order_total, lines_total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_orders_total_matches_lines';
    END IF;
    IF order_units <> lines_units THEN
        RAISE EXCEPTION 'order % units % do not equal the quantities of its lines %',
                checked_order_id, order_units, lines_units
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_orders_units_match_lines';
    END IF;
    IF lines_unlike_order > 0 THEN
        RAISE EXCEPTION 'order % has lines whose placed_at or counted differ from the order''s', checked_order_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_order_items_match_their_order';
    END IF;
    IF category_firsts <> line_categories OR first_categories <> line_categories THEN
        RAISE EXCEPTION 'order % must mark exactly one line of each of its categories first_in_category',
                checked_order_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_order_items_one_first_per_category';
    END IF;

    IF TG_TABLE_NAME = 'orders' THEN
        -- this order's place in its customer's chain of counted orders, by (created_at, id)
        SELECT created_at INTO before_this FROM orders
         WHERE user_id = order_user AND status IN ('paid', 'shipped', 'delivered')
           AND (created_at, id) < (order_placed_at, checked_order_id)
         ORDER BY created_at DESC, id DESC LIMIT 1;
        IF (order_counted AND order_previous IS DISTINCT FROM before_this)
           OR (NOT order_counted AND order_previous IS NOT NULL) THEN
            RAISE EXCEPTION 'order % previous_counted_at is %, its customer''s previous counted order was placed %',
                    checked_order_id, order_previous, before_this
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_orders_previous_counted_at_chain';
        END IF;
        SELECT previous_counted_at INTO next_previous FROM orders
         WHERE user_id = order_user AND status IN ('paid', 'shipped', 'delivered')
           AND (created_at, id) > (order_placed_at, checked_order_id)
         ORDER BY created_at, id LIMIT 1;
        IF FOUND AND next_previous IS DISTINCT FROM
                     (CASE WHEN order_counted THEN order_placed_at ELSE before_this END) THEN
            RAISE EXCEPTION 'the counted order after order % does not point back at the right order', checked_order_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_orders_previous_counted_at_chain';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
"""

TRIGGERS = {
    "trg_orders_total_matches_lines": "AFTER INSERT OR UPDATE OF {orders} ON orders",
    "trg_order_items_total_matches_lines": "AFTER INSERT OR UPDATE OF {items} OR DELETE ON order_items",
}
ORDER_COLUMNS = "total, units, status, created_at, user_id, previous_counted_at"
ITEM_COLUMNS = "line_total, order_id, quantity, placed_at, counted, category, first_in_category"


def _triggers(orders: str, items: str) -> None:
    for name, when in TRIGGERS.items():
        table = "orders" if "ON orders" in when else "order_items"
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {name} {when.format(orders=orders, items=items)} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_order_total()"
        )


def upgrade():
    op.add_column("orders", sa.Column("previous_counted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE orders o SET previous_counted_at = chain.previous
          FROM (SELECT id, lag(created_at) OVER (PARTITION BY user_id ORDER BY created_at, id) AS previous
                  FROM orders WHERE status IN ('paid', 'shipped', 'delivered')) chain
         WHERE o.id = chain.id AND chain.previous IS NOT NULL
        """
    )
    op.add_column("order_items", sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("order_items", sa.Column("counted", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("order_items", sa.Column("category", sa.String(length=100), nullable=True))
    op.add_column("order_items", sa.Column("first_in_category", sa.Boolean(), nullable=True))
    # the category a line's product has now is the best guess there is for when it was ordered
    op.execute(
        """
        UPDATE order_items i SET placed_at = o.created_at, counted = o.status IN ('paid', 'shipped', 'delivered'),
                                 category = p.category,
                                 first_in_category = true
          FROM orders o, products p
         WHERE o.id = i.order_id AND p.id = i.product_id
        """
    )
    op.execute(
        """
        UPDATE order_items i SET first_in_category = false
          FROM (SELECT id, row_number() OVER (PARTITION BY order_id, category ORDER BY id) AS position
                  FROM order_items) line
         WHERE line.id = i.id AND line.position > 1
        """
    )
    for column in ("placed_at", "category", "first_in_category"):
        op.alter_column("order_items", column, nullable=False)
    # the placing transaction's time: the order's created_at, written in the same transaction
    op.alter_column("order_items", "placed_at", server_default=sa.text("now()"))

    # the chain's neighbours, found in a few index pages however many orders a customer has (the order code
    # relinks and the check below looks them up on every counted change)
    op.create_index(
        "ix_orders_customer_counted",
        "orders",
        ["user_id", "created_at", "id"],
        postgresql_where=sa.text(COUNTED),
    )
    op.execute(CHECK_ORDER_FACTS)
    _triggers(orders=ORDER_COLUMNS, items=ITEM_COLUMNS)

    # revenue by period and top customers: the counted orders of a time range, read from the index alone
    op.drop_index("ix_orders_revenue", table_name="orders")
    op.create_index(
        "ix_orders_revenue",
        "orders",
        ["created_at"],
        postgresql_include=["user_id", "total", "units", "previous_counted_at"],
        postgresql_where=sa.text(COUNTED),
    )
    # revenue by category and top products: the counted lines of a time range, read from the index alone
    op.create_index(
        "ix_order_items_revenue",
        "order_items",
        ["placed_at"],
        postgresql_include=["product_id", "category", "quantity", "line_total", "first_in_category"],
        postgresql_where=sa.text("counted"),
    )


def downgrade():
    op.drop_index("ix_order_items_revenue", table_name="order_items")
    op.drop_index("ix_orders_customer_counted", table_name="orders")
    op.drop_index("ix_orders_revenue", table_name="orders")
    op.create_index(
        "ix_orders_revenue",
        "orders",
        ["created_at"],
        postgresql_include=["id", "user_id", "total", "units"],
        postgresql_where=sa.text(COUNTED),
    )
    _triggers(orders="total, units", items="line_total, order_id, quantity")
    for column in ("first_in_category", "category", "counted", "placed_at"):
        op.drop_column("order_items", column)
    op.drop_column("orders", "previous_counted_at")
    # with the columns gone, 0005's function is the one that compiles again
    op.execute(_function_of("0005_order_units_and_revenue_index.py", "CHECK_ORDER_TOTALS"))


def _function_of(migration: str, name: str) -> str:
    """A trigger function as an earlier migration wrote it, read from that migration rather than copied here."""
    path = Path(__file__).with_name(migration)
    spec = importlib.util.spec_from_file_location(migration.removesuffix(".py"), path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(getattr(module, name))
