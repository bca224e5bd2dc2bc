"""Payments on /metrics, read from the database at each scrape (the same figures from any process):

    shop_payment_notifications_flagged_last_24h{flag}     notifications that changed nothing and need a person
    shop_refunds_pending                                  refunds asked of a provider it has not confirmed yet
    shop_refunds_oldest_pending_seconds                   how long the oldest of those has waited

(shop/observability/scrape.py: a database that does not answer in a second leaves them out of that scrape.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Flask
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Row

from shop.models import Flag
from shop.observability.scrape import read_at_scrape

# both read from partial indexes' worth of rows: flagged notifications, pending refunds (a handful)
FLAGGED = sa.text(
    "SELECT flag, count(*) AS notifications FROM payment_notifications"
    " WHERE outcome = 'flagged' AND received_at > now() - interval '24 hours' GROUP BY flag"
)
PENDING = sa.text(
    "SELECT count(*) AS refunds, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest"
    " FROM refunds WHERE status = 'pending'"
)


def _read(connection: Connection) -> tuple[dict[str, int], Row[Any]]:
    return {row.flag: int(row.notifications) for row in connection.execute(FLAGGED)}, connection.execute(PENDING).one()


class MoneyCollector(Collector):
    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = read_at_scrape(self._app, "payment", _read)
        if figures is None:
            return
        flagged, pending = figures
        family = GaugeMetricFamily(
            "shop_payment_notifications_flagged_last_24h",
            "Payment notifications flagged for staff in the last 24 hours",
            labels=["flag"],
        )
        for flag in Flag:
            family.add_metric([flag.value], float(flagged.get(flag.value, 0)))
        yield family
        yield GaugeMetricFamily("shop_refunds_pending", "Refunds waiting for the provider", float(pending.refunds))
        yield GaugeMetricFamily(
            "shop_refunds_oldest_pending_seconds", "Age of the oldest refund waiting for the provider",
            float(pending.oldest),
        )  # fmt: skip
