"""The near cache: each process's copies of what it read from Redis, never older than what Redis holds.

"Another process" is another app: its own near cache and listening connection, the same database and Redis.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.catalog import cache as catalog_cache
from shop.catalog import near_cache
from shop.catalog.documents import ProductDocument
from shop.catalog.near_cache import RECENT_INVALIDATIONS, NearCache, Ticket
from shop.extensions import db
from shop.models import Product
from tests.conftest import AuthActions
from tests.helpers import add_product, private_redis

LIST = "/api/v1/products?sort=price"


def detail_path(product: Product) -> str:
    return f"/api/v1/products/{product.id}"


def warmed(client: FlaskClient, *paths: str) -> dict[str, Any]:
    """Read each path until this app's near cache serves it (the first reads connect and fill it)."""
    answers = {}
    for path in paths:
        for _ in range(3):
            response = client.get(path)
            assert response.status_code == 200, path
            answers[path] = response.get_json()
    return answers


def near(app: Flask) -> NearCache:
    with app.app_context():
        return near_cache.for_app()


def held_ids(app: Flask, product_ids: list[int]) -> set[int]:
    """Which of these products the app's near cache would serve right now, without asking Redis."""
    with app.app_context():
        cache = near_cache.for_app()
        ticket = cache.refresh()
        return set(cache.documents(product_ids, ticket)) if ticket is not None else set()


def redis_calls(url: str, *commands: str) -> dict[str, int]:
    stats = redis.Redis.from_url(url).info("commandstats")
    return {command: int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands}


def prices(client: FlaskClient, product: Product) -> tuple[str, str]:
    detail = client.get(detail_path(product)).get_json()["price"]
    listed = {item["id"]: item["price"] for item in client.get(LIST).get_json()["items"]}
    return detail, listed[product.id]


def test_a_hot_detail_and_list_page_are_answered_without_asking_redis(
    make_app: Callable[..., Flask], db_session: Any
) -> None:
    lamp = add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("40.00"))
    add_product(db_session, "BOOK", name="Cook book", price=Decimal("20.00"), category="Books")
    with private_redis() as (url, _process):
        app = make_app(REDIS_URL=url)
        client = app.test_client()
        answers = warmed(client, detail_path(lamp), LIST, "/api/v1/categories")
        before = redis_calls(url, "mget", "evalsha", "get")

        for _ in range(10):
            for path, answer in answers.items():
                assert client.get(path).get_json() == answer, path

        assert redis_calls(url, "mget", "evalsha", "get") == before, "a warm read asked Redis"
        assert answers[detail_path(lamp)]["price"] == "40.00"
        assert [item["sku"] for item in answers[LIST]["items"]] == ["BOOK", "LAMP"]
        near(app).close()


def test_a_price_change_and_an_order_through_another_process_are_in_its_very_next_reads(
    make_app: Callable[..., Flask], client: FlaskClient, auth: AuthActions, db_session: Any
) -> None:
    lamp = add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("40.00"), stock=5)
    add_product(db_session, "BOOK", name="Cook book", price=Decimal("20.00"), category="Books")
    reader_app = make_app()
    reader = reader_app.test_client()
    warmed(reader, detail_path(lamp), LIST)
    assert held_ids(reader_app, [lamp.id]) == {lamp.id}, "the reader does not hold the product"

    staff = auth.headers("staff@example.com", "staff")
    assert client.patch(detail_path(lamp), json={"price": "10.00"}, headers=staff).status_code == 200
    assert prices(reader, lamp) == ("10.00", "10.00")

    warmed(reader, detail_path(lamp), LIST)
    assert held_ids(reader_app, [lamp.id]) == {lamp.id}
    order = {
        "items": [{"product_id": lamp.id, "quantity": 2}],
        "shipping_address": {"name": "Ann", "line1": "1 Main St", "city": "Town", "postal_code": "1", "country": "US"},
    }
    assert client.post("/api/v1/orders", json=order, headers=auth.headers()).status_code == 201
    assert reader.get(detail_path(lamp)).get_json()["stock"] == 3
    assert {item["id"]: item["stock"] for item in reader.get(LIST).get_json()["items"]}[lamp.id] == 3
    near(reader_app).close()


def test_an_order_drops_only_the_products_it_touched(
    make_app: Callable[..., Flask], client: FlaskClient, auth: AuthActions, db_session: Any
) -> None:
    lamp = add_product(db_session, "LAMP", stock=5)
    book = add_product(db_session, "BOOK", stock=5)
    reader_app = make_app()
    warmed(reader_app.test_client(), detail_path(lamp), detail_path(book))
    order = {
        "items": [{"product_id": lamp.id, "quantity": 1}],
        "shipping_address": {"name": "Ann", "line1": "1 Main St", "city": "Town", "postal_code": "1", "country": "US"},
    }
    assert client.post("/api/v1/orders", json=order, headers=auth.headers()).status_code == 201

    assert held_ids(reader_app, [lamp.id, book.id]) == {book.id}
    near(reader_app).close()


# --- the rules, one by one, against a real Redis ----------------------------------------------------------


