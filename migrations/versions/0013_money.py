"""Money after the order: payment notifications, the ledger, refunds, returns; the customers' unpaid counters.

The ledger is append-only: a trigger refuses UPDATE and DELETE of its rows. Each customer's pending orders and their
units are counted on their row (the unpaid limit), from the orders there are. History entries name their event.

Revision ID: 0013_money
Revises: 0012_order_expiry
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = "0013_money"
down_revision = "0012_order_expiry"
branch_labels = None
depends_on = None

BEFORE = (
    "'order.placed', 'order.paid', 'order.shipped', 'order.delivered', 'order.cancelled', 'order.expired', "
    "'product.out_of_stock', 'product.back_in_stock', 'product.price_changed'"
)
NEW = (
    "'payment.captured', 'payment.failed', 'refund.created', 'refund.succeeded', 'return.requested', 'return.received'"
)
AFTER = f"{BEFORE}, {NEW}"

IMMUTABLE_LEDGER = """
    CREATE FUNCTION ledger_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger entries are never changed or deleted: record another entry instead'
            USING ERRCODE = 'restrict_violation';
    END
    $$;
    CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable();
"""
COUNT_UNPAID = """
    UPDATE users u SET unpaid_orders = p.orders, unpaid_units = p.units
      FROM (SELECT user_id, count(*) AS orders, sum(units) AS units FROM orders WHERE status = 'pending'
             GROUP BY user_id) p
     WHERE u.id = p.user_id
