"""The report summaries (migration 0016, shop/reports/summaries.py): the reports read from them equal the same
reports read from the orders themselves, in every zone and on DST days, whether or not the changes were folded in
yet; the writers never wait on one another for them; and a roll-up racing writers loses and doubles nothing.

These commit for real: the seed, the roll-up and concurrent writers each use connections of their own.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.models.order import COUNTED_LIST, COUNTED_SQL
from shop.reports import queries
from shop.reports.summaries import SUMMARIES, roll_up
from shop.services.order_expiry import sweep
from tests.helpers import ADDRESS, make_products, order_step, run_together, staff_headers, tokens

pytestmark = pytest.mark.commits

REFERENCE = Path(__file__).parent / "reference_sql"
SINCE, UNTIL = date(2024, 10, 1), date(2026, 4, 1)
SEED = ["--users", "150", "--products", "40", "--orders", "5000", "--since", SINCE.isoformat(),
        "--until", UNTIL.isoformat(), "--seed", "19"]  # fmt: skip
# +05:45 and -03:30 (-02:30 in summer), zones with DST of an hour and of half an hour, the date line both ways
ZONES = [
    "UTC", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
    "Pacific/Chatham", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata", "America/Sao_Paulo",
]  # fmt: skip
# local days on which the clocks changed, each in its zone
DST_DAYS = [
    ("Europe/Berlin", date(2025, 3, 30)), ("Europe/Berlin", date(2025, 10, 26)),
    ("America/New_York", date(2025, 3, 9)), ("America/New_York", date(2025, 11, 2)),
    ("America/New_York", date(2024, 11, 3)), ("America/St_Johns", date(2025, 3, 9)),
    ("America/St_Johns", date(2025, 11, 2)), ("Australia/Lord_Howe", date(2025, 4, 6)),
    ("Australia/Lord_Howe", date(2025, 10, 5)), ("Pacific/Chatham", date(2025, 4, 6)),
]  # fmt: skip


@cache
def reference(name: str) -> sa.TextClause:
    """The report as it was before the summaries, reading every order, line and refund of the range."""
    return sa.text((REFERENCE / f"{name}.sql").read_text().replace("$COUNTED_STATUSES", COUNTED_LIST))


def cases(count: int, seed: int) -> list[tuple[queries.ReportRange, str]]:
    """(range, granularity): each DST day alone and in its week and month, then random ranges in random zones."""
    rng = random.Random(seed)
    chosen = []
    for tz, day in DST_DAYS:
        chosen += [
            (queries.ReportRange(day, day, tz), "day"),
            (queries.ReportRange(day - timedelta(days=3), day + timedelta(days=3), tz), "day"),
            (queries.ReportRange(day - timedelta(days=20), day + timedelta(days=20), tz), "week"),
            (queries.ReportRange(day.replace(day=1) - timedelta(days=40), day + timedelta(days=45), tz), "month"),
        ]
    for tz, start, end in EDGE_CASES:
        chosen += [(queries.ReportRange(start, end, tz), granularity) for granularity in ("day", "week", "month")]
        chosen += [(queries.ReportRange(start + timedelta(days=shift), end, tz), "month") for shift in (1, 28, 29)]
    while len(chosen) < count:
        start = SINCE - timedelta(days=10) + timedelta(days=rng.randrange((UNTIL - SINCE).days + 20))
        granularity = rng.choice(["day", "week", "month"])
        longest = {"day": 100, "week": 400, "month": 600}[granularity]
        end = start + timedelta(days=rng.choice([0, 1, 6, 27, 30, 31, 89, rng.randrange(longest)]))
        chosen.append((queries.ReportRange(start, end, rng.choice(ZONES)), granularity))
    return chosen


def both_ways(session: Any, report_range: queries.ReportRange, granularity: str) -> dict[str, tuple[Any, Any]]:
    """Each report from the summaries and from the rows, side by side."""
    session.execute(queries.REPORT_SETTINGS)
    periods = queries.report_periods(session, report_range, granularity)
    assert queries.on_quarter_hours(periods["starts"], periods["until"])  # the summaries are what is tested
    raw_revenue, raw_parameters = queries.branched_query("revenue", periods)
    raw_customers, raw_customer_parameters = queries.branched_query("customers", periods)
    parameters = report_range.parameters() | {"limit": 100}
    answers = {
        "revenue": (session.execute(queries.statement("revenue_summarized"), periods).all(),
                    session.execute(raw_revenue, raw_parameters).all()),
        "customers": (session.execute(queries.statement("customers_summarized"), periods).all(),
                      session.execute(raw_customers, raw_customer_parameters).all()),
        "categories": (session.execute(queries.statement("revenue_by_category"), parameters).all(),
                       session.execute(reference("revenue_by_category"), parameters).all()),
        "products": (session.execute(queries.statement("top_products"), parameters).all(),
                     session.execute(reference("top_products"), parameters).all()),
    }  # fmt: skip
    # top customers three ways: as the app runs it, always from the biggest spenders' orders when it can (no
    # cap on the candidates), and always from every order of the range
    for limit in (3, 10, 100):
        expected = session.execute(reference("top_customers"), parameters | {"limit": limit}).all()
        for name, most in (("app", queries.MOST_CANDIDATES), ("bounded", 10**9), ("scan", 0)):
            bounded = parameters | queries.top_customers_parameters(limit, most)
            got = session.execute(queries.statement("top_customers"), bounded).all()
            answers[f"top {limit} customers, {name}"] = (got, expected)
    session.rollback()
    return answers


CHANGE_TABLES = [f"{summary.table}_changes" for summary in SUMMARIES]


def pending_changes(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as connection:
        counts = " + ".join(f"(SELECT count(*) FROM {table})" for table in CHANGE_TABLES)  # noqa: S608 - ours
        return int(connection.scalar(sa.text(f"SELECT {counts}")))


# a customer whose orders fall exactly on local midnights (and one on a DST change), so that an order and the one
# before it sit either side of, or exactly on, a period's first instant: 2025-03-01 and 2025-03-30 in Berlin,
# 2025-11-02 and 2025-11-03 in New York (the first a 25-hour day), 2025-06-01 in Kathmandu, 2025-07-01 in St John's
ON_THE_EDGES = [
    "2025-02-28T23:00:00+00:00", "2025-02-28T23:00:00+00:00", "2025-03-29T23:00:00+00:00",
    "2025-03-30T00:59:59+00:00", "2025-05-31T18:15:00+00:00", "2025-05-31T18:15:00+00:00",
    "2025-07-01T02:30:00+00:00", "2025-11-02T04:00:00+00:00", "2025-11-03T04:59:59+00:00",
    "2025-11-03T05:00:00+00:00",
]  # fmt: skip
EDGE_CASES = [
    ("Europe/Berlin", date(2025, 2, 1), date(2025, 4, 30)), ("America/New_York", date(2025, 10, 1),
    date(2025, 11, 30)), ("Asia/Kathmandu", date(2025, 5, 1), date(2025, 7, 31)),
    ("America/St_Johns", date(2025, 5, 25), date(2025, 7, 10)),
    # the two orders tied at the customer's first moment, and nothing more of theirs until 30 March
    ("Europe/Berlin", date(2025, 3, 1), date(2025, 3, 10)),
]  # fmt: skip


def place_orders_on_the_edges(app: Flask, staff: dict[str, str]) -> None:
    """ON_THE_EDGES' orders, placed and paid through the API, then moved to those moments in one transaction
    (their customer's chain of previous and first orders moved with them, as the deferred checks insist)."""
    ids = make_products(app, {"EDGE": 100})
    (buyer,) = tokens(app, 1)
    client = app.test_client()
    body = {"items": [{"product_id": ids["EDGE"], "quantity": 1}], "shipping_address": ADDRESS}
    orders = []
    for _ in ON_THE_EDGES:
        order_id = client.post("/api/v1/orders", json=body, headers=buyer).get_json()["id"]
        assert order_step(client, order_id, "pay", staff).status_code == 200
        orders.append(order_id)
    with app.app_context(), db.engine.begin() as connection:
        previous = None
        for order_id, placed in zip(orders, ON_THE_EDGES, strict=True):
            connection.execute(
                sa.text(
                    "UPDATE orders SET created_at = :at, paid_at = :at, first_counted_at = :first,"
                    " previous_counted_at = :previous WHERE id = :id;"
                    "UPDATE order_items SET placed_at = :at WHERE order_id = :id"
                ),
                {"id": order_id, "at": placed, "first": ON_THE_EDGES[0], "previous": previous},
            )
            previous = placed


def order_payer(app: Flask) -> Callable[[], int]:
    """A new buyer's one-line orders, each placed through the API and paid by staff when called; its id."""
    ids = make_products(app, {"LAMP": 100})
    (buyer,) = tokens(app, 1)
    client, staff = app.test_client(), staff_headers(app)
    body = {"items": [{"product_id": ids["LAMP"], "quantity": 1}], "shipping_address": ADDRESS}

    def pay_one() -> int:
        order_id = int(client.post("/api/v1/orders", json=body, headers=buyer).get_json()["id"])
        assert order_step(client, order_id, "pay", staff).status_code == 200
        return order_id

    return pay_one


def change_some_orders(app: Flask) -> None:
    """Through the API, as staff would: cancel paid orders, pay pending ones, refund delivered ones by line and by
    amount; each writes summary changes that no roll-up has folded in yet."""
    client, staff = app.test_client(), staff_headers(app, "boss@example.com")  # the seed made staff@example.com
    place_orders_on_the_edges(app, staff)
    with app.app_context(), db.engine.connect() as connection:
        picks = {
            status: connection.scalars(
                sa.text("SELECT id FROM orders WHERE status = :status ORDER BY id % 97, id LIMIT 12"),
                {"status": status},
            ).all()
            for status in ("paid", "pending", "delivered")
        }
        lines: dict[int, int] = dict(
            connection.execute(sa.text("SELECT DISTINCT ON (order_id) order_id, product_id FROM order_items")).all()
        )
    for order_id in picks["paid"][:8]:
        assert order_step(client, order_id, "cancel", staff).status_code == 200
    for order_id in picks["pending"][:8]:
        assert order_step(client, order_id, "pay", staff).status_code == 200
    for number, order_id in enumerate(picks["delivered"][:10]):
        body: dict[str, Any] = (
            {"lines": [{"product_id": lines[order_id], "quantity": 1}], "reason": "broken"}
            if number % 2 == 0
            else {"amount": "1.00", "reason": "late"}
        )
        answer = client.post(
            f"/api/v1/orders/{order_id}/refunds", json=body, headers=staff | {"Idempotency-Key": f"s{order_id}"}
        )
        assert answer.status_code == 201, answer.get_json()


def test_every_report_read_from_the_summaries_equals_the_one_read_from_the_orders(committing_app: Flask) -> None:
    app = committing_app
    seeded = app.test_cli_runner().invoke(args=["seed-db", *SEED])
    assert seeded.exit_code == 0, seeded.output
    change_some_orders(app)
    assert pending_changes(app) > 0  # the first pass reads summaries and changes together

    compared, with_revenue = 0, 0
    with app.app_context():
        for number, (report_range, granularity) in enumerate(cases(240, seed=5)):
            if number == 160:  # the rest with every change folded in
                assert roll_up() > 0
                assert pending_changes(app) == 0
            for report, (summarized, raw) in both_ways(db.session, report_range, granularity).items():
                assert summarized == raw, (report, report_range, granularity)
                compared += 1
                with_revenue += report == "revenue" and raw[-1].revenue > 0
        db.session.remove()
    assert compared == 240 * (4 + 9)
    assert with_revenue > 200  # the ranges mostly hold orders: the comparison is not of zeros


def test_a_range_in_a_zones_local_mean_time_reads_the_orders(committing_app: Flask) -> None:
    """Before standard time (Amsterdam kept +00:19:32 until 1937) local midnights are not UTC quarter hours, which
    the summaries cannot cut at: the report reads the orders instead, and is exact."""
    app = committing_app
    order_id = order_payer(app)()
    client, staff = app.test_client(), staff_headers(app, "boss@example.com")
    # placed at 23:42 UTC on 1 June 1930: 00:01:32 on 2 June in Amsterdam, but in the UTC quarter hour that began at
    # 23:30, 23:49:32 on the 1st there: a quarter-hour summary would put it on Amsterdam's 1 June
    placed = "1930-06-01 23:42:00+00"
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orders SET created_at = :at, first_counted_at = :at, paid_at = :at WHERE id = :id"),
            {"id": order_id, "at": placed},
        )
        connection.execute(sa.text("UPDATE order_items SET placed_at = :at"), {"at": placed})

    def day(which: str, tz: str) -> tuple[int, int]:
        answer = client.get(
            "/api/v1/reports/revenue", query_string={"start": which, "end": which, "tz": tz}, headers=staff
        )
        assert answer.status_code == 200, answer.get_json()
        totals = answer.get_json()["totals"]
        return totals["orders"], totals["unique_customers"]

    assert day("1930-06-01", "Europe/Amsterdam") == (0, 0)
    assert day("1930-06-02", "Europe/Amsterdam") == (1, 1)
    assert day("1930-06-01", "UTC") == (1, 1)


