"""Figures /metrics reads from the database at each scrape (the same whichever process serves it), bounded: a database
that does not answer in a second leaves them out of that scrape, and /metrics itself never fails for them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Connection

from shop.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")


def read_at_scrape(app: Flask, what: str, read: Callable[[Connection], T]) -> T | None:
    """`read` on a connection of its own with a one-second statement timeout; None (and a warning naming `what`)
    when the database does not answer."""
    try:
        with app.app_context(), db.engine.connect() as connection:
            connection.execute(sa.text("SET LOCAL statement_timeout = '1s'"))
            figures = read(connection)
            connection.rollback()
            return figures
    except Exception as error:
        log.warning("%s metrics unavailable: %s", what, error)
        return None
