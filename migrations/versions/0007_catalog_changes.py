"""Catalog changes: each transaction that changes the catalog records what it changed, for the cache relay.

Revision ID: 0007_catalog_changes
Revises: 0006_report_facts
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007_catalog_changes"
down_revision = "0006_report_facts"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "catalog_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("product_ids", postgresql.ARRAY(sa.BigInteger()), server_default="{}", nullable=False),
        sa.Column("versions", postgresql.ARRAY(sa.Integer()), server_default="{}", nullable=False),
        sa.Column("listings", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_changes")),
    )


def downgrade():
    op.drop_table("catalog_changes")