def test_writers_never_wait_on_one_another_or_on_a_roll_up(committing_app: Flask) -> None:
    """Two orders placed in the same quarter hour are paid by two transactions still open: neither waits (a
    summary row updated in place would make the second wait for the first's commit), and a roll-up meanwhile
    neither waits nor takes their uncommitted changes."""
    app = committing_app
    ids = make_products(app, {"LAMP": 10})
    buyers = tokens(app, 2)
    client = app.test_client()
    body = {"items": [{"product_id": ids["LAMP"], "quantity": 1}], "shipping_address": ADDRESS}
    orders = [client.post("/api/v1/orders", json=body, headers=buyer).get_json()["id"] for buyer in buyers]
    pay = sa.text(
        "UPDATE orders SET status = 'paid', paid_at = now() WHERE id = :id;"
        "UPDATE order_items SET counted = true WHERE order_id = :id"
    )
    with app.app_context():
        with db.engine.connect() as connection:
            quarter_hours = connection.scalars(
                sa.text("SELECT DISTINCT summary_quarter_hour(created_at) FROM orders WHERE id = ANY(:ids)"),
                {"ids": orders},
            ).all()
        first, second = db.engine.connect(), db.engine.connect()
        try:
            for connection, order_id in ((first, orders[0]), (second, orders[1])):
                connection.execute(sa.text("SET lock_timeout = '2s'"))
                connection.execute(pay, {"id": order_id})  # the second would time out if it waited
            assert roll_up() == 0  # nothing committed to move, and no wait for the open ones
            for connection in (first, second):
                assert connection.scalar(sa.text("SELECT count(*) FROM revenue_summary_changes")) == 1
        finally:
            first.rollback()  # the deferred checks of a hand-written payment would refuse the commit
            second.rollback()
            first.close()
            second.close()
    assert len(quarter_hours) == 1  # the point: the same quarter hour's figures
    assert pending_changes(app) == 0