"""


def upgrade():
    op.create_table(
        "payment_notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("refund_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("flag", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(outcome = 'flagged') = (flag IS NOT NULL)", name=op.f("ck_payment_notifications_flagged_has_flag")
        ),
        sa.CheckConstraint(
            "flag IS NULL OR flag IN ('amount_mismatch', 'currency_mismatch', 'unknown_order', 'order_not_pending', "
            "'no_matching_refund')",
            name=op.f("ck_payment_notifications_flag_allowed"),
        ),
        sa.CheckConstraint(
            "kind IN ('authorized', 'captured', 'failed', 'refunded')",
            name=op.f("ck_payment_notifications_kind_allowed"),
        ),
        sa.CheckConstraint(
            "outcome IN ('applied', 'recorded', 'flagged')", name=op.f("ck_payment_notifications_outcome_allowed")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_notifications")),
        sa.UniqueConstraint(
            "provider", "reference", "kind", name=op.f("uq_payment_notifications_provider_reference_kind")
        ),
    )
    with op.batch_alter_table("payment_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_notifications_flagged",
            ["received_at"],
            unique=False,
            postgresql_where=sa.text("outcome = 'flagged'"),
        )
        batch_op.create_index("ix_payment_notifications_order_id", ["order_id"], unique=False)

    op.create_table(
        "returns",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="requested", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("received_by", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'received') = (received_at IS NOT NULL)", name=op.f("ck_returns_received_has_received_at")
        ),
        sa.CheckConstraint("status IN ('requested', 'received')", name=op.f("ck_returns_status_allowed")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_returns_order_id_orders"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["received_by"], ["users.id"], name=op.f("fk_returns_received_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_returns_requested_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
    )
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.create_index("ix_returns_order_id", ["order_id"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("provider_reference", sa.String(length=255), nullable=True),
        sa.Column("return_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'succeeded') = (succeeded_at IS NOT NULL)", name=op.f("ck_refunds_succeeded_has_succeeded_at")
        ),
        sa.CheckConstraint("status IN ('pending', 'succeeded')", name=op.f("ck_refunds_status_allowed")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint("length(reason) > 0", name=op.f("ck_refunds_reason_not_empty")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_refunds_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_refunds_order_id_orders"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_refunds_return_id_returns"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index("ix_refunds_order_id", ["order_id"], unique=False)

    op.create_table(
        "return_lines",
        sa.Column("return_id", sa.BigInteger(), nullable=False),
        sa.Column("order_item_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("damaged", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_return_lines_quantity_positive")),
        sa.CheckConstraint("received + damaged <= quantity", name=op.f("ck_return_lines_counts_within_quantity")),
        sa.CheckConstraint("received >= 0 AND damaged >= 0", name=op.f("ck_return_lines_counts_not_negative")),
        sa.ForeignKeyConstraint(
            ["order_item_id"],
            ["order_items.id"],
            name=op.f("fk_return_lines_order_item_id_order_items"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_return_lines_return_id_returns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("return_id", "order_item_id", name=op.f("pk_return_lines")),
    )
    with op.batch_alter_table("return_lines", schema=None) as batch_op:
        batch_op.create_index("ix_return_lines_order_item_id", ["order_item_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("recorded_by", sa.BigInteger(), nullable=True),
        sa.Column("refund_id", sa.BigInteger(), nullable=True),
        sa.Column("in_revenue", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "(kind = 'refund') = (refund_id IS NOT NULL)", name=op.f("ck_ledger_entries_refund_has_refund_id")
        ),
        sa.CheckConstraint(
            "kind <> 'capture' OR provider IS NOT NULL", name=op.f("ck_ledger_entries_capture_has_provider")
        ),
        sa.CheckConstraint(
            "kind <> 'payment' OR recorded_by IS NOT NULL", name=op.f("ck_ledger_entries_payment_has_recorded_by")
        ),
        sa.CheckConstraint("kind IN ('capture', 'payment', 'refund')", name=op.f("ck_ledger_entries_kind_allowed")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_entries_amount_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_ledger_entries_order_id_orders"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_ledger_entries_recorded_by_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_ledger_entries_refund_id_refunds"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entries_order_id", ["order_id"], unique=False)
        batch_op.create_index(
            "ix_ledger_entries_refunds",
            ["occurred_at"],
            unique=False,
            postgresql_include=["amount", "refund_id"],
            postgresql_where=sa.text("kind = 'refund' AND in_revenue"),
        )
        batch_op.create_index(
            "uq_ledger_entries_refund_id", ["refund_id"], unique=True, postgresql_where=sa.text("refund_id IS NOT NULL")
        )

    op.create_table(
        "refund_lines",
        sa.Column("refund_id", sa.BigInteger(), nullable=False),
        sa.Column("order_item_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("restocked", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_refund_lines_amount_not_negative")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_refund_lines_quantity_positive")),
        sa.CheckConstraint("restocked BETWEEN 0 AND quantity", name=op.f("ck_refund_lines_restocked_within_quantity")),
        sa.ForeignKeyConstraint(
            ["order_item_id"],
            ["order_items.id"],
            name=op.f("fk_refund_lines_order_item_id_order_items"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_refund_lines_refund_id_refunds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("refund_id", "order_item_id", name=op.f("pk_refund_lines")),
    )
    with op.batch_alter_table("refund_lines", schema=None) as batch_op:
        batch_op.create_index("ix_refund_lines_order_item_id", ["order_item_id"], unique=False)

    with op.batch_alter_table("order_status_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event", sa.String(length=40), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unpaid_orders", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch_op.add_column(sa.Column("unpaid_units", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch_op.create_check_constraint(
            op.f("ck_users_unpaid_not_negative"), "unpaid_orders >= 0 AND unpaid_units >= 0"
        )
    op.execute(COUNT_UNPAID)
    op.execute(IMMUTABLE_LEDGER)
    op.drop_constraint(op.f("ck_events_type_allowed"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_allowed"), "events", f"type IN ({AFTER})")


def downgrade():
    # the money's events describe tables that go: they go with them
    op.execute(f"DELETE FROM events WHERE type IN ({NEW})")  # noqa: S608 - our constant
    op.drop_constraint(op.f("ck_events_type_allowed"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_allowed"), "events", f"type IN ({BEFORE})")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_unpaid_not_negative"), type_="check")
        batch_op.drop_column("unpaid_units")
        batch_op.drop_column("unpaid_orders")

    with op.batch_alter_table("order_status_changes", schema=None) as batch_op:
        batch_op.drop_column("event")

    with op.batch_alter_table("refund_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_refund_lines_order_item_id")

    op.drop_table("refund_lines")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("uq_ledger_entries_refund_id", postgresql_where=sa.text("refund_id IS NOT NULL"))
        batch_op.drop_index(
            "ix_ledger_entries_refunds",
            postgresql_include=["amount", "refund_id"],
            postgresql_where=sa.text("kind = 'refund' AND in_revenue"),
        )
        batch_op.drop_index("ix_ledger_entries_order_id")

    op.drop_table("ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_immutable()")
    with op.batch_alter_table("return_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_return_lines_order_item_id")

    op.drop_table("return_lines")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_order_id")

    op.drop_table("refunds")
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.drop_index("ix_returns_order_id")

    op.drop_table("returns")
    with op.batch_alter_table("payment_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_notifications_order_id")
        batch_op.drop_index("ix_payment_notifications_flagged", postgresql_where=sa.text("outcome = 'flagged'"))

    op.drop_table("payment_notifications")