def lamp_document(product_id: int, version: int = 1) -> ProductDocument:
    return ProductDocument(product_id, version, f'{{"id":{product_id},"name":"Lamp","is_active":true}}')


@pytest.fixture
def listening(app: Flask) -> Iterator[tuple[NearCache, redis.Redis, str]]:
    """The app's near cache, connected and heard from; a plain client; the product keys' prefix."""
    with app.app_context():
        cache = near_cache.for_app()
        deadline = time.monotonic() + 5
        while cache.refresh() is None:
            assert time.monotonic() < deadline, "the near cache never connected"
            time.sleep(0.01)
        yield cache, app.extensions["redis"], catalog_cache.tracked_keys()[0]


def drained_after(cache: NearCache, ticket: Ticket, invalidations: int = 1) -> Ticket:
    """Refresh until at least this many invalidations sent after `ticket` have arrived."""
    deadline = time.monotonic() + 5
    while True:
        current = cache.refresh()
        if current is not None and current.sequence >= ticket.sequence + invalidations:
            return current
        assert time.monotonic() < deadline, "no invalidation arrived"
        time.sleep(0.005)


def test_a_value_read_while_its_invalidation_was_on_the_way_is_not_kept(
    listening: tuple[NearCache, redis.Redis, str],
) -> None:
    cache, client, product_prefix = listening
    ticket = cache.refresh()
    assert ticket is not None
    old = lamp_document(901)  # what a slow reader read from Redis under `ticket`...
    client.set(f"{product_prefix}901", "2|")  # ...before a writer's tombstone landed
    current = drained_after(cache, ticket)

    cache.keep(ticket, [old])
    assert cache.documents([901], current) == {}

    cache.keep(current, [lamp_document(901, 2)])  # read after the invalidation: kept
    assert set(cache.documents([901], current)) == {901}


def test_a_ticket_older_than_the_invalidations_remembered_keeps_nothing(
    listening: tuple[NearCache, redis.Redis, str],
) -> None:
    cache, client, product_prefix = listening
    ticket = cache.refresh()
    assert ticket is not None
    with client.pipeline(transaction=False) as pipeline:
        for product_id in range(RECENT_INVALIDATIONS + 10):
            pipeline.set(f"{product_prefix}{100_000 + product_id}", "1|")
        pipeline.execute()
    current = drained_after(cache, ticket, RECENT_INVALIDATIONS + 10)

    cache.keep(ticket, [lamp_document(7)])  # 7 was never invalidated, but that can no longer be told
    assert cache.documents([7], current) == {}


def test_a_listing_change_drops_the_generation_and_the_counts(
    listening: tuple[NearCache, redis.Redis, str],
) -> None:
    cache, _client, _prefix = listening
    ticket = cache.refresh()
    assert ticket is not None
    cache.keep(ticket, generation=4, categories=[("Home", 2)])
    assert cache.categories(ticket) == [("Home", 2)]

    catalog_cache.retire_listings()
    current = drained_after(cache, ticket)

    assert cache.categories(current) is None
    assert not cache.holds_page(4, [], current)


# --- Redis goes away ---------------------------------------------------------------------------------------


def test_when_redis_is_killed_another_process_drops_its_copies_and_reads_the_change_from_postgresql(
    make_app: Callable[..., Flask], db_session: Any
) -> None:
    lamp = add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("40.00"))
    with private_redis() as (url, process):
        writer = make_app(REDIS_URL=url).test_client()
        reader_app = make_app(REDIS_URL=url)
        reader = reader_app.test_client()
        warmed(reader, detail_path(lamp), LIST)
        staff = AuthActions(writer).headers("staff@example.com", "staff")

        process.kill()
        process.wait()
        # committed; the tombstone cannot reach Redis, and the reader's copies must not outlive it
        assert writer.patch(detail_path(lamp), json={"price": "35.00"}, headers=staff).status_code == 200

        assert prices(reader, lamp) == ("35.00", "35.00")
        for app in (writer.application, reader_app):
            with app.app_context():
                db.engine.dispose()


def test_copies_are_not_used_once_redis_has_not_answered_for_the_liveness_window(
    make_app: Callable[..., Flask], db_session: Any
) -> None:
    lamp = add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("40.00"))
    with private_redis() as (url, process):
        reader_app = make_app(REDIS_URL=url, CATALOG_NEAR_CACHE_LIVENESS_SECONDS=0.3)
        reader = reader_app.test_client()
        warmed(reader, detail_path(lamp))

        os.kill(process.pid, signal.SIGSTOP)  # alive to TCP, answering nothing: like a partition
        try:
            # a change no invalidation will ever announce (written behind the cache's back)
            db_session.execute(sa.text("UPDATE products SET price = 12.00, version = version + 1 WHERE sku = 'LAMP'"))
            reader.get(detail_path(lamp))  # sends the ping that will not be answered
            time.sleep(0.5)

            assert reader.get(detail_path(lamp)).get_json()["price"] == "12.00"
            assert held_ids(reader_app, [lamp.id]) == set()
        finally:
            os.kill(process.pid, signal.SIGCONT)
        with reader_app.app_context():
            db.engine.dispose()