def summaries_against_the_orders(app: Flask) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every summary's totals by grain, and what the orders, lines and ledger say they must be."""
    with app.app_context(), db.engine.connect() as connection:
        summed = {
            f"revenue {grain}": tuple(row)
            for grain, *row in connection.execute(
                sa.text("SELECT grain, sum(orders), sum(units), sum(revenue), sum(refunds) FROM revenue_summary"
                        " GROUP BY grain")
            )
        } | {
            f"products {grain}": tuple(row)
            for grain, *row in connection.execute(
                sa.text("SELECT grain, sum(units), sum(revenue), sum(refunded_units), sum(refunds)"
                        " FROM product_summary GROUP BY grain")
            )
        } | {
            f"categories {grain}": tuple(row)
            for grain, *row in connection.execute(
                sa.text("SELECT grain, sum(orders), sum(units), sum(revenue), sum(refunded_units), sum(refunds)"
                        " FROM category_summary GROUP BY grain")
            )
        } | {
            "pairs": connection.scalar(sa.text("SELECT sum(pairs) FROM order_pair_summary")),
            "customers": connection.execute(
                sa.text("SELECT user_id, revenue FROM customer_revenue WHERE revenue <> 0 ORDER BY user_id")
            ).all(),
        }  # fmt: skip
        counted = connection.execute(
            sa.text(f"SELECT count(*), sum(units), sum(total) FROM orders WHERE {COUNTED_SQL}")  # noqa: S608
        ).one()
        refunded = connection.scalar(
            sa.text("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = 'refund' AND in_revenue")
        )
        refunded_lines = connection.execute(
            sa.text(
                "SELECT coalesce(sum(l.quantity), 0), coalesce(sum(l.amount), 0)"
                " FROM ledger_entries e JOIN refund_lines l ON l.refund_id = e.refund_id"
                " WHERE e.kind = 'refund' AND e.in_revenue"
            )
        ).one()
        lines = connection.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE first_in_category), sum(quantity), sum(line_total)"
                " FROM order_items WHERE counted"
            )
        ).one()
        spent = connection.execute(
            sa.text(f"SELECT user_id, sum(total) FROM orders WHERE {COUNTED_SQL} GROUP BY user_id ORDER BY user_id")  # noqa: S608
        ).all()
        pairs = connection.scalar(
            sa.text(f"SELECT count(*) FROM orders WHERE {COUNTED_SQL} AND previous_counted_at IS NOT NULL")  # noqa: S608
        )
    expected = {f"revenue {grain}": (*counted, refunded) for grain in "qdm"} | {
        f"products {grain}": (*lines[1:], *refunded_lines) for grain in "dm"
    } | {f"categories {grain}": (*lines, *refunded_lines) for grain in "dm"} | {
        "pairs": pairs, "customers": spent
    }  # fmt: skip
    return summed, expected


