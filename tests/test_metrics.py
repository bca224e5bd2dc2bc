"""/metrics: request, order, retry and cache counters, summed over gunicorn's workers."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.devservices import gunicorn_server
from shop.extensions import db
from tests.conftest import AuthActions
from tests.helpers import ADDRESS, add_product, make_products, post_order, tokens


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when the series does not exist yet)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_requests_orders_and_cache_reads_are_counted(client: FlaskClient, auth: AuthActions, db_session: Any) -> None:
    product = add_product(db_session, "LAMP", stock=1)
    headers = auth.headers("ann@example.com")
    order = {"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": ADDRESS}
    before = scrape(client)

    assert client.post("/api/v1/orders", json=order, headers=headers).status_code == 201
    assert client.post("/api/v1/orders", json=order, headers=headers).status_code == 409
    client.get(f"/api/v1/products/{product.id}")  # the order retired it: read from PostgreSQL
    client.get(f"/api/v1/products/{product.id}")  # now from Redis
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("shop_orders_placed_total") == 1
    assert grew("shop_orders_out_of_stock_total") == 1
    assert grew("shop_http_requests_total", endpoint="/api/v1/orders", method="POST", status="201") == 1
    assert grew("shop_http_requests_total", endpoint="/api/v1/orders", method="POST", status="409") == 1
    assert grew("shop_http_requests_total", endpoint="/api/v1/products/<product_id>", method="GET", status="200") == 2
    assert grew("shop_catalog_cache_reads_total", result="miss") == 1
    assert grew("shop_catalog_cache_reads_total", result="hit") == 1
    assert grew("shop_http_request_duration_seconds_count", endpoint="/api/v1/orders", method="POST") == 2


@pytest.mark.commits
def test_an_order_placed_through_one_worker_is_counted_in_a_scrape_of_the_other(
    committing_app: Flask, server_environ: dict[str, str], tmp_path: Path
) -> None:
    ids = make_products(committing_app, {"HELD": 5, "FREE": 5})
    # two customers: one customer's orders are counted unpaid one after another, so theirs would queue too
    token, other = (t["Authorization"].removeprefix("Bearer ") for t in tokens(committing_app, 2))
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    environ = server_environ | {
        # two sync workers: one busy with a request accepts nothing else, so the next one lands on the other
        "WEB_CONCURRENCY": "2",
        "GUNICORN_WORKER_CLASS": "sync",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }

    with gunicorn_server(environ) as base_url:
        with committing_app.app_context(), db.engine.connect() as holder:
            holder.execute(sa.text("SELECT id FROM products WHERE id = :id FOR UPDATE"), {"id": ids["HELD"]})
            answers: list[int] = []
            waiting = threading.Thread(target=lambda: answers.append(post_order(base_url, token, ids["HELD"])[0]))
            waiting.start()
            time.sleep(0.5)  # one worker now waits on the lock
            assert post_order(base_url, other, ids["FREE"])[0] == 201  # so the other worker placed this one
            holder.rollback()
        waiting.join(timeout=30)
        assert answers == [201]

        scrapes = []
        for _ in range(4):
            with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
                scrapes.append(response.read().decode())

    assert [sample(text, "shop_orders_placed_total") for text in scrapes] == [2.0, 2.0, 2.0, 2.0]
