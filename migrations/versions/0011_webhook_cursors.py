"""Webhook delivery follows the feed with a cursor per endpoint, and writes a delivery row once, after the send.

Deliveries get ids the worker can work out before the row exists (uuid5 of endpoint and event: it sends the same
Shop-Delivery-Id on every try); their attempts are numbered within them. The single dispatch cursor becomes one
cursor per endpoint, starting where the dispatch had got to. Deliveries lose their foreign key to events (history,
purged by age), and the indexes a row paid for shrink to two besides the partial ones (which take only pending and
dead rows).

Revision ID: 0011_webhook_cursors
Revises: 0010_webhook_deliveries
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = "0011_webhook_cursors"
down_revision = "0010_webhook_deliveries"
branch_labels = None
depends_on = None

# shop.models.delivery.DELIVERY_NAMESPACE; rows made before this revision keep random ids (their old ones were numbers)
NEW_DELIVERIES = """
    INSERT INTO webhook_deliveries_new
    SELECT new_id, endpoint_id, event_position, event_id, resource_type, resource_id, sequence, status, attempts,
           next_attempt_at, claimed_until, give_up_at, last_status_code, last_error, created_at, delivered_at
      FROM webhook_deliveries
"""
NEW_ATTEMPTS = """
    INSERT INTO webhook_attempts_new (delivery_id, number, attempted_at, status_code, error, duration_ms)
    SELECT d.new_id, row_number() OVER (PARTITION BY a.delivery_id ORDER BY a.id), a.attempted_at, a.status_code,
           a.error, a.duration_ms
      FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
