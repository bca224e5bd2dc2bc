"""Webhook delivery on /metrics, read from the database at each scrape, so the figures are the same whichever
process or container serves the scrape and however many workers deliver:

    shop_webhook_deliveries{status="pending"|"dead"}     deliveries to be tried again (or waiting behind one), and
                                                          given up
    shop_webhook_oldest_pending_seconds                   age of the oldest delivery not yet made: a pending one, or
                                                          an event an active endpoint's cursor has not passed
    shop_webhook_events_unread                            released events the endpoint furthest behind has not
                                                          been sent yet (its cursor has not passed them)
    shop_webhook_attempts_last_5m{result}                 attempts of the last five minutes, by outcome

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

from shop.observability.scrape import read_at_scrape
from shop.repositories.events import RELEASED_BELOW

STATE = sa.text(
    f"""
    WITH horizon AS (SELECT {RELEASED_BELOW} AS xmin),
    unread AS (  -- per active endpoint, the released events its cursor has not passed yet
        SELECT count(e.position) AS events, min(e.occurred_at) AS oldest
          FROM webhook_cursors c
          JOIN webhook_endpoints w ON w.id = c.endpoint_id AND w.is_active
          CROSS JOIN horizon
          LEFT JOIN events e ON (e.transaction_id, e.position) > (c.transaction_id, c.position)
                            AND e.transaction_id < horizon.xmin
         GROUP BY c.endpoint_id
    )
    SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending,
           (SELECT count(*) FROM webhook_deliveries WHERE status = 'dead') AS dead,
           (SELECT coalesce(extract(epoch FROM now() - least(
                        (SELECT min(created_at) FROM webhook_deliveries WHERE status = 'pending'),
                        (SELECT min(oldest) FROM unread))), 0)) AS oldest,
           (SELECT coalesce(max(events), 0) FROM unread) AS unread
    """  # noqa: S608 - RELEASED_BELOW, our constant
)
RECENT = sa.text(
    """
    SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered'
                WHEN status_code IS NULL THEN 'no_answer'
                WHEN status_code >= 500 OR status_code IN (408, 429) THEN 'retryable'
                ELSE 'refused' END AS result,
           count(*) AS attempts
      FROM webhook_attempts WHERE attempted_at > now() - interval '5 minutes'
     GROUP BY 1
    """
)
RESULTS = ("delivered", "retryable", "refused", "no_answer")


def _read(connection: Connection) -> tuple[Row[Any], dict[str, int]]:
    return connection.execute(STATE).one(), {row.result: int(row.attempts) for row in connection.execute(RECENT)}


class WebhookCollector(Collector):
    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = read_at_scrape(self._app, "webhook", _read)
        if figures is None:
            return
        state, recent = figures
        deliveries = GaugeMetricFamily("shop_webhook_deliveries", "Webhook deliveries by status", labels=["status"])
        deliveries.add_metric(["pending"], float(state.pending))
        deliveries.add_metric(["dead"], float(state.dead))
        yield deliveries
        oldest = float(state.oldest)
        yield GaugeMetricFamily(
            "shop_webhook_oldest_pending_seconds", "Age of the oldest delivery not yet made", oldest
        )
        yield GaugeMetricFamily(
            "shop_webhook_events_unread",
            "Released events not yet sent to the active endpoint furthest behind",
            float(state.unread),
        )
        attempts = GaugeMetricFamily(
            "shop_webhook_attempts_last_5m", "Webhook delivery attempts in the last five minutes", labels=["result"]
        )
        for result in RESULTS:
            attempts.add_metric([result], float(recent.get(result, 0)))
        yield attempts
