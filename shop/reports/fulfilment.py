"""The fulfilment report: the waits for payment and for shipment, per period of placement and over the range.

Its percentiles are exact, as PostgreSQL's percentile_cont computes them, which takes every wait sorted, and an
ordered-set aggregate sorts in one process. So the report is one statement of many UNION ALL branches, one per
period (fulfilment_period.sql, shop/reports/branches.py) and one for each wait over the whole range
(fulfilment_totals.sql), which PostgreSQL shares out among its parallel workers: one snapshot, and the sorts side
by side instead of one after another.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.reports.branches import branch_parameters, branches
from shop.reports.queries import ReportRange, report_periods, statement_body

RANGE_PAYMENT, RANGE_SHIPMENT = 0, -1  # the positions of fulfilment_totals.sql's rows


@dataclass(frozen=True)
class FulfilmentPeriod:
    period: date | None  # None: the whole range
    paid: int
    payment_p50: float | None  # seconds from placement to payment
    payment_p90: float | None
    shipped: int
    shipment_p50: float | None  # seconds from payment to shipment
    shipment_p90: float | None


@functools.cache
def report_statement(branch_periods: tuple[int, ...]) -> sa.TextClause:
    """fulfilment_period.sql once per branch, then fulfilment_totals.sql, as the branches of one UNION ALL."""
    periods = branches(statement_body("fulfilment_period"), branch_periods)
    return sa.text(f"{periods}\nUNION ALL\n{statement_body('fulfilment_totals')}")


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
    branch_periods, branch_values = branch_parameters(parameters["starts"])
    return report_statement(branch_periods), parameters | branch_values


def _pair(values: Sequence[float] | None) -> tuple[float | None, float | None]:
    """percentile_cont's answer for [0.5, 0.9], or NULL when there were no waits."""
    return (values[0], values[1]) if values is not None else (None, None)
