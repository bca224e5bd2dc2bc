"""The migrations are the schema: they must agree with the models and go down and up again cleanly."""

from __future__ import annotations

from collections.abc import Callable

import flask_migrate
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask

from shop.extensions import db

SHOP_TABLES = {
    "users", "products", "orders", "order_items", "api_tokens", "idempotency_records", "order_status_changes",
}  # fmt: skip


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def schema_drift() -> list[object]:
    migrate_options = {"compare_type": True, "compare_server_default": True}
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=migrate_options)
        return list(compare_metadata(context, db.metadata))


def test_upgrade_matches_models_then_downgrade_and_upgrade_again(
    make_app: Callable[..., Flask], scratch_database: str
) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=scratch_database)
    with app.app_context():
        flask_migrate.upgrade()
        assert table_names() >= SHOP_TABLES
        assert schema_drift() == []

        flask_migrate.downgrade(revision="base")
        assert table_names() == {"alembic_version"}
        with db.engine.connect() as connection:
            functions = connection.scalar(sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'check_order_total'"))
        assert functions == 0

        flask_migrate.upgrade()
        assert table_names() >= SHOP_TABLES
        assert schema_drift() == []
        db.engine.dispose()


def test_there_is_one_head(app: Flask) -> None:
    from alembic.script import ScriptDirectory

    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        assert len(ScriptDirectory.from_config(config).get_heads()) == 1


BEFORE_CURSORS = [
    "INSERT INTO webhook_endpoints (url, event_types, secret) VALUES ('https://example.com/h', '{order.placed}', 's')",
    "INSERT INTO events (type, resource_type, resource_id, sequence, data)"
    " VALUES ('order.placed', 'order', 7, 1, '{}')",
    "INSERT INTO webhook_deliveries (endpoint_id, event_position, event_id, resource_type, resource_id, sequence,"
    " status, attempts, give_up_at)"
    " SELECT w.id, e.position, e.id, 'order', 7, 1, 'pending', 2, now() + interval '1 day'"
    " FROM webhook_endpoints w, events e",
    "INSERT INTO webhook_attempts (delivery_id, status_code, duration_ms) SELECT id, 500, 3 FROM webhook_deliveries",
    "INSERT INTO webhook_attempts (delivery_id, status_code, duration_ms) SELECT id, 503, 4 FROM webhook_deliveries",
    "UPDATE webhook_dispatch SET transaction_id = 42, position = 9",
]


def test_webhook_cursors_keep_the_deliveries_and_where_dispatch_had_got_to(
    make_app: Callable[..., Flask], scratch_database: str
) -> None:
    """0011 turns the one dispatch cursor into a cursor per endpoint and renumbers deliveries; nothing is lost,
    either way."""
    app = make_app(SQLALCHEMY_DATABASE_URI=scratch_database)
    with app.app_context():
        flask_migrate.upgrade(revision="0010_webhook_deliveries")
        with db.engine.begin() as connection:
            for statement in BEFORE_CURSORS:
                connection.execute(sa.text(statement))
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            cursor = connection.execute(sa.text("SELECT transaction_id, position FROM webhook_cursors")).all()
            delivery = connection.execute(sa.text("SELECT id, status, attempts FROM webhook_deliveries")).one()
            attempts = connection.execute(
                sa.text("SELECT number, status_code FROM webhook_attempts WHERE delivery_id = :id ORDER BY number"),
                {"id": delivery.id},
            ).all()
        flask_migrate.downgrade(revision="0010_webhook_deliveries")
        with db.engine.connect() as connection:
            dispatch = connection.execute(sa.text("SELECT transaction_id, position FROM webhook_dispatch")).one()
            back = connection.execute(
                sa.text("SELECT a.status_code FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id"
                        " WHERE d.status = 'pending' AND d.attempts = 2 ORDER BY a.id")
            ).scalars().all()  # fmt: skip
        db.engine.dispose()

    assert [tuple(row) for row in cursor] == [(42, 9)]
    assert (delivery.status, delivery.attempts) == ("pending", 2)
    assert [tuple(row) for row in attempts] == [(1, 500), (2, 503)]
    assert tuple(dispatch) == (42, 9)
    assert back == [500, 503]


BEFORE_MONEY = [
    "INSERT INTO users (email, name, password_hash) VALUES ('ann@example.com', 'Ann', '!')",
    "INSERT INTO products (sku, name, description, category, price, stock) VALUES ('L', 'Lamp', '', 'Home', 2.50, 9)",
    *[
        f"""WITH o AS (
                INSERT INTO orders (user_id, status, currency, total, units, shipping_address{extra_columns})
                SELECT u.id, '{status}', 'USD', 5.00, 2, '{{}}'{extra_values} FROM users u RETURNING id
            )
            INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total, category,
                                     first_in_category)
            SELECT o.id, p.id, 'L', 'Lamp', 2, 2.50, 5.00, 'Home', true FROM o, products p"""  # noqa: S608 - constants
        for status, extra_columns, extra_values in [
            ("pending", "", ""),
            ("pending", "", ""),
            ("cancelled", ", cancelled_at", ", now()"),
        ]
    ],
]


def test_money_counts_each_customers_pending_orders_and_goes_back_without_its_events(
    make_app: Callable[..., Flask], scratch_database: str
) -> None:
    """0013 starts each customer's unpaid counts from their pending orders; its way back drops the money's tables,
    their events and the ledger's trigger function."""
    app = make_app(SQLALCHEMY_DATABASE_URI=scratch_database)
    with app.app_context():
        flask_migrate.upgrade(revision="0012_order_expiry")
        with db.engine.begin() as connection:
            for statement in BEFORE_MONEY:
                connection.execute(sa.text(statement))
        flask_migrate.upgrade()
        with db.engine.begin() as connection:
            counts = connection.execute(sa.text("SELECT unpaid_orders, unpaid_units FROM users")).one()
            connection.execute(
                sa.text(
                    "INSERT INTO events (type, resource_type, resource_id, sequence, data)"
                    " SELECT 'payment.captured', 'order', id, 2, '{}' FROM orders WHERE status = 'pending' LIMIT 1"
                )
            )
        flask_migrate.downgrade(revision="0012_order_expiry")
        with db.engine.connect() as connection:
            events = connection.scalar(sa.text("SELECT count(*) FROM events"))
            functions = connection.scalar(
                sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'ledger_entries_immutable'")
            )
        tables = table_names()
        db.engine.dispose()

    assert tuple(counts) == (2, 4)
    assert events == 0
    assert functions == 0
    assert not tables & {
        "ledger_entries",
        "refunds",
        "refund_lines",
        "returns",
        "return_lines",
        "payment_notifications",
    }
