"""Benchmark the revenue reports through the HTTP API on a million (or ten million) seeded orders, beside the
database's floor.

    make bench-reports                                     # embedded servers unless DATABASE_URL/REDIS_URL are set
    make bench-reports BENCH_REPORTS_ARGS="--explain docs/reports-explain.md"
    make bench-reports BENCH_REPORTS_ARGS="--orders 10000000"   # ten million orders, 500,000 customers

It makes a fresh `<name>_reportbench` database next to the one DATABASE_URL names, seeds it with
`flask seed-db --users 50000 --products 2000 --orders 1000000 --until 2026-11-01` (or the ten-million-order store),
starts gunicorn with production
settings, and asks each report for the 12 months before --until (revenue by day: the last 90 days) `--runs`
times (default 5), after one unmeasured request. Beside each median it prints the median time of a bare
`SELECT sum(total)` over the same counted orders: the floor no report can beat. With --explain it also writes
each report's EXPLAIN (ANALYZE, BUFFERS) to a Markdown file. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench import bench_account, bench_token, drop_bench_database, flask, fresh_database

from config import normalize_database_url
from shop.devservices import gunicorn_server
from shop.models.order import COUNTED_SQL
from shop.reports import fulfilment
from shop.reports.queries import REPORT_SETTINGS, statement, top_customers_parameters

UNTIL = date(2026, 11, 1)
SIZES = {1_000_000: 50_000, 10_000_000: 500_000}  # orders seeded: customers
YEAR = {"start": (UNTIL - timedelta(days=365)).isoformat(), "end": (UNTIL - timedelta(days=1)).isoformat()}
QUARTER = {"start": (UNTIL - timedelta(days=90)).isoformat(), "end": (UNTIL - timedelta(days=1)).isoformat()}
MONTH = {"start": (UNTIL - timedelta(days=30)).isoformat(), "end": (UNTIL - timedelta(days=1)).isoformat()}
# name, path, query, SQL file, target in ms
REPORTS: list[tuple[str, str, dict[str, str], str, float]] = [
    ("revenue by month", "revenue", YEAR | {"granularity": "month"}, "revenue_summarized", 250),
    ("revenue by day, 90 days", "revenue", QUARTER | {"granularity": "day"}, "revenue_summarized", 250),
    ("revenue by category", "revenue-by-category", YEAR, "revenue_by_category", 500),
    ("top products", "top-products", YEAR | {"limit": "10"}, "top_products", 500),
    ("top customers", "top-customers", YEAR | {"limit": "10"}, "top_customers", 500),
    ("revenue by month, compared", "revenue", YEAR | {"granularity": "month", "compare": "previous_year"},
     "revenue_summarized", 500),
    ("customers by month", "customers", YEAR | {"granularity": "month"}, "customers_summarized", 500),
    ("cohorts", "cohorts", YEAR, "cohorts", 500),
    ("fulfilment by month", "fulfilment", YEAR | {"granularity": "month"}, "fulfilment", 500),
    ("fulfilment by day, 30 days", "fulfilment", MONTH | {"granularity": "day"}, "fulfilment", 500),
]  # fmt: skip
# the staff pages (server time, from their Server-Timing header): the default range, the last 30 days by day
# against the 30 before, and the overview of a year by month against the year before; target 300 ms each
PAGES: list[tuple[str, str, dict[str, str]]] = [
    ("overview, 30 days", "/staff/", MONTH | {"granularity": "day", "compare": "previous_period"}),
    ("sales, 30 days", "/staff/sales", MONTH | {"compare": "previous_period"}),
    ("customers, 30 days", "/staff/customers", MONTH | {"granularity": "day"}),
    ("needs attention", "/staff/attention", MONTH | {"granularity": "day"}),
    ("overview, 12 months", "/staff/", YEAR | {"granularity": "month", "compare": "previous_year"}),
    ("customers, 12 months", "/staff/customers", YEAR | {"granularity": "month"}),
]
PAGE_TARGET_MS = 300
# what the seed made of refunds and returns, for the reader to judge the rates by
MONEY = sa.text(
    """SELECT (SELECT count(*) FROM orders) AS orders,
              (SELECT count(*) FROM orders WHERE status = 'delivered') AS delivered,
              (SELECT count(*) FROM refunds) AS refunds,
              (SELECT count(*) FROM ledger_entries WHERE kind = 'refund' AND in_revenue) AS in_revenue,
              (SELECT count(*) FROM returns) AS returns,
              (SELECT count(*) FROM ledger_entries) AS ledger"""
)
# the counted statuses are our constant, not input
FLOOR = sa.text(
    f"""SELECT sum(total) FROM orders WHERE created_at >= CAST(:start AS date) AND created_at < CAST(:end AS date) + 1
        AND {COUNTED_SQL}"""  # noqa: S608
)


def _get(url: str, token: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - our server
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        response.read()
    return (time.perf_counter() - started) * 1000


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the sign-in's 302 carries the session cookie: read it, do not follow it


def staff_cookie(base_url: str, environ: dict[str, str]) -> str:
    """Sign in to the staff pages through their form, as a browser would; the session cookie to send."""
    email, password = bench_account(environ, role="staff")
    with urllib.request.urlopen(f"{base_url}/staff/login", timeout=10) as response:  # noqa: S310 - our server
        cookie = response.headers["Set-Cookie"].split(";")[0]
        found = re.search(r'name="csrf_token" value="([^"]+)"', response.read().decode())
    if found is None:
        raise RuntimeError("the sign-in form has no CSRF token")
    form = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": found.group(1)}).encode()
    request = urllib.request.Request(f"{base_url}/staff/login", data=form, headers={"Cookie": cookie})  # noqa: S310
    try:
        urllib.request.build_opener(_NoRedirects).open(request, timeout=10)
    except urllib.error.HTTPError as redirect:
        if redirect.code != 302:
            raise
        return str(redirect.headers["Set-Cookie"]).split(";")[0]
    raise RuntimeError("signing in did not redirect")


def page_ms(url: str, cookie: str) -> float:
    """The page's server time, from its Server-Timing header."""
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310 - our server
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        response.read()
        timing = response.headers["Server-Timing"]
    return float(timing.split("dur=")[1])


