"""The unit layer: use cases on an in-memory unit of work, with no PostgreSQL and no Redis (`pytest tests/unit`).

The suite's database fixtures are switched off here: nothing in this folder may need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from shop.extensions import passwords
from tests.unit.memory import MemoryDatabase, MemoryUnitOfWork


@pytest.fixture(autouse=True)
def extensions_bound_to_the_session_app() -> None:
    """Overrides the suite's fixture of this name, which starts PostgreSQL."""


@pytest.fixture(autouse=True)
def fresh_redis() -> None:
    """Overrides the suite's fixture of this name, which starts Redis."""


@pytest.fixture(autouse=True)
def settings() -> Iterator[Flask]:
    """The configuration the use cases read, in an app with no database behind it."""
    app = Flask("unit")
    app.config.update(
        CURRENCY="USD",
        IDEMPOTENCY_REFUSALS_PER_USER=3,
        UNPAID_ORDERS_PER_CUSTOMER=5,
        UNPAID_UNITS_PER_CUSTOMER=200,
        TX_ATTEMPTS=3,
        TX_LOCK_TIMEOUT_MS=2000,
        TX_STATEMENT_TIMEOUT_MS=5000,
        TX_RETRY_BASE_SECONDS=0.01,
        TOKEN_TTL_SECONDS=3600,
        MAX_TOKENS_PER_USER=2,
        # the cheapest Argon2 parameters: these tests are about accounts, not hashing
        ARGON2_TIME_COST=1,
        ARGON2_MEMORY_COST=8,
        ARGON2_PARALLELISM=1,
        ARGON2_MAX_CONCURRENT=1,
    )
    passwords.init_app(app)
    with app.app_context():
        yield app


@pytest.fixture
def database() -> MemoryDatabase:
    return MemoryDatabase()


@pytest.fixture
def uow(database: MemoryDatabase) -> Callable[[], MemoryUnitOfWork]:
    """The factory the use cases take as `unit_of_work`: each call is a new transaction on the same database."""
    return lambda: MemoryUnitOfWork(database)
