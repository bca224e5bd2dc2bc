"""The database itself holds the invariants, even for writes that bypass the ORM (raw SQL here)."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import IntegrityError

from shop.extensions import db

ADDRESS = '{"name": "Ann", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}'


def execute(session: Any, statement: str, **params: Any) -> Any:
    return session.execute(sa.text(statement), params)


@pytest.fixture
def store(db_session: Any) -> dict[str, int]:
    """One customer, one product (price 10.00, stock 5) and one valid order of two units."""
    user_id = execute(
        db_session,
        "INSERT INTO users (email, name, password_hash) VALUES ('ann@example.com', 'Ann', 'x') RETURNING id",
    ).scalar_one()
    product_id = execute(
        db_session,
        "INSERT INTO products (sku, name, category, price, stock) VALUES ('SKU-1', 'Lamp', 'Home', 10.00, 5)"
        " RETURNING id",
    ).scalar_one()
    order_id = execute(
        db_session,
        "INSERT INTO orders (user_id, currency, total, units, shipping_address)"
        " VALUES (:user_id, 'USD', 20.00, 2, CAST(:address AS jsonb)) RETURNING id",
        user_id=user_id,
        address=ADDRESS,
    ).scalar_one()
    execute(
        db_session,
        "INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total, category,"
        " first_in_category) VALUES (:order_id, :product_id, 'SKU-1', 'Lamp', 2, 10.00, 20.00, 'Home', true)",
        order_id=order_id,
        product_id=product_id,
    )
    return {"user_id": user_id, "product_id": product_id, "order_id": order_id}


def refused_by(session: Any, statement: str, **params: Any) -> str:
    """Run `statement` in a savepoint, with deferred checks made immediate; return the constraint that refused it."""
    savepoint = session.begin_nested()
    try:
        with pytest.raises(IntegrityError) as refused:
            execute(session, f"{statement}; SET CONSTRAINTS ALL IMMEDIATE", **params)
    finally:
        savepoint.rollback()
    error = refused.value.orig
    assert isinstance(error, psycopg2.Error)
    return str(error.diag.constraint_name)


VIOLATIONS = [
    ("UPDATE products SET stock = -1 WHERE id = :product_id", "ck_products_stock_not_negative"),
    ("UPDATE products SET price = 0 WHERE id = :product_id", "ck_products_price_positive"),
    (
        "INSERT INTO products (sku, name, category, price) VALUES ('SKU-1', 'Dup', 'Home', 1)",
        "uq_products_sku",
    ),
    (
        "INSERT INTO users (email, name, password_hash) VALUES ('ANN@Example.COM', 'Ann 2', 'x')",
        "uq_users_email_lower",
    ),
    ("UPDATE users SET role = 'superuser' WHERE id = :user_id", "ck_users_role_allowed"),
    ("UPDATE orders SET status = 'lost' WHERE id = :order_id", "ck_orders_status_allowed"),
    ("UPDATE orders SET status = 'paid' WHERE id = :order_id", "ck_orders_paid_has_paid_at"),
    (
        "UPDATE orders SET status = 'shipped', paid_at = now() WHERE id = :order_id",
        "ck_orders_shipped_has_shipped_at",
    ),
    ("UPDATE orders SET status = 'cancelled' WHERE id = :order_id", "ck_orders_cancelled_has_cancelled_at"),
    ("UPDATE orders SET currency = 'usd' WHERE id = :order_id", "ck_orders_currency_iso"),
    (
        "UPDATE order_items SET quantity = 0, line_total = 0 WHERE order_id = :order_id",
        "ck_order_items_quantity_positive",
    ),
    (
        "UPDATE order_items SET line_total = 19.99 WHERE order_id = :order_id",
        "ck_order_items_line_total_exact",
    ),
    ("UPDATE orders SET total = 25.00 WHERE id = :order_id", "ck_orders_total_matches_lines"),
    ("DELETE FROM order_items WHERE order_id = :order_id", "ck_orders_total_matches_lines"),
    ("DELETE FROM products WHERE id = :product_id", "fk_order_items_product_id_products"),
    ("DELETE FROM users WHERE id = :user_id", "fk_orders_user_id_users"),
    (
        "INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total, category,"
        " first_in_category) VALUES (:order_id, :product_id, 'SKU-1', 'Lamp', 1, 10.00, 10.00, 'Home', false)",
        "uq_order_items_order_id_product_id",
    ),
    (
        "INSERT INTO orders (user_id, currency, total, units, shipping_address) VALUES (:user_id, 'USD', 0, 1, '{}') ",
        "ck_orders_total_matches_lines",
    ),
    ("UPDATE orders SET units = 0 WHERE id = :order_id", "ck_orders_units_positive"),
    ("UPDATE orders SET units = 3 WHERE id = :order_id", "ck_orders_units_match_lines"),
    (
        "UPDATE order_items SET quantity = 3, line_total = 30.00 WHERE order_id = :order_id",
        "ck_orders_total_matches_lines",
    ),
    # the facts the reports read (migration 0006)
    ("UPDATE order_items SET counted = true WHERE order_id = :order_id", "ck_order_items_match_their_order"),
    (
        "UPDATE order_items SET placed_at = placed_at - interval '1 day' WHERE order_id = :order_id",
        "ck_order_items_match_their_order",
    ),
    (
        "UPDATE orders SET status = 'paid', paid_at = now() WHERE id = :order_id",  # its lines still say not counted
        "ck_order_items_match_their_order",
    ),
    (
        "UPDATE order_items SET first_in_category = false WHERE order_id = :order_id",
        "ck_order_items_one_first_per_category",
    ),
    ("UPDATE orders SET previous_counted_at = now() WHERE id = :order_id", "ck_orders_previous_counted_at_chain"),
    ("UPDATE orders SET first_counted_at = now() WHERE id = :order_id", "ck_orders_first_counted_at"),  # pending
    (
        "UPDATE orders SET status = 'paid', paid_at = now(), first_counted_at = now() - interval '1 day'"
        " WHERE id = :order_id; UPDATE order_items SET counted = true WHERE order_id = :order_id",
        "ck_orders_first_counted_at",  # its own placement is the customer's first counted order's
    ),
    (
        "UPDATE orders SET status = 'paid', paid_at = now(), previous_counted_at = now() - interval '1 day'"
        " WHERE id = :order_id; UPDATE order_items SET counted = true WHERE order_id = :order_id",
        "ck_orders_previous_counted_at_chain",  # the customer has no earlier counted order to point at
    ),
    (
        # a second counted order of the same customer, not pointing back at the first
        "UPDATE orders SET status = 'paid', paid_at = now() WHERE id = :order_id;"
        " UPDATE order_items SET counted = true WHERE order_id = :order_id;"
        " WITH later AS (INSERT INTO orders (user_id, status, currency, total, units, shipping_address, paid_at,"
        "   created_at) VALUES (:user_id, 'paid', 'USD', 10.00, 1, '{}', now(), now() + interval '1 hour')"
        "   RETURNING id)"
        " INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total, placed_at,"
        "   counted, category, first_in_category)"
        " SELECT id, :product_id, 'SKU-1', 'Lamp', 1, 10.00, 10.00, now() + interval '1 hour', true, 'Home', true"
        "   FROM later",
        "ck_orders_previous_counted_at_chain",
    ),
]


@pytest.mark.parametrize(("statement", "constraint"), VIOLATIONS, ids=[c for _, c in VIOLATIONS])
def test_the_database_refuses(db_session: Any, store: dict[str, int], statement: str, constraint: str) -> None:
    assert refused_by(db_session, statement, **store) == constraint


def test_a_consistent_order_passes_every_check(db_session: Any, store: dict[str, int]) -> None:
    execute(db_session, "SET CONSTRAINTS ALL IMMEDIATE")

    total = execute(db_session, "SELECT total FROM orders WHERE id = :order_id", **store).scalar_one()
    assert str(total) == "20.00"


def test_changing_a_line_and_the_total_together_is_accepted(db_session: Any, store: dict[str, int]) -> None:
    with db_session.begin_nested():
        execute(
            db_session,
            "UPDATE order_items SET quantity = 3, line_total = 30.00 WHERE order_id = :order_id",
            **store,
        )
        execute(db_session, "UPDATE orders SET total = 30.00, units = 3 WHERE id = :order_id", **store)
        execute(db_session, "SET CONSTRAINTS ALL IMMEDIATE")  # the deferred checks run here, and pass

    row = execute(db_session, "SELECT total, units FROM orders WHERE id = :order_id", **store).one()
    assert (str(row.total), row.units) == ("30.00", 3)


def test_the_total_check_runs_at_a_real_commit(committing_app: Flask) -> None:
    """Deferred: it fires at COMMIT, not at the statement, so it must be proven with a real one."""
    with committing_app.app_context(), db.engine.connect() as connection:
        with connection.begin():
            user_id = connection.execute(
                sa.text(
                    "INSERT INTO users (email, name, password_hash) VALUES ('bo@example.com', 'Bo', 'x') RETURNING id"
                )
            ).scalar_one()
        transaction = connection.begin()
        connection.execute(
            sa.text(
                "INSERT INTO orders (user_id, currency, total, units, shipping_address)"
                " VALUES (:user_id, 'USD', 5.00, 1, '{}')"
            ),
            {"user_id": user_id},
        )
        with pytest.raises(IntegrityError, match="has no lines"):
            transaction.commit()
        transaction.rollback()

    with committing_app.app_context(), db.engine.connect() as observer:
        assert observer.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 0
