"""Customer and fulfilment reports: each counted order carries when its customer's first counted order was placed,
and paid orders are indexed by placement time with their payment and shipment times.

- orders.first_counted_at (kept by the order code, checked at commit by check_order_total()): the customer's first
  counted order's created_at on each of their counted orders, NULL on the others. A customer is new in the period
  holding that moment, and their cohort is its month: the customers reports read one index, with no join.
- ix_orders_customers: counted orders by created_at covering what the customers reports read; ix_orders_fulfilment:
  paid orders by created_at with paid_at and shipped_at.

Revision ID: 0014_customer_reports
Revises: 0013_money
Create Date: 2026-12-02
"""

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014_customer_reports"
down_revision = "0013_money"
branch_labels = None
depends_on = None

COUNTED = "status IN ('paid', 'shipped', 'delivered')"
ORDER_COLUMNS_BEFORE = "total, units, status, created_at, user_id, previous_counted_at"  # 0006's
ORDER_COLUMNS = f"{ORDER_COLUMNS_BEFORE}, first_counted_at"

# 0006's check, with one more fact checked on each order: its first_counted_at
FIRST_COUNTED_CHECK = """
        IF (order_counted AND (SELECT first_counted_at FROM orders WHERE id = checked_order_id) IS DISTINCT FROM
                (SELECT created_at FROM orders WHERE user_id = order_user AND status IN ('paid', 'shipped', 'delivered')
                  ORDER BY created_at, id LIMIT 1))
           OR (NOT order_counted AND (SELECT first_counted_at FROM orders WHERE id = checked_order_id) IS NOT NULL) THEN
            RAISE EXCEPTION 'order % first_counted_at is not its customer''s first counted order''s placement',
                    checked_order_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_orders_first_counted_at';
        END IF;
    END IF;
    RETURN NULL;
END"""


def _migration(file_name: str) -> Any:
    """An earlier migration's module, so its trigger function and helpers are read from it rather than copied."""
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(file_name.removesuffix(".py"), path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_with_first_counted() -> str:
    before = str(_migration("0006_report_facts.py").CHECK_ORDER_FACTS)
    ending = "\n    END IF;\n    RETURN NULL;\nEND"
    if before.count(ending) != 1:
        raise RuntimeError("0006's check_order_total() is not as this migration expects")
    return before.replace(ending, FIRST_COUNTED_CHECK)


def _triggers(orders: str) -> None:
    """0006's constraint triggers, firing on updates of `orders` columns (its helper, its line columns)."""
    facts = _migration("0006_report_facts.py")
    facts._triggers(orders=orders, items=facts.ITEM_COLUMNS)


def upgrade():
    op.add_column("orders", sa.Column("first_counted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        f"""
        UPDATE orders o SET first_counted_at = firsts.at
          FROM (SELECT user_id, min(created_at) AS at FROM orders WHERE {COUNTED} GROUP BY user_id) firsts
         WHERE o.user_id = firsts.user_id AND o.{COUNTED}
        """  # noqa: S608 - the counted statuses, our constant
    )
    op.execute(_check_with_first_counted())
    _triggers(ORDER_COLUMNS)
    # its own index rather than a wider ix_orders_revenue: the revenue reports would read 8 more bytes an order
    op.create_index(
        "ix_orders_customers",
        "orders",
        ["created_at"],
        postgresql_include=["user_id", "total", "previous_counted_at", "first_counted_at"],
        postgresql_where=sa.text(COUNTED),
    )
    op.create_index(
        "ix_orders_fulfilment",
        "orders",
        ["created_at"],
        postgresql_include=["paid_at", "shipped_at"],
        postgresql_where=sa.text("paid_at IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_orders_fulfilment", table_name="orders")
    op.drop_index("ix_orders_customers", table_name="orders")
    _triggers(ORDER_COLUMNS_BEFORE)
    op.execute(_migration("0006_report_facts.py").CHECK_ORDER_FACTS)
    op.drop_column("orders", "first_counted_at")
