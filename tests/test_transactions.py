"""run_transaction: a deadlock (40P01) is retried whole; when the attempts run out, the client gets a 503."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.db.transactions import run_transaction
from shop.errors import ServiceBusy, headers_of, status_of
from shop.extensions import db
from shop.services.unit_of_work import UnitOfWork
from tests.helpers import make_products

pytestmark = pytest.mark.commits


def deadlock_pair(app: Flask, ids: dict[str, int]) -> tuple[list[Any], list[int]]:
    """Two transactions that take rows A and B in opposite orders, each after the other holds its first."""
    both_hold_first = threading.Barrier(2)
    attempts = [0, 0]
    outcomes: list[Any] = [None, None]

    def transfer(n: int) -> None:
        first, second = (ids["A"], ids["B"]) if n == 0 else (ids["B"], ids["A"])

        def work(uow: UnitOfWork) -> str:
            attempts[n] += 1
            lock = sa.text("UPDATE products SET stock = stock + 1 WHERE id = :id")
            uow.session.execute(lock, {"id": first})
            if attempts[n] == 1:
                both_hold_first.wait(timeout=10)  # only the first attempt meets the other head on
            uow.session.execute(lock, {"id": second})
            uow.commit()
            return "done"

        with app.app_context():
            try:
                outcomes[n] = run_transaction(work, unit_of_work=UnitOfWork)
            except ServiceBusy as busy:
                outcomes[n] = busy

    threads = [threading.Thread(target=transfer, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes, attempts


def stocks(app: Flask, ids: dict[str, int]) -> dict[str, int]:
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT sku, stock FROM products WHERE id IN (:a, :b)"), {"a": ids["A"], "b": ids["B"]}
        )
        return dict(rows.all())


def test_a_deadlock_victim_is_retried_and_both_transactions_finish(committing_app: Flask) -> None:
    ids = make_products(committing_app, {"A": 0, "B": 0})

    outcomes, attempts = deadlock_pair(committing_app, ids)

    assert outcomes == ["done", "done"]
    assert sorted(attempts) == [1, 2], "PostgreSQL chose one victim, and it ran again"
    assert stocks(committing_app, ids) == {"A": 2, "B": 2}


def test_when_the_attempts_run_out_the_answer_is_a_503(committing_app: Flask, make_app: Callable[..., Flask]) -> None:
    ids = make_products(committing_app, {"A": 0, "B": 0})
    single_try = make_app(TX_ATTEMPTS=1)

    outcomes, attempts = deadlock_pair(single_try, ids)

    assert attempts == [1, 1]
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["ServiceBusy", "str"]
    busy = next(outcome for outcome in outcomes if isinstance(outcome, ServiceBusy))
    assert status_of(busy) == 503
    assert headers_of(busy) == {"Retry-After": "1"}
    assert stocks(committing_app, ids) == {"A": 1, "B": 1}, "the victim's half was rolled back"
    with single_try.app_context():
        db.engine.dispose()


def test_a_transaction_the_orm_begins_is_bounded_before_its_first_statement(committing_app: Flask) -> None:
    """The bounded waits go ahead of whatever the work runs first, here an ORM statement, and hold inside it."""

    def work(uow: UnitOfWork) -> tuple[int, int]:
        # pg_settings gives both in milliseconds (current_setting would say "2s")
        in_ms = "SELECT setting::int FROM pg_settings WHERE name = '{}'"
        lock = uow.session.execute(sa.text(in_ms.format("lock_timeout"))).scalar_one()
        statement = uow.session.execute(sa.text(in_ms.format("statement_timeout"))).scalar_one()
        return lock, statement

    with committing_app.app_context():
        settings = run_transaction(work, unit_of_work=UnitOfWork)
        config = committing_app.config

    assert settings == (config["TX_LOCK_TIMEOUT_MS"], config["TX_STATEMENT_TIMEOUT_MS"])


def test_waits_not_sent_by_a_unit_of_work_are_not_left_for_the_next_transaction(committing_app: Flask) -> None:
    def nothing(uow: UnitOfWork) -> None:
        return None  # ends before its transaction ever began

    with committing_app.app_context():
        run_transaction(nothing, unit_of_work=UnitOfWork)
        after = db.session.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
        db.session.rollback()

    assert after == "0"  # the server's default: nothing was carried over
