"""The fulfilment report: the waits for payment and for shipment, per period of placement and over the range.

Its percentiles are exact, as PostgreSQL's percentile_cont computes them, which takes every wait sorted, and an
ordered-set aggregate sorts in one process. So the report is one statement of many UNION ALL branches, one per
period (fulfilment_period.sql) and one for each wait over the whole range (fulfilment_totals.sql), which PostgreSQL
shares out among its parallel workers: one snapshot, and the sorts side by side instead of one after another.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.reports.queries import ReportRange, report_periods

RANGE_PAYMENT, RANGE_SHIPMENT = 0, -1  # the positions of fulfilment_totals.sql's rows
# Branches of the statement at most: a year by month is a branch a month; a longer list of periods (five years by
# day is 1,827) is cut into this many runs of consecutive periods, so the statement stays small to plan.
MOST_BRANCHES = 24


@dataclass(frozen=True)
class FulfilmentPeriod:
    period: date | None  # None: the whole range
    paid: int
    payment_p50: float | None  # seconds from placement to payment
    payment_p90: float | None
    shipped: int
    shipment_p50: float | None  # seconds from payment to shipment
    shipment_p90: float | None


def _sql(name: str) -> str:
    text = files("shop.reports").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("--"))


ONE_PERIOD = "CAST(:first_$N AS integer)"
RUN_OF_PERIODS = "CAST(:first_$N AS integer) - 1 + width_bucket(o.created_at, CAST(:starts_$N AS timestamptz[]))"


@functools.cache
def report_statement(branch_periods: tuple[int, ...]) -> sa.TextClause:
    """fulfilment_period.sql once per branch (of so many periods each), numbered, then fulfilment_totals.sql, as
    the branches of one UNION ALL."""
    template = _sql("fulfilment_period")
    branches = [
        template.replace("$POSITION", ONE_PERIOD if periods == 1 else RUN_OF_PERIODS).replace("$N", str(number))
        for number, periods in enumerate(branch_periods, 1)
    ]
    return sa.text("\nUNION ALL\n".join([*branches, _sql("fulfilment_totals")]))


def fulfilment(
    session: Session, report_range: ReportRange, granularity: str
) -> tuple[list[FulfilmentPeriod], FulfilmentPeriod]:
    """The waits for payment and for shipment per period of placement, and over the whole range."""
    parameters = report_periods(session, report_range, granularity)
    rows = {row[0]: row[1:] for row in session.execute(*report_query(parameters))}
    periods = []
    for position, day in enumerate(parameters["periods"], 1):
        paid, payment, shipped, shipment = rows.get(position, (0, None, 0, None))  # no row: no paid orders
        periods.append(FulfilmentPeriod(day, paid, *_pair(payment), shipped, *_pair(shipment)))
    paid, payment, _, _ = rows[RANGE_PAYMENT]
    _, _, shipped, shipment = rows[RANGE_SHIPMENT]
    return periods, FulfilmentPeriod(None, paid, *_pair(payment), shipped, *_pair(shipment))


def report_query(parameters: dict[str, Any]) -> tuple[sa.TextClause, dict[str, Any]]:
    """The statement over the periods of report_periods() and its parameters: each branch's periods."""
    starts: list[datetime] = parameters["starts"]
    size = math.ceil(len(starts) / MOST_BRANCHES)  # periods a branch
    runs = [starts[first : first + size] for first in range(0, len(starts), size)]
    branches: dict[str, Any] = {}
    for number, run in enumerate(runs, 1):
        after = number * size  # the index of the next branch's first period
        branches |= {
            f"starts_{number}": run,
            f"first_{number}": (number - 1) * size + 1,
            f"until_{number}": starts[after] if after < len(starts) else None,  # the last ends with the range
        }
    return report_statement(tuple(len(run) for run in runs)), parameters | branches


def _pair(values: Sequence[float] | None) -> tuple[float | None, float | None]:
    """percentile_cont's answer for [0.5, 0.9], or NULL when there were no waits."""
    return (values[0], values[1]) if values is not None else (None, None)
