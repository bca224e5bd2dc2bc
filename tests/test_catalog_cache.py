"""The catalog cache: reads come from Redis, and never show data older than the last commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.api.products import _filters_for
from shop.catalog import cache as catalog_cache
from shop.catalog import reads
from shop.catalog.documents import ProductDocument
from shop.catalog.queries import ProductFilters
from shop.extensions import db
from shop.models import Product
from shop.services.unit_of_work import UnitOfWork
from tests.conftest import AuthActions
from tests.helpers import add_product, private_redis


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


@pytest.fixture
def shelf(db_session: Any) -> dict[str, Product]:
    return {
        "LAMP": add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("40.00"), category="Home"),
        "KETTLE": add_product(db_session, "KETTLE", name="Kettle", price=Decimal("30.00"), category="Home"),
        "BOOK": add_product(db_session, "BOOK", name="Cook book", price=Decimal("20.00"), category="Books"),
    }


LISTINGS = [
    "/api/v1/products",
    "/api/v1/products?sort=price",
    "/api/v1/products?category=Home",
    "/api/v1/products?q=lamp",
    "/api/v1/products?in_stock=true&sort=name",
    "/api/v1/products?per_page=1&sort=-price",
]


def listed(client: FlaskClient, path: str) -> dict[str, dict[str, Any]]:
    response = client.get(path)
    assert response.status_code == 200
    return {item["sku"]: item for item in response.get_json()["items"]}


def warm(client: FlaskClient, product: Product) -> None:
    for path in [*LISTINGS, f"/api/v1/products/{product.id}", "/api/v1/categories"]:
        assert client.get(path).status_code == 200


def test_reads_are_served_from_redis(client: FlaskClient, shelf: dict[str, Product], db_session: Any) -> None:
    lamp = shelf["LAMP"]
    warm(client, lamp)
    # change the row behind the cache's back (no ORM, no invalidation): the cached answers do not see it
    db_session.execute(sa.text("UPDATE products SET name = 'Sneaky' WHERE sku = 'LAMP'"))

    assert client.get(f"/api/v1/products/{lamp.id}").get_json()["name"] == "Desk lamp"
    assert listed(client, "/api/v1/products?sort=price")["LAMP"]["name"] == "Desk lamp"


def test_a_staff_price_change_is_in_the_very_next_read_of_the_detail_and_every_list(
    client: FlaskClient, staff: dict[str, str], shelf: dict[str, Product]
) -> None:
    lamp = shelf["LAMP"]
    warm(client, lamp)

    assert client.patch(f"/api/v1/products/{lamp.id}", json={"price": "10.00"}, headers=staff).status_code == 200

    assert client.get(f"/api/v1/products/{lamp.id}").get_json()["price"] == "10.00"
    for path in LISTINGS[:-1]:
        assert listed(client, path)["LAMP"]["price"] == "10.00", path
    # and the order that depends on the price moved with it
    assert list(listed(client, "/api/v1/products?sort=price")) == ["LAMP", "BOOK", "KETTLE"]
    assert list(listed(client, "/api/v1/products?per_page=1&sort=-price")) == ["KETTLE"]


def test_deactivation_leaves_every_list_and_count_at_once(
    client: FlaskClient, staff: dict[str, str], shelf: dict[str, Product]
) -> None:
    lamp = shelf["LAMP"]
    warm(client, lamp)

    client.delete(f"/api/v1/products/{lamp.id}", headers=staff)

    for path in LISTINGS:
        assert "LAMP" not in listed(client, path), path
    assert client.get(f"/api/v1/products/{lamp.id}").status_code == 404
    counts = {c["name"]: c["product_count"] for c in client.get("/api/v1/categories").get_json()["items"]}
    assert counts == {"Books": 1, "Home": 1}


def test_stock_running_out_and_coming_back_moves_the_product_in_and_out_of_in_stock_lists(
    client: FlaskClient, staff: dict[str, str], shelf: dict[str, Product]
) -> None:
    lamp = shelf["LAMP"]
    in_stock = "/api/v1/products?in_stock=true&sort=name"
    warm(client, lamp)

    client.patch(f"/api/v1/products/{lamp.id}", json={"stock": 0}, headers=staff)
    assert "LAMP" not in listed(client, in_stock)
    assert client.get(f"/api/v1/products/{lamp.id}").get_json()["in_stock"] is False

    client.patch(f"/api/v1/products/{lamp.id}", json={"stock": 3}, headers=staff)
    assert listed(client, in_stock)["LAMP"]["stock"] == 3


def test_a_new_product_appears_in_lists_and_counts(
    client: FlaskClient, staff: dict[str, str], shelf: dict[str, Product]
) -> None:
    warm(client, shelf["LAMP"])

    new = {"sku": "TENT", "name": "Tent", "category": "Outdoor", "price": "99.00", "stock": 1}
    client.post("/api/v1/products", json=new, headers=staff)

    assert "TENT" in listed(client, "/api/v1/products")
    assert {"name": "Outdoor", "product_count": 1} in client.get("/api/v1/categories").get_json()["items"]


# --- the rules of the product documents, one by one -----------------------------------------------------


def document(product_id: int, version: int, name: str = "Lamp") -> ProductDocument:
    return ProductDocument(product_id, version, f'{{"id":{product_id},"name":"{name}","is_active":true}}')


def cached_version(product_id: int) -> int | None:
    found = catalog_cache.get_products([product_id])
    return found[product_id].version if product_id in found else None


def test_a_reader_cannot_put_back_a_document_older_than_a_commit(app: Flask) -> None:
    with app.app_context():
        catalog_cache.put_products([document(7, 1)])
        catalog_cache.retire_products({7: 2})  # a writer committed version 2
        assert cached_version(7) is None

        catalog_cache.put_products([document(7, 1)])  # a slow reader, who read version 1 before that commit
        assert cached_version(7) is None

        catalog_cache.put_products([document(7, 2)])  # a reader who saw the commit
        assert cached_version(7) == 2


def test_the_newest_version_wins_whatever_order_the_writes_arrive_in(app: Flask) -> None:
    with app.app_context():
        catalog_cache.put_products([document(8, 3, "new")])
        catalog_cache.put_products([document(8, 2, "old")])
        catalog_cache.retire_products({8: 2})
        catalog_cache.retire_products({8: 3})  # a tombstone of the version already held changes nothing
        assert cached_version(8) == 3

        catalog_cache.retire_products({8: 5})
        catalog_cache.retire_products({8: 4})
        catalog_cache.put_products([document(8, 4)])
        assert cached_version(8) is None
        catalog_cache.put_products([document(8, 5)])
        assert cached_version(8) == 5


def test_nothing_is_cached_when_the_cache_is_disabled(make_app: Callable[..., Flask], db_session: Any) -> None:
    app = make_app(CATALOG_CACHE_ENABLED=False)
    add_product(db_session, "LAMP")
    client = app.test_client()

    assert client.get("/api/v1/products").get_json()["total"] == 1
    with app.app_context():
        assert catalog_cache.get_products([1]) == {}
        keys = list(db_redis_keys(app, "catalog:v1:product:*"))
    assert keys == []


def db_redis_keys(app: Flask, pattern: str) -> list[bytes]:
    with app.app_context():
        client: redis.Redis = app.extensions["redis"]
        return list(client.scan_iter(match=app.config["CACHE_KEY_PREFIX"] + pattern))


# --- invalidation happens after the commit, and only for what the commit kept ------------------------------


@pytest.fixture
def committed_products(committing_app: Flask) -> list[int]:
    with committing_app.app_context(), UnitOfWork() as uow:
        ids = [
            uow.products.add(Product(sku=f"P{n}", name=f"P{n}", category="c", price=Decimal("5.00"), stock=5)).id
            for n in range(3)
        ]
        uow.commit()
    return ids


def tombstoned(app: Flask, product_ids: list[int]) -> set[int]:
    with app.app_context():
        client: redis.Redis = app.extensions["redis"]
        prefix = app.config["CACHE_KEY_PREFIX"]
        values = client.mget([f"{prefix}catalog:v1:product:{i}" for i in product_ids])
    return {
        i for i, value in zip(product_ids, values, strict=True) if isinstance(value, bytes) and value.endswith(b"|")
    }


@pytest.mark.commits
def test_a_rolled_back_savepoint_invalidates_nothing_and_the_commit_the_rest(
    committing_app: Flask, committed_products: list[int]
) -> None:
    first, second, third = committed_products
    with committing_app.app_context():
        generation_before = catalog_cache.generation()
        with UnitOfWork() as uow:
            uow.products.get(first).stock = 4  # type: ignore[union-attr]
            uow.session.flush()
            savepoint = uow.session.begin_nested()
            uow.products.get(second).stock = 3  # type: ignore[union-attr]
            uow.session.flush()
            savepoint.rollback()
            kept = uow.session.begin_nested()
            uow.products.get(third).stock = 2  # type: ignore[union-attr]
            uow.session.flush()
            kept.commit()
            assert tombstoned(committing_app, committed_products) == set(), "invalidated before the commit"
            uow.commit()

        assert tombstoned(committing_app, committed_products) == {first, third}
        # each tombstone names the version the commit wrote, so only a reader who saw the commit can replace it
        client: redis.Redis = committing_app.extensions["redis"]
        prefix = committing_app.config["CACHE_KEY_PREFIX"]
        with db.engine.connect() as connection:
            committed = connection.scalar(sa.text("SELECT version FROM products WHERE id = :id"), {"id": first})
        assert committed == 2
        assert client.get(f"{prefix}catalog:v1:product:{first}") == b"2|"
        # stock moved but stayed above zero: no listing changed, so none was retired
        assert catalog_cache.generation() == generation_before


@pytest.mark.commits
def test_a_rolled_back_transaction_invalidates_nothing(committing_app: Flask, committed_products: list[int]) -> None:
    with committing_app.app_context():
        generation_before = catalog_cache.generation()
        with UnitOfWork() as uow:
            for product_id in committed_products:
                uow.products.get(product_id).price = Decimal("1.00")  # type: ignore[union-attr]
            uow.session.flush()
            # no commit

        assert tombstoned(committing_app, committed_products) == set()
        assert catalog_cache.generation() == generation_before


@pytest.mark.commits
def test_listing_changes_retire_the_generation_stock_within_stock_does_not(
    committing_app: Flask, committed_products: list[int]
) -> None:
    product_id = committed_products[0]

    def change(**fields: Any) -> int:
        with committing_app.app_context():
            before = catalog_cache.generation()
            with UnitOfWork() as uow:
                product = uow.products.lock_for_update([product_id])[0]
                for name, value in fields.items():
                    setattr(product, name, value)
                uow.commit()
            return catalog_cache.generation() - before

    assert change(stock=4) == 0
    assert change(stock=0) == 1  # out of stock: leaves in_stock listings
    assert change(stock=6) == 1  # back in stock
    assert change(price=Decimal("6.00")) == 1
    assert change(sku="RENAMED") == 0  # not in any filter, sort or search


@pytest.mark.commits
@pytest.mark.parametrize("near_cache", [True, False], ids=["near-cache", "redis-confirmed"])
def test_a_page_held_by_one_process_is_rendered_again_when_another_changes_one_of_its_products(
    committing_app: Flask, committed_products: list[int], make_app: Callable[..., Flask], near_cache: bool
) -> None:
    # the reader is another process's app: its own held pages, the same database and Redis as the writer
    reader = make_app(CATALOG_NEAR_CACHE=near_cache).test_client()
    path, query = "/api/v1/products?sort=name", b"sort=name"
    assert reader.get(path).data == reader.get(path).data == reader.get(path).data
    with reader.application.test_request_context(path):
        filters = _filters_for(query)
        held = reads._held_pages().get(filters)
        assert held is not None, "the page was not held"
        assert catalog_cache.read_page(filters, held.fingerprint).unchanged, "Redis did not confirm the held page"

    # an order-like stock change: within stock, so no listing is retired, only the one product
    changed = committed_products[1]
    with committing_app.app_context():
        generation_before = catalog_cache.generation()
        with UnitOfWork() as uow:
            uow.products.lock_for_update([changed])[0].stock = 2
            uow.commit()
        assert catalog_cache.generation() == generation_before

    stock = {item["id"]: item["stock"] for item in reader.get(path).get_json()["items"]}
    assert stock == {committed_products[0]: 5, changed: 2, committed_products[2]: 5}


# --- Redis dies --------------------------------------------------------------------------------------------


def test_with_redis_killed_every_catalog_endpoint_answers_from_postgresql(
    make_app: Callable[..., Flask], db_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    lamp = add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("40.00"))
    add_product(db_session, "BOOK", name="Cook book", price=Decimal("20.00"), category="Books")
    with private_redis() as (url, process):
        app = make_app(REDIS_URL=url)
        client = app.test_client()
        staff = AuthActions(client).headers("staff@example.com", "staff")
        paths = ["/api/v1/products?sort=price", f"/api/v1/products/{lamp.id}", "/api/v1/categories"]
        healthy = {path: client.get(path).get_json() for path in paths}

        process.kill()
        process.wait()

        with caplog.at_level(logging.WARNING, logger="shop.catalog.cache"):
            started = time.monotonic()
            for _ in range(3):
                for path in paths:
                    response = client.get(path)
                    assert response.status_code == 200, path
                    assert response.get_json() == healthy[path]
            elapsed = time.monotonic() - started
            # staff can still work, and the next read shows it
            changed = client.patch(f"/api/v1/products/{lamp.id}", json={"price": "35.00"}, headers=staff)
            assert changed.status_code == 200
            assert client.get(f"/api/v1/products/{lamp.id}").get_json()["price"] == "35.00"
            assert [i["sku"] for i in client.get("/api/v1/products?sort=price").get_json()["items"]] == ["BOOK", "LAMP"]

        warnings = [r for r in caplog.records if r.name == "shop.catalog.cache"]
        assert len(warnings) == 1, "one warning per interval, not one per request"
        assert "serving from PostgreSQL" in warnings[0].getMessage()
        assert elapsed < 3.0, f"nine reads took {elapsed:.2f}s: a dead Redis must cost milliseconds"
        readiness = client.get("/readyz")
        assert readiness.status_code == 200
        assert readiness.get_json()["checks"]["redis"] == "degraded"
        with app.app_context():
            db.engine.dispose()


def test_held_pages_stay_within_their_byte_budget_dropping_the_least_recently_served() -> None:
    held = reads._HeldPages(budget_bytes=1000)

    def page(body: bytes) -> reads.HeldPage:
        return reads.HeldPage(b"{}", 0, (), reads.RenderedPage(body, 1))

    pages = [ProductFilters(page=number) for number in range(1, 6)]
    for filters in pages[:3]:
        held.put(filters, page(b"x" * 300))
    assert held.get(pages[0]) is not None  # now the most recently served

    held.put(pages[3], page(b"y" * 300))

    assert held.held_bytes <= 1000
    assert held.get(pages[1]) is None  # the least recently served went first
    assert all(held.get(filters) is not None for filters in (pages[0], pages[2], pages[3]))
    held.put(pages[4], page(b"z" * 5000))  # larger than the budget: kept alone
    assert held.get(pages[4]) is not None
    assert held.held_bytes == 5000
