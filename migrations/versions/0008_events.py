"""Events: the outbox other systems read, written in the transaction of each change; integration accounts.

Revision ID: 0008_events
Revises: 0007_catalog_changes
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0008_events"
down_revision = "0007_catalog_changes"
branch_labels = None
depends_on = None

EVENT_TYPES = (
    "'order.placed', 'order.paid', 'order.shipped', 'order.delivered', 'order.cancelled', "
    "'product.out_of_stock', 'product.back_in_stock', 'product.price_changed'"
)


def upgrade():
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "transaction_id",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("data", postgresql.JSON(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(f"type IN ({EVENT_TYPES})", name=op.f("ck_events_type_allowed")),
        sa.CheckConstraint("resource_type IN ('order', 'product')", name=op.f("ck_events_resource_type_allowed")),
        sa.CheckConstraint("sequence > 0", name=op.f("ck_events_sequence_positive")),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_events")),
        sa.UniqueConstraint("resource_type", "resource_id", "sequence", name="uq_events_resource_sequence"),
    )
    op.create_index("ix_events_feed", "events", ["transaction_id", "position"])
    op.add_column("orders", sa.Column("event_sequence", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("products", sa.Column("event_sequence", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.drop_constraint(op.f("ck_users_role_allowed"), "users", type_="check")
    op.create_check_constraint(
        op.f("ck_users_role_allowed"), "users", "role IN ('customer', 'staff', 'admin', 'integration')"
    )


def downgrade():
    op.drop_constraint(op.f("ck_users_role_allowed"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role_allowed"), "users", "role IN ('customer', 'staff', 'admin')")
    op.drop_column("products", "event_sequence")
    op.drop_column("orders", "event_sequence")
    op.drop_index("ix_events_feed", table_name="events")
    op.drop_table("events")
