"""Prometheus metrics, summed over all gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py does).

prometheus-client decides at import whether values live in per-process files, so the directory must be in the
environment before this module is first imported; gunicorn.conf.py does that before the app is loaded.
"""

from __future__ import annotations

import os

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter("shop_http_requests", "HTTP requests answered", ["endpoint", "method", "status"])
HTTP_LATENCY = Histogram(
    "shop_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ORDERS_PLACED = Counter("shop_orders_placed", "Orders placed (201), replays not counted")
OUT_OF_STOCK = Counter("shop_orders_out_of_stock", "Orders refused for lack of stock (409), replays not counted")
TRANSACTION_RETRIES = Counter(
    "shop_transaction_retries", "Order transactions retried after 40001, 40P01 or a lost connection"
)
# a product detail or list page served wholly from Redis is a hit; one that needed PostgreSQL at all is a miss
CATALOG_CACHE = Counter("shop_catalog_cache_reads", "Catalog reads by whether Redis served them whole", ["result"])


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def register_metrics(app: Flask) -> None:
    # they read the database: imported once the app has one
    from shop.observability.attention_metrics import AttentionCollector
    from shop.observability.money_metrics import MoneyCollector
    from shop.webhooks.metrics import WebhookCollector

    from_database = CollectorRegistry()
    from_database.register(WebhookCollector(app))
    from_database.register(MoneyCollector(app))
    from_database.register(AttentionCollector(app))

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format; keep it off the public internet (the proxy in front does not route it)."""
        body = generate_latest(_registry()) + generate_latest(from_database)
        return Response(body, mimetype=CONTENT_TYPE_LATEST)
