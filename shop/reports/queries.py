"""The revenue reports: the `.sql` files of this package, run with bound parameters only, never formatted.

Money stays `Decimal` from PostgreSQL to the response; only the API turns it into strings with two places.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shop.errors import ValidationFailed
from shop.models.order import COUNTED_LIST
from shop.reports.branches import branch_parameters, branches

CENT = Decimal("0.01")
SHARE_PLACES = 4
INVALID_PARAMETER_VALUE = "22023"  # PostgreSQL's answer to a time zone it does not know


@functools.cache
def statement(name: str) -> sa.TextClause:
    """A report's SQL, read once from the package (works from a wheel or a zip as well as from a checkout).

    `$COUNTED_STATUSES` in a file is the list of statuses that count as revenue (shop/models/order.py), our own
    constant, and `$SUMMARY_SPANS` the common table expressions of summary_spans.sql: the substitutions made, never
    with input."""
    text = files("shop.reports").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
    if "$SUMMARY_SPANS" in text:
        text = text.replace("$SUMMARY_SPANS", statement_body("summary_spans"))
    return sa.text(text.replace("$COUNTED_STATUSES", COUNTED_LIST))


def statement_body(name: str) -> str:
    """A report's SQL without its header comment, to be put together with others (shop/reports/branches.py)."""
    return "\n".join(line for line in statement(name).text.splitlines() if not line.startswith("--"))


@functools.cache
def branched_statement(name: str, branch_periods: tuple[int, ...]) -> sa.TextClause:
    """A report's `.sql` with its per_period made of `<name>_period.sql`'s branches (shop/reports/branches.py)."""
    per_period = branches(statement_body(f"{name}_period"), branch_periods)
    return sa.text(statement(name).text.replace("$PER_PERIOD", per_period))


def branched_query(name: str, parameters: dict[str, Any]) -> tuple[sa.TextClause, dict[str, Any]]:
    """A report over the periods of report_periods() whose per_period is branches: its statement and parameters."""
    branch_periods, branch_values = branch_parameters(parameters["starts"])
    return branched_statement(name, branch_periods), parameters | branch_values


@dataclass(frozen=True)
class ReportRange:
    """Local dates, both inclusive, in an IANA time zone."""

    start: date
    end: date
    tz: str

    def parameters(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "tz": self.tz}


@dataclass(frozen=True)
class RevenuePeriod:
    period: date | None  # None: the totals of the whole range
    orders: int
    units: int
    revenue: Decimal
    unique_customers: int
    running_revenue: Decimal | None
    refunds: Decimal  # paid out in the period (the ledger), whichever period its order was placed in
    net: Decimal  # revenue - refunds

    @property
    def average_order_value(self) -> Decimal:
        return average_order_value(self.revenue, self.orders)


def average_order_value(revenue: Decimal, orders: int) -> Decimal:
    """Revenue per order to the cent, half up; 0.00 with no orders."""
    return (revenue / orders).quantize(CENT, ROUND_HALF_UP) if orders else Decimal("0.00")


@dataclass(frozen=True)
class CategoryRevenue:
    category: str
    orders: int
    units: int  # net of refunded units
    revenue: Decimal
    refunds: Decimal
    net: Decimal
    share: Decimal  # of the net


@dataclass(frozen=True)
class ProductRevenue:
    product_id: int
    sku: str
    name: str
    units: int
    revenue: Decimal


@dataclass(frozen=True)
class CustomerRevenue:
    user_id: int
    email: str
    name: str
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class CustomerPeriod:
    period: date | None  # None: the totals of the whole range
    customers: int
    new_customers: int
    returning_customers: int
    new_revenue: Decimal
    returning_revenue: Decimal
    repeat_customers: int | None  # the totals only: customers of the range with two or more orders by its end

    @property
    def repeat_rate(self) -> Decimal | None:
        if self.repeat_customers is None:
            return None
        if not self.customers:
            return Decimal("0.0000")
        return (Decimal(self.repeat_customers) / self.customers).quantize(Decimal("0.0001"), ROUND_HALF_UP)


@dataclass(frozen=True)
class CohortCell:
    cohort: date  # the month (its part of the range) of the cohort's first orders
    month: date  # a month of the range, the cohort's or later
    months_since: int
    customers: int
    revenue: Decimal


# For this transaction only: JIT compilation costs more than it saves on queries of well under a second (it took
# 235 of 829 ms of revenue by month on a million orders); aggregates over a year of lines should not spill; and
# index pages are costed as the memory or SSD reads they are (the default, 4, is a spinning disk's), so the
# covering indexes are read instead of the whole order_items table (482 ms against about 300, measured).
REPORT_SETTINGS = sa.text(
    "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true),"
    " set_config('random_page_cost', '1.1', true)"
)


def report_rows(
    session: Session, query: str | sa.TextClause, parameters: dict[str, Any], *, settings: bool = True
) -> list[tuple[Any, ...]]:
    """The rows of a report's query: a `.sql` file's name, or a statement put together from several.
    `settings=False`: REPORT_SETTINGS already hold in this transaction (a report of two statements)."""
    try:
        if settings:
            session.execute(REPORT_SETTINGS)
        return [
            tuple(row) for row in session.execute(statement(query) if isinstance(query, str) else query, parameters)
        ]
    except DBAPIError as error:
        # the zone passed Python's check but this PostgreSQL's tz database does not have it
        if getattr(error.orig, "pgcode", None) == INVALID_PARAMETER_VALUE:
            session.rollback()
            raise ValidationFailed({"tz": ["Unknown time zone."]}) from None
        raise


