"""Statements slower than SLOW_SQL_MS logged with their duration (never their parameters: they hold personal data)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, g, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Connection

from shop.db.replica import EXTENSION as REPLICA_READS
from shop.extensions import db

log = logging.getLogger("shop.sql")
STATEMENT_CHARACTERS = 500


def register_slow_sql_log(app: Flask) -> None:
    threshold_ms = float(app.config["SLOW_SQL_MS"])
    if threshold_ms <= 0:
        return
    with app.app_context():
        engines = [db.engine]
    if (replica := app.extensions.get(REPLICA_READS)) is not None:
        engines.append(replica.engine)  # the reports' reads, when they go to the replica (shop/db/replica.py)

    def started(connection: Connection, *args: Any) -> None:
        connection.info.setdefault("shop_statement_started", []).append(time.perf_counter())

    def finished(connection: Connection, cursor: Any, statement: str, *args: Any) -> None:
        starts = connection.info.get("shop_statement_started")
        if not starts:
            return
        duration_ms = (time.perf_counter() - starts.pop()) * 1000
        if duration_ms >= threshold_ms:
            log.warning(
                "slow SQL statement: %.0f ms",
                duration_ms,
                extra={
                    "duration_ms": round(duration_ms, 1),
                    "statement": " ".join(statement.split())[:STATEMENT_CHARACTERS],
                    "request_id": g.get("request_id") if has_request_context() else None,
                },
            )

    for engine in engines:
        event.listen(engine, "before_cursor_execute", started)
        event.listen(engine, "after_cursor_execute", finished)