"""


def _delivery_columns() -> list[sa.Column]:
    """Every column of a delivery but its id (a UUID from this revision on, a number before it)."""
    return [
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("event_position", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _deliveries(name: str) -> None:
    op.create_table(name, sa.Column("id", sa.Uuid(), nullable=False), *_delivery_columns())


def _attempts(name: str) -> None:
    op.create_table(
        name,
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )


def _constrain() -> None:
    """Names and indexes on the new tables once they hold their rows (the old tables, which had them, are gone)."""
    op.create_primary_key(op.f("pk_webhook_deliveries"), "webhook_deliveries", ["id"])
    op.create_check_constraint(
        op.f("ck_webhook_deliveries_status_allowed"), "webhook_deliveries", "status IN ('pending', 'delivered', 'dead')"
    )
    op.create_foreign_key(
        op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"), "webhook_deliveries", "webhook_endpoints",
        ["endpoint_id"], ["id"], ondelete="CASCADE",
    )  # fmt: skip
    op.create_unique_constraint(
        op.f("uq_webhook_deliveries_endpoint_event"), "webhook_deliveries", ["endpoint_id", "event_position"]
    )
    op.create_index(
        op.f("ix_webhook_deliveries_due"), "webhook_deliveries", ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip
    op.create_index(
        op.f("ix_webhook_deliveries_dead"), "webhook_deliveries", ["endpoint_id"],
        postgresql_where=sa.text("status = 'dead'"),
    )  # fmt: skip
    op.create_index(
        op.f("ix_webhook_deliveries_created_at"), "webhook_deliveries", ["created_at"], postgresql_using="brin"
    )
    op.create_primary_key(op.f("pk_webhook_attempts"), "webhook_attempts", ["delivery_id", "number"])
    op.create_foreign_key(
        op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"), "webhook_attempts", "webhook_deliveries",
        ["delivery_id"], ["id"], ondelete="CASCADE",
    )  # fmt: skip
    op.create_index(
        op.f("ix_webhook_attempts_attempted_at"), "webhook_attempts", ["attempted_at"], postgresql_using="brin"
    )


def upgrade():
    op.create_table(
        "webhook_cursors",
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("lease", sa.Uuid(), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.Integer(), nullable=True),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_cursors_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_id", name=op.f("pk_webhook_cursors")),
    )
    # every endpoint goes on from where the one dispatch cursor had got to: nothing read twice, nothing skipped
    op.execute(
        "INSERT INTO webhook_cursors (endpoint_id, transaction_id, position)"
        " SELECT w.id, d.transaction_id, d.position FROM webhook_endpoints w, webhook_dispatch d"
    )
    op.drop_table("webhook_dispatch")

    op.add_column("webhook_deliveries", sa.Column("new_id", sa.Uuid(), server_default=sa.text("gen_random_uuid()")))
    _deliveries("webhook_deliveries_new")
    _attempts("webhook_attempts_new")
    op.execute(NEW_DELIVERIES)
    op.execute(NEW_ATTEMPTS)
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.rename_table("webhook_deliveries_new", "webhook_deliveries")
    op.rename_table("webhook_attempts_new", "webhook_attempts")
    op.alter_column("webhook_deliveries", "status", server_default="pending")
    _constrain()


def downgrade():
    # back to 0010's shape with the rows kept (they get new numeric ids); cursors fold into the one dispatch cursor,
    # at the endpoint furthest behind, so nothing is skipped (what the others had been sent may go again)
    op.create_table(
        "webhook_dispatch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_webhook_dispatch_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_dispatch")),
    )
    op.execute(
        "INSERT INTO webhook_dispatch (id, transaction_id, position)"
        " SELECT 1, coalesce(c.transaction_id, 0), coalesce(c.position, 0) FROM (SELECT 1) AS one"
        " LEFT JOIN LATERAL (SELECT transaction_id, position FROM webhook_cursors"
        " ORDER BY transaction_id, position LIMIT 1) AS c ON true"
    )
    op.drop_table("webhook_cursors")
    op.rename_table("webhook_attempts", "webhook_attempts_uuid")
    op.rename_table("webhook_deliveries", "webhook_deliveries_uuid")
    for name in ("pk_webhook_attempts", "fk_webhook_attempts_delivery_id_webhook_deliveries"):
        op.drop_constraint(name, "webhook_attempts_uuid")
    op.drop_index("ix_webhook_attempts_attempted_at", table_name="webhook_attempts_uuid")
    for name in (
        "ck_webhook_deliveries_status_allowed", "fk_webhook_deliveries_endpoint_id_webhook_endpoints",
        "uq_webhook_deliveries_endpoint_event", "pk_webhook_deliveries",
    ):  # fmt: skip
        op.drop_constraint(name, "webhook_deliveries_uuid")
    for name in ("ix_webhook_deliveries_due", "ix_webhook_deliveries_dead", "ix_webhook_deliveries_created_at"):
        op.drop_index(name, table_name="webhook_deliveries_uuid")
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        *_delivery_columns(),
        sa.Column("uuid_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name=op.f("ck_webhook_deliveries_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_position"],
            ["events.position"],
            name=op.f("fk_webhook_deliveries_event_position_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("endpoint_id", "event_position", name="uq_webhook_deliveries_endpoint_event"),
    )
    op.execute(
        "INSERT INTO webhook_deliveries (endpoint_id, event_position, event_id, resource_type, resource_id, sequence,"
        " status, attempts, next_attempt_at, claimed_until, give_up_at, last_status_code, last_error, created_at,"
        " delivered_at, uuid_id)"
        " SELECT d.endpoint_id, d.event_position, d.event_id, d.resource_type, d.resource_id, d.sequence, d.status,"
        " d.attempts, d.next_attempt_at, d.claimed_until, d.give_up_at, d.last_status_code, d.last_error,"
        " d.created_at, d.delivered_at, d.id FROM webhook_deliveries_uuid d"
        " WHERE EXISTS (SELECT FROM events e WHERE e.position = d.event_position) ORDER BY d.created_at"
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip
    op.create_index(
        "ix_webhook_deliveries_resource", "webhook_deliveries",
        ["endpoint_id", "resource_type", "resource_id", "sequence"], postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "id"])
    op.create_index(
        "ix_webhook_deliveries_dead", "webhook_deliveries", ["id"], postgresql_where=sa.text("status = 'dead'")
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, error, duration_ms)"
        " SELECT d.id, a.attempted_at, a.status_code, a.error, a.duration_ms"
        " FROM webhook_attempts_uuid a JOIN webhook_deliveries d ON d.uuid_id = a.delivery_id"
        " ORDER BY a.delivery_id, a.number"
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id", "id"])
    op.create_index("ix_webhook_attempts_attempted_at", "webhook_attempts", ["attempted_at"])
    op.drop_column("webhook_deliveries", "uuid_id")
    op.drop_table("webhook_attempts_uuid")
    op.drop_table("webhook_deliveries_uuid")