def floor_ms(engine: sa.Engine, query: dict[str, str], runs: int) -> float:
    times = []
    with engine.connect() as connection:
        for _ in range(runs + 1):
            started = time.perf_counter()
            connection.execute(FLOOR, {"start": query["start"], "end": query["end"]}).scalar()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[1:])


def explain(engine: sa.Engine, path: Path) -> None:
    parts = ["# The reports' plans on 1,000,000 seeded orders\n", "Written by `scripts/bench_reports.py --explain`.\n"]
    with engine.connect() as connection:
        for name, _, query, sql_file, _ in REPORTS:
            parameters: dict[str, Any] = {"tz": "UTC", "limit": 10, "granularity": "day"} | query
            parameters["limit"] = int(parameters["limit"])
            parameters |= top_customers_parameters(parameters["limit"])
            connection.execute(REPORT_SETTINGS)
            if sql_file in {"revenue_summarized", "customers_summarized", "fulfilment", "cohorts"}:  # the periods
                # come first, as shop.reports.queries runs them (cohorts by month)
                by = {"granularity": "month"} if sql_file == "cohorts" else {}
                periods, starts, until = connection.execute(statement("revenue_periods"), parameters | by).one()
                parameters |= {"periods": periods, "starts": starts, "until": until}
            if sql_file == "fulfilment":  # a branch per period and two for the range (shop/reports/fulfilment.py)
                query_statement, parameters = fulfilment.report_query(parameters)
                source = "shop/reports/sql/fulfilment_period.sql` and `fulfilment_totals.sql"
            elif sql_file.endswith("_summarized"):
                query_statement = statement(sql_file)
                source = f"shop/reports/sql/{sql_file}.sql` and `summary_spans.sql"
            else:
                query_statement, source = statement(sql_file), f"shop/reports/sql/{sql_file}.sql"
            explained = sa.text("EXPLAIN (ANALYZE, BUFFERS) " + query_statement.text)
            plan = "\n".join(row[0] for row in connection.execute(explained, parameters))
            parts.append(f"\n## {name} (`{source}`, {query})\n\n```\n{plan}\n```\n")
            connection.rollback()
    path.write_text("".join(parts), encoding="utf-8")
    print(f"plans written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--orders",
        type=int,
        choices=list(SIZES),
        default=1_000_000,
        help="orders to seed: 1,000,000 (50,000 customers) or 10,000,000 (500,000 customers; about 10 minutes)",
    )
    parser.add_argument("--explain", type=Path, help="write the EXPLAIN (ANALYZE, BUFFERS) of each report here")
    parser.add_argument(
        "--existing",
        action="store_true",
        help="measure the store already at DATABASE_URL, seeded as --orders says (nothing seeded, nothing dropped)",
    )
    args = parser.parse_args(argv)
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        parser.error("DATABASE_URL and REDIS_URL unset: run it as `make bench-reports`, which starts embedded servers")

    if args.existing:
        database_url = normalize_database_url(os.environ["DATABASE_URL"]) or os.environ["DATABASE_URL"]
    else:
        database_url = fresh_database(os.environ["DATABASE_URL"], "reportbench")
    environ = dict(os.environ) | {
        "DATABASE_URL": database_url,
        "CACHE_KEY_PREFIX": f"shop-reports-{secrets.token_hex(4)}:",
    }
    results, pages = [], []
    try:
        if not args.existing:
            print(f"seeding {args.orders:,} orders ...", file=sys.stderr)
            flask(environ, "db", "upgrade")
            flask(environ, "seed-db", "--users", str(SIZES[args.orders]), "--products", "2000",
                  "--orders", str(args.orders), "--until", UNTIL.isoformat())  # fmt: skip
        engine = sa.create_engine(database_url)
        with engine.connect() as connection:
            money = connection.execute(MONEY).one()
        print(
            f"seeded: {money.orders:,} orders, {money.refunds:,} refunds ({money.refunds / money.orders:.1%}; "
            f"{money.in_revenue:,} of orders in the revenue), {money.returns:,} returns "
            f"({money.returns / max(money.delivered, 1):.1%} of {money.delivered:,} delivered), "
            f"{money.ledger:,} ledger entries",
            file=sys.stderr,
        )
        production = environ | {
            "APP_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(48), "DEBUG": "false", "LOG_LEVEL": "WARNING"
        }  # fmt: skip
        with gunicorn_server(production) as base_url:
            token = bench_token(base_url, environ, role="staff")
            for name, path, query, _, target in REPORTS:
                url = f"{base_url}/api/v1/reports/{path}?{'&'.join(f'{k}={v}' for k, v in query.items())}"
                _get(url, token)
                median = statistics.median(_get(url, token) for _ in range(args.runs))
                results.append((name, median, floor_ms(engine, query, args.runs), target))
            cookie = staff_cookie(base_url, environ)
            for name, path, query in PAGES:
                url = f"{base_url}{path}?{urllib.parse.urlencode(query)}"
                page_ms(url, cookie)
                pages.append((name, statistics.median(page_ms(url, cookie) for _ in range(args.runs))))
        if args.explain:
            explain(engine, args.explain)
        engine.dispose()
    finally:
        if not args.existing:
            drop_bench_database(database_url)

    print(f"\n{args.orders:,} orders")
    print(f"{'report (12 months)':<26} {'median ms':>9} {'floor ms':>8} {'target':>7}")
    for name, median, floor, target in results:
        verdict = "meets" if median <= target else "MISSES"
        print(f"{name:<26} {median:9.0f} {floor:8.0f} {target:7.0f}  {verdict}")
    print(f"\nmedian of {args.runs} requests through gunicorn; floor: a bare SELECT sum(total) over the same orders")
    print(f"\n{'staff page':<26} {'server ms':>9} {'target':>7}")
    for name, median in pages:
        verdict = "meets" if median <= PAGE_TARGET_MS else "MISSES"
        print(f"{name:<26} {median:9.0f} {PAGE_TARGET_MS:7.0f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