def test_a_roll_up_racing_payments_and_cancellations_loses_and_doubles_nothing(
    committing_app: Flask, unpaid_unlimited: None
) -> None:
    app = committing_app
    ids = make_products(app, {"LAMP": 500, "MUG": 500})
    buyers = tokens(app, 4)
    client, staff = app.test_client(), staff_headers(app)
    lines = [{"product_id": ids["LAMP"], "quantity": 2}, {"product_id": ids["MUG"], "quantity": 1}]
    body = {"items": lines, "shipping_address": ADDRESS}
    orders = [client.post("/api/v1/orders", json=body, headers=buyers[n % 4]).get_json()["id"] for n in range(24)]
    done = threading.Event()
    moved: list[int] = []

    def keep_rolling_up() -> None:
        with app.app_context():
            while not done.is_set():
                moved.append(roll_up())

    def act(index: int) -> list[int]:
        # every order paid; every third then cancelled: each step's changes race the roll-ups
        def step(action: str) -> int:
            return order_step(app.test_client(), orders[index], action, staff).status_code

        return [step("pay")] + ([step("cancel")] if index % 3 == 0 else [])

    roller = threading.Thread(target=keep_rolling_up)
    roller.start()
    try:
        answers = run_together(len(orders), act)
    finally:
        done.set()
        roller.join()
    assert all(codes == [200] * len(codes) for codes in answers), answers
    with app.app_context():
        roll_up()

    assert sum(moved) > 0  # the roll-ups did move changes while the payments went on
    assert pending_changes(app) == 0
    summed, expected = summaries_against_the_orders(app)
    assert summed == expected
    assert expected["revenue q"][0] == 16  # 24 paid, 8 of them cancelled


