"""Reports: units per order (kept by the order code, checked by the database) and a covering revenue index.

Revision ID: 0005_revenue
Revises: 0004_orders
Create Date: 2026-11-22
"""

import importlib.util
from pathlib import Path

from alembic import op
import sqlalchemy as sa

revision = "0005_revenue"
down_revision = "0004_orders"
branch_labels = None
depends_on = None

# 0001's check, which now also holds `units` to the sum of the lines' quantities
CHECK_ORDER_TOTALS = """
CREATE OR REPLACE FUNCTION check_order_total() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    checked_order_id bigint;
    order_total numeric;
    order_units integer;
    line_count bigint;
    lines_total numeric;
    lines_units bigint;
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        checked_order_id := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        checked_order_id := OLD.order_id;
    ELSE
        checked_order_id := NEW.order_id;
    END IF;

    SELECT total, units INTO order_total, order_units FROM orders WHERE id = checked_order_id;
    IF NOT FOUND THEN
        RETURN NULL;  -- the order itself was deleted along with its lines
    END IF;
    SELECT count(*), coalesce(sum(line_total), 0), coalesce(sum(quantity), 0)
      INTO line_count, lines_total, lines_units
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
    RETURN NULL;
END
$$;
"""

TRIGGERS = {
    "trg_orders_total_matches_lines": "AFTER INSERT OR UPDATE OF {orders} ON orders",
    "trg_order_items_total_matches_lines": "AFTER INSERT OR UPDATE OF {items} OR DELETE ON order_items",
}


def _triggers(orders: str, items: str) -> None:
    for name, when in TRIGGERS.items():
        table = "orders" if "ON orders" in when else "order_items"
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {name} {when.format(orders=orders, items=items)} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_order_total()"
        )


def upgrade():
    op.add_column("orders", sa.Column("units", sa.Integer(), nullable=True))
    op.execute("UPDATE orders o SET units = (SELECT sum(quantity) FROM order_items WHERE order_id = o.id)")
    op.alter_column("orders", "units", nullable=False)
    op.create_check_constraint("units_positive", "orders", "units > 0")
    op.execute(CHECK_ORDER_TOTALS)
    _triggers(orders="total, units", items="line_total, order_id, quantity")
    # revenue by period and top customers read only this: the counted orders of a time range, index only
    op.create_index(
        "ix_orders_revenue",
        "orders",
        ["created_at"],
        postgresql_include=["id", "user_id", "total", "units"],
        postgresql_where=sa.text("status IN ('paid', 'shipped', 'delivered')"),
    )


def downgrade():
    op.drop_index("ix_orders_revenue", table_name="orders")
    _triggers(orders="total", items="line_total, order_id")
    op.drop_constraint("units_positive", "orders", type_="check")  # the naming convention adds ck_orders_
    op.drop_column("orders", "units")
    # with the column gone, 0001's function is the one that compiles again
    op.execute(_initial_check().replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def _initial_check() -> str:
    """0001's function, read from 0001 itself rather than copied here."""
    path = Path(__file__).with_name("0001_initial_schema.py")
    spec = importlib.util.spec_from_file_location("initial_schema", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CHECK_ORDER_TOTAL)