def revenue(session: Session, report_range: ReportRange, granularity: str) -> tuple[list[RevenuePeriod], RevenuePeriod]:
    """One row per period of the range (empty ones too), and the totals.

    Two statements: the periods and where each begins come first, computed by PostgreSQL in the zone; they go
    into the second as literals. The second reads the summaries (revenue_summarized.sql) when every period starts
    and ends on a UTC quarter hour, as local midnights do in every zone today; else (a zone's local mean time before
    1900-something) each period's orders, a scan of its own (revenue.sql, shop/reports/branches.py).
    """
    query, parameters = summarized_or_branched("revenue", report_periods(session, report_range, granularity))
    rows = [RevenuePeriod(*row) for row in report_rows(session, query, parameters, settings=False)]
    return rows[:-1], rows[-1]


QUARTER_HOUR_SECONDS = 900


def summarized_or_branched(name: str, parameters: dict[str, Any]) -> tuple[str | sa.TextClause, dict[str, Any]]:
    """A report over report_periods()' periods: `<name>_summarized.sql` when they are all made of UTC quarter hours,
    else `<name>.sql` with a branch per period reading the orders; its statement and parameters."""
    if on_quarter_hours(parameters["starts"], parameters["until"]):
        return f"{name}_summarized", parameters
    return branched_query(name, parameters)


def on_quarter_hours(starts: list[datetime], until: datetime) -> bool:
    """Do all these moments begin UTC quarter hours (the summaries' finest buckets)?"""
    return all(moment.timestamp() % QUARTER_HOUR_SECONDS == 0 for moment in [*starts, until])


def report_periods(session: Session, report_range: ReportRange, granularity: str) -> dict[str, Any]:
    """The range's periods and where each begins (revenue_periods.sql), and where the range ends, as parameters of
    a report over them."""
    parameters = report_range.parameters() | {"granularity": granularity}
    ((periods, starts, until),) = report_rows(session, "revenue_periods", parameters)
    return report_range.parameters() | {"periods": periods, "starts": starts, "until": until}


def customers(
    session: Session, report_range: ReportRange, granularity: str
) -> tuple[list[CustomerPeriod], CustomerPeriod]:
    """New and returning customers per period, and the totals with the repeat customers: from the summaries, or the
    orders where a period is not made of UTC quarter hours (as revenue())."""
    query, parameters = summarized_or_branched("customers", report_periods(session, report_range, granularity))
    rows = [CustomerPeriod(*row) for row in report_rows(session, query, parameters, settings=False)]
    return rows[:-1], rows[-1]


def new_customers(session: Session, report_range: ReportRange) -> int:
    """Customers whose first counted order ever was placed in the range."""
    ((count,),) = report_rows(session, "new_customers", report_range.parameters())
    return int(count)


def cohorts(session: Session, report_range: ReportRange) -> list[CohortCell]:
    """Each monthly cohort of the range's new customers, month by month (months nobody ordered in are left out)."""
    parameters = report_periods(session, report_range, "month")
    months: list[date] = parameters["periods"]
    cells = []
    for cohort, month, customers_then, revenue_then in report_rows(session, "cohorts", parameters, settings=False):
        first, then = months[cohort - 1], months[month - 1]
        since = (then.year - first.year) * 12 + then.month - first.month
        cells.append(CohortCell(first, then, since, customers_then, revenue_then))
    return cells


def revenue_by_category(session: Session, report_range: ReportRange) -> list[CategoryRevenue]:
    rows = report_rows(session, "revenue_by_category", report_range.parameters())
    return [
        CategoryRevenue(category, orders, units, revenue, refunds, net, share)
        for (category, orders, units, revenue, refunds, net), share in zip(
            rows, shares([max(row[5], Decimal(0)) for row in rows]), strict=True
        )
    ]


def top_products(session: Session, report_range: ReportRange, limit: int) -> list[ProductRevenue]:
    return [
        ProductRevenue(*row)
        for row in report_rows(session, "top_products", report_range.parameters() | {"limit": limit})
    ]


# top_customers.sql: the biggest spenders ever tried first, and the most customers whose orders it reads one by one
# before it reads the range's orders all at once instead (about as costly at ten million orders)
TOP_CUSTOMERS_PROBE = 4
MOST_CANDIDATES = 25_000


def top_customers_parameters(limit: int, most_candidates: int = MOST_CANDIDATES) -> dict[str, int]:
    """top_customers.sql's parameters besides the range's."""
    return {"limit": limit, "probe": max(TOP_CUSTOMERS_PROBE * limit, 100), "most_candidates": most_candidates}


def top_customers(session: Session, report_range: ReportRange, limit: int) -> list[CustomerRevenue]:
    parameters = report_range.parameters() | top_customers_parameters(limit)
    return [CustomerRevenue(*row) for row in report_rows(session, "top_customers", parameters)]


def shares(amounts: list[Decimal]) -> list[Decimal]:
    """Each amount's share of their sum, to four places, adding up to exactly 1 (largest remainders round up)."""
    total = sum(amounts, Decimal(0))
    if not amounts or total == 0:
        return [Decimal("0.0000") for _ in amounts]
    scale = 10**SHARE_PLACES
    exact = [amount * scale / total for amount in amounts]
    floors = [int(value) for value in exact]  # amounts are never negative: int() is the floor
    short = scale - sum(floors)
    for index in sorted(range(len(exact)), key=lambda i: (floors[i] - exact[i], i))[:short]:
        floors[index] += 1
    return [Decimal(value).scaleb(-SHARE_PLACES) for value in floors]