def test_the_roll_up_command_and_the_expiry_sweeper_fold_the_changes_in(committing_app: Flask) -> None:
    app = committing_app
    pay_one = order_payer(app)
    pay_one()
    pay_one()
    waiting = pending_changes(app)
    assert waiting > 0

    folded = app.test_cli_runner().invoke(args=["reports", "roll-up"])
    assert folded.exit_code == 0, folded.output
    assert folded.output == f"Folded {waiting} changes into the report summaries.\n"
    assert pending_changes(app) == 0

    pay_one()
    assert pending_changes(app) > 0
    stop = threading.Event()
    sweeper = threading.Thread(target=sweep, args=(app, stop, 60.0))
    sweeper.start()  # one round, then it waits for its interval; stop ends the wait
    try:
        for _ in range(100):
            if pending_changes(app) == 0:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        sweeper.join(timeout=10)
    assert pending_changes(app) == 0
    summed, expected = summaries_against_the_orders(app)
    assert summed == expected


def test_a_rebuild_makes_the_rows_the_triggers_and_roll_ups_kept(committing_app: Flask) -> None:
    """rebuild_report_summaries() (the seed's and the migrations'), row by row, against summaries kept by the
    triggers and the roll-up through cancellations, payments and refunds of a seeded store."""
    app = committing_app
    seeded = app.test_cli_runner().invoke(args=["seed-db", *SEED[:4], "--orders", "1500", *SEED[6:]])
    assert seeded.exit_code == 0, seeded.output
    change_some_orders(app)
    with app.app_context():
        assert roll_up() > 0
        kept = summary_rows()
        with db.engine.begin() as connection:
            connection.execute(sa.text("SELECT rebuild_report_summaries()"))
        rebuilt = summary_rows()
    assert len(rebuilt["revenue_summary"]) > 1000  # not a comparison of nothing
    assert len(rebuilt["customer_revenue"]) > 100
    assert rebuilt == kept


