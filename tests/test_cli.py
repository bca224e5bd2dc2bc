from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskCliRunner

from shop.models import Product


def catalog(session: Any) -> list[tuple[str, str, str, str, int]]:
    rows = session.execute(
        sa.select(Product.sku, Product.name, Product.category, Product.price, Product.stock).order_by(Product.sku)
    )
    return [(sku, name, category, str(price), stock) for sku, name, category, price, stock in rows]


def test_load_sample_data_fills_an_empty_catalog(runner: FlaskCliRunner, db_session: Any) -> None:
    result = runner.invoke(args=["load-sample-data", "--products", "24"])

    assert result.exit_code == 0, result.output
    assert "Loaded 24 sample products." in result.output
    products = catalog(db_session)
    assert len(products) == 24
    assert len({category for _, _, category, _, _ in products}) == 8
    assert all(price.endswith((".99", ".49")) for _, _, _, price, _ in products)


def test_load_sample_data_leaves_a_non_empty_catalog_alone(runner: FlaskCliRunner, db_session: Any) -> None:
    runner.invoke(args=["load-sample-data", "--products", "5"])
    before = catalog(db_session)

    result = runner.invoke(args=["load-sample-data", "--products", "50"])

    assert result.exit_code == 0
    assert "already has products; nothing loaded" in result.output
    assert catalog(db_session) == before


def test_load_sample_data_is_deterministic_for_a_seed(runner: FlaskCliRunner, db_session: Any) -> None:
    runner.invoke(args=["load-sample-data", "--products", "10", "--seed", "7"])
    first = catalog(db_session)
    db_session.execute(sa.delete(Product))

    runner.invoke(args=["load-sample-data", "--products", "10", "--seed", "7"])

    assert catalog(db_session) == first


def test_load_sample_data_refuses_a_bad_count(runner: FlaskCliRunner, db_session: Any) -> None:
    result = runner.invoke(args=["load-sample-data", "--products", "0"])

    assert result.exit_code == 2
    assert "0 is not in the range 1<=x<=10000" in result.output
    assert catalog(db_session) == []
