"""Catalog: full-text search column and GIN index, a name index for sorting, and a row version for the cache.

Revision ID: 0003_catalog
Revises: 0002_api_tokens
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003_catalog"
down_revision = "0002_api_tokens"
branch_labels = None
depends_on = None

SEARCH_EXPRESSION = (
    "setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')"
)


def upgrade():
    op.add_column("products", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_check_constraint(op.f("ck_products_version_positive"), "products", "version > 0")
    op.add_column(
        "products",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_EXPRESSION, persisted=True),
            nullable=True,
        ),
    )
    op.create_index("ix_products_search", "products", ["search_vector"], postgresql_using="gin")
    op.create_index("ix_products_name", "products", ["name"])


def downgrade():
    op.drop_index("ix_products_name", table_name="products")
    op.drop_index("ix_products_search", table_name="products")
    op.drop_column("products", "search_vector")
    op.drop_constraint(op.f("ck_products_version_positive"), "products", type_="check")
    op.drop_column("products", "version")