def summary_rows() -> dict[str, set[tuple[Any, ...]]]:
    """Every summary's rows but those a roll-up leaves at zero (a cancelled order's), and each customer's revenue."""
    rows: dict[str, set[tuple[Any, ...]]] = {}
    with db.engine.connect() as connection:
        for summary in SUMMARIES:
            nonzero = " OR ".join(f"{figure} <> 0" for figure in summary.figures)
            rows[summary.table] = set(
                connection.execute(sa.text(f"SELECT * FROM {summary.table} WHERE {nonzero}")).all()  # noqa: S608
            )
        rows["customer_revenue"] = set(
            connection.execute(sa.text("SELECT * FROM customer_revenue WHERE revenue <> 0")).all()
        )
    return rows


def test_emptying_the_orders_with_truncate_empties_the_summaries(committing_app: Flask) -> None:
    """TRUNCATE fires no row trigger; a statement trigger makes the summaries again from what is left."""
    app = committing_app
    order_payer(app)()
    with app.app_context():
        roll_up()
        with db.engine.begin() as connection:
            assert connection.scalar(sa.text("SELECT count(*) FROM revenue_summary")) == 3  # q, d and m
            connection.execute(sa.text("TRUNCATE orders CASCADE"))
        with db.engine.connect() as connection:
            left = connection.scalar(
                sa.text(
                    "SELECT (SELECT count(*) FROM revenue_summary) + (SELECT count(*) FROM product_summary)"
                    " + (SELECT count(*) FROM customer_revenue) + (SELECT count(*) FROM first_order_summary)"
                )
            )
    assert left == 0
    assert pending_changes(app) == 0
