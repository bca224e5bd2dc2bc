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
