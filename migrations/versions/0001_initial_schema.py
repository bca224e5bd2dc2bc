"""Initial schema: users, products, orders, order items.

Reviewed by hand. Beyond what autogenerate sees, it adds a deferred constraint trigger that makes
invariant 2 (an order's total equals the sum of its line totals, and an order has at least one line)
hold for every writer, checked at commit so an order and its lines can be inserted in any order.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def timestamps():
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


CHECK_ORDER_TOTAL = """
CREATE FUNCTION check_order_total() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    checked_order_id bigint;
    order_total numeric;
    line_count bigint;
    lines_total numeric;
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        checked_order_id := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        checked_order_id := OLD.order_id;
    ELSE
        checked_order_id := NEW.order_id;
    END IF;

    SELECT total INTO order_total FROM orders WHERE id = checked_order_id;
    IF NOT FOUND THEN
        RETURN NULL;  -- the order itself was deleted along with its lines
    END IF;
    SELECT count(*), coalesce(sum(line_total), 0) INTO line_count, lines_total
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
    RETURN NULL;
END
$$;
"""


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="customer", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *timestamps(),
        sa.CheckConstraint("email LIKE '%%_@_%%'", name=op.f("ck_users_email_has_at")),
        sa.CheckConstraint("role IN ('customer', 'staff', 'admin')", name=op.f("ck_users_role_allowed")),
        sa.CheckConstraint("length(name) > 0", name=op.f("ck_users_name_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True)

    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("stock", sa.Integer(), server_default="0", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *timestamps(),
        sa.CheckConstraint("length(name) > 0", name=op.f("ck_products_name_not_empty")),
        sa.CheckConstraint("length(sku) > 0", name=op.f("ck_products_sku_not_empty")),
        sa.CheckConstraint("price > 0", name=op.f("ck_products_price_positive")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_products_stock_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("sku", name=op.f("uq_products_sku")),
    )
    op.create_index("ix_products_category_active", "products", ["category", "is_active"])
    op.create_index("ix_products_created_at", "products", ["created_at"])
    op.create_index("ix_products_price", "products", ["price"])

    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("shipping_address", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payment_reference", sa.String(length=255), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        *timestamps(),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_orders_currency_iso")),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')",
            name=op.f("ck_orders_status_allowed"),
        ),
        sa.CheckConstraint("total >= 0", name=op.f("ck_orders_total_not_negative")),
        sa.CheckConstraint(
            "status NOT IN ('paid', 'shipped', 'delivered') OR paid_at IS NOT NULL",
            name=op.f("ck_orders_paid_has_paid_at"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('shipped', 'delivered') OR shipped_at IS NOT NULL",
            name=op.f("ck_orders_shipped_has_shipped_at"),
        ),
        sa.CheckConstraint(
            "status <> 'delivered' OR delivered_at IS NOT NULL",
            name=op.f("ck_orders_delivered_has_delivered_at"),
        ),
        sa.CheckConstraint(
            "status <> 'cancelled' OR cancelled_at IS NOT NULL",
            name=op.f("ck_orders_cancelled_has_cancelled_at"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.create_index("ix_orders_status_created_at", "orders", ["status", "created_at"])
    op.create_index("ix_orders_user_id_created_at", "orders", ["user_id", "created_at"])

    op.create_table(
        "order_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("line_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.CheckConstraint("line_total = unit_price * quantity", name=op.f("ck_order_items_line_total_exact")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_items_quantity_positive")),
        sa.CheckConstraint("unit_price > 0", name=op.f("ck_order_items_unit_price_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_items_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_order_items_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_items")),
        sa.UniqueConstraint("order_id", "product_id", name=op.f("uq_order_items_order_id_product_id")),
    )
    op.create_index("ix_order_items_product_id", "order_items", ["product_id"])

    op.execute(CHECK_ORDER_TOTAL)
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER trg_orders_total_matches_lines
            AFTER INSERT OR UPDATE OF total ON orders
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION check_order_total()
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER trg_order_items_total_matches_lines
            AFTER INSERT OR UPDATE OF line_total, order_id OR DELETE ON order_items
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION check_order_total()
        """
    )


def downgrade():
    op.execute("DROP TRIGGER trg_order_items_total_matches_lines ON order_items")
    op.execute("DROP TRIGGER trg_orders_total_matches_lines ON orders")
    op.execute("DROP FUNCTION check_order_total()")
    op.drop_table("order_items")
    op.drop_table("orders")
    op.drop_table("products")
    op.drop_table("users")
