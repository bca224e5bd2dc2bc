"""Database plumbing, in one place: the pool's connection checks, prepared statements and their round trips,
and transactions with bounded waits and retries.

Services see none of it: they get a unit of work (shop/services/unit_of_work.py) from `run_transaction`, and
its repositories run statements through `Statements`. The engine's options come from configuration
(config.py, `SQLALCHEMY_ENGINE_OPTIONS`); the driver is psycopg2.

    connections.py   pooled connections pinged only after sitting idle; the session ended quietly on a dead one
    prepared.py      server-side prepared statements, several in one message, BEGIN and COMMIT folded in
    replica.py       reports, the dashboard and the event feed read from a streaming replica that keeps up
    statements.py    a transaction's statements: run now, defer to the commit, opening statements
    transactions.py  run_transaction: lock and statement timeouts, retries of deadlocks and lost connections
"""

from __future__ import annotations

from flask import Flask

from shop.db.connections import register_connection_checks
from shop.db.prepared import register_prepared_statements
from shop.db.replica import init_replica_reads
from shop.db.statements import register_opening_statements


def init_database(app: Flask) -> None:
    """Everything the app's engine and sessions need beyond Flask-SQLAlchemy's own setup (idempotent)."""
    register_connection_checks(app)
    register_prepared_statements(app)
    register_opening_statements()
    init_replica_reads(app)
