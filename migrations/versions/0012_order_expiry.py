"""Unpaid orders expire: the `order.expired` event type.

Revision ID: 0012_order_expiry
Revises: 0011_webhook_cursors
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012_order_expiry"
down_revision = "0011_webhook_cursors"
branch_labels = None
depends_on = None

BEFORE = (
    "'order.placed', 'order.paid', 'order.shipped', 'order.delivered', 'order.cancelled', "
    "'product.out_of_stock', 'product.back_in_stock', 'product.price_changed'"
)
AFTER = (
    "'order.placed', 'order.paid', 'order.shipped', 'order.delivered', 'order.cancelled', 'order.expired', "
    "'product.out_of_stock', 'product.back_in_stock', 'product.price_changed'"
)


def upgrade():
    op.drop_constraint(op.f("ck_events_type_allowed"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_allowed"), "events", f"type IN ({AFTER})")


def downgrade():
    # an expiry's event is an order.cancelled to the schema before this revision
    op.execute("UPDATE events SET type = 'order.cancelled' WHERE type = 'order.expired'")
    op.drop_constraint(op.f("ck_events_type_allowed"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_allowed"), "events", f"type IN ({BEFORE})")
