"""What needs a person, on /metrics, read from the database at each scrape (shop/reports/attention.py):

    shop_orders_pending_overdue        orders pending past half the payment window
    shop_orders_unshipped_overdue      orders paid and not shipped SHIP_WITHIN_HOURS after payment
    shop_products_low_stock            active products at or under LOW_STOCK_THRESHOLD units

(shop/observability/scrape.py: a database that does not answer in a second leaves them out of that scrape.)
docs/alerts.md has example alert rules on these.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection

from shop.observability.scrape import read_at_scrape
from shop.reports.attention import Limits, counts

GAUGES = (
    ("pending_overdue", "shop_orders_pending_overdue", "Orders pending past half the payment window"),
    ("unshipped", "shop_orders_unshipped_overdue", "Orders paid and not shipped within SHIP_WITHIN_HOURS"),
    ("low_stock", "shop_products_low_stock", "Active products at or under LOW_STOCK_THRESHOLD units"),
)


class AttentionCollector(Collector):
    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limits = Limits.of(self._app.config)

        def read(connection: Connection) -> dict[str, int]:
            return counts(connection, limits)

        figures = read_at_scrape(self._app, "attention", read)
        if figures is None:
            return
        for key, name, description in GAUGES:
            yield GaugeMetricFamily(name, description, float(figures[key]))
