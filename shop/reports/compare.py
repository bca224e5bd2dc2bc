"""Comparison with an earlier range: the previous period of the same length, or the same dates a year before.

A revenue row is compared with the row at the same position of the earlier range (the first day, week or month of
one with the first of the other); a category with the same category. The change is relative, (now - then) / then, to
four places, and None where there was nothing then to compare with.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shop.reports.queries import ReportRange

COMPARISONS = ("previous_period", "previous_year")
CHANGE_PLACES = Decimal("0.0001")


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February: the 28th
        return day.replace(year=day.year - 1, day=28)


def comparison_range(report_range: ReportRange, compare: str) -> ReportRange:
    """The range `report_range` is compared with, in the same zone."""
    if compare == "previous_period":
        days = (report_range.end - report_range.start).days + 1
        return ReportRange(
            report_range.start - timedelta(days=days), report_range.start - timedelta(days=1), report_range.tz
        )
    if compare == "previous_year":
        return ReportRange(_year_before(report_range.start), _year_before(report_range.end), report_range.tz)
    raise ValueError(f"unknown comparison {compare!r}")


def change(now: Decimal | int, then: Decimal | int) -> Decimal | None:
    """(now - then) / then to four places, half up; None when `then` is zero (no change can be told)."""
    if then == 0:
        return None
    return ((Decimal(now) - Decimal(then)) / Decimal(then)).quantize(CHANGE_PLACES, ROUND_HALF_UP)
