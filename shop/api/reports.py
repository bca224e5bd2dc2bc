"""Revenue reports for staff, as JSON or as streamed CSV (docs/api.md, Reports)."""

from __future__ import annotations

import csv
import functools
import io
import json
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import marshmallow as ma
from flask import Response, current_app, request

from shop.api.policy import authenticated
from shop.api.schemas import Blueprint, InputSchema
from shop.db.replica import read_session, read_source, replica_read
from shop.models import Role
from shop.reports import fulfilment as fulfilment_figures
from shop.reports import queries
from shop.reports.attention import Limits, needs_attention
from shop.reports.compare import COMPARISONS, change, comparison_range
from shop.reports.queries import ReportRange

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="Revenue reports (staff)")

MAX_YEARS = 5
SHARE = Decimal("0.0001")
Built = tuple[list[dict[str, Any]], dict[str, Any]]  # a report's rows and what its answer says beside them
TEXT_CELL_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


@functools.lru_cache(maxsize=1024)  # bounded: the names come from requests
def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(name: str) -> None:
    if not _known_zone(name):
        raise ma.ValidationError("Unknown time zone; use an IANA name like Europe/Berlin.")


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


# a range's edges become instants in a time zone and the day after `end`: far from Python's year 1 and 9999
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9000, 12, 31)
IN_RANGE = ma.validate.Range(min=FIRST_DAY, max=LAST_DAY, error="Must be between {min} and {max}.")


class ReportQuerySchema(InputSchema):
    start = ma.fields.Date(
        required=True, validate=IN_RANGE, metadata={"description": "first day, inclusive (YYYY-MM-DD)"}
    )
    end = ma.fields.Date(required=True, validate=IN_RANGE, metadata={"description": "last day, inclusive (YYYY-MM-DD)"})
    tz = ma.fields.String(load_default="UTC", validate=_zone, metadata={"description": "IANA time zone"})
    format = ma.fields.String(validate=ma.validate.OneOf(["json", "csv"]), metadata={"description": "or Accept"})

    @ma.validates_schema
    def range_is_sensible(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return
        if start > end:
            raise ma.ValidationError("Must not be after end.", field_name="start")
        if end >= _years_later(start, MAX_YEARS):
            raise ma.ValidationError(f"The range may be at most {MAX_YEARS} years long.", field_name="end")


class ComparableQuerySchema(ReportQuerySchema):
    compare = ma.fields.String(
        validate=ma.validate.OneOf(COMPARISONS),
        metadata={"description": "previous_period (the same length just before) or previous_year"},
    )


def _granularity() -> ma.fields.String:
    return ma.fields.String(load_default="day", validate=ma.validate.OneOf(["day", "week", "month"]))


class RevenueQuerySchema(ComparableQuerySchema):
    granularity = _granularity()


class PeriodQuerySchema(ReportQuerySchema):
    granularity = _granularity()


class TopQuerySchema(ReportQuerySchema):
    limit = ma.fields.Integer(load_default=10, validate=ma.validate.Range(min=1, max=100))


def _range(arguments: dict[str, Any]) -> ReportRange:
    return ReportRange(arguments["start"], arguments["end"], arguments["tz"])


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:.2f}"


def _wants_csv(arguments: dict[str, Any]) -> bool:
    if "format" in arguments:
        return bool(arguments["format"] == "csv")
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(TEXT_CELL_STARTS):
        return "'" + value
    return value


def _csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """One CSV line at a time: the response is streamed, never joined into one string."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in (header, *rows):
        writer.writerow([_safe_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def answer(
    report: str,
    arguments: dict[str, Any],
    rows: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> Response:
    report_range = _range(arguments)
    # the moment the figures are true of, and where they were read (shop/db/replica.py): on the primary the report
    # transaction's start (its snapshot, in READ COMMITTED the first statement's; the few milliseconds between are
    # nothing to a report), on a replica the last commit it had replayed (or now, when it had replayed everything)
    source = read_source()
    as_of = source.as_of.isoformat()
    if _wants_csv(arguments):
        empty = _EMPTY_HEADERS[report] + (COMPARED_COLUMNS[report] if "compare" in arguments else [])
        header = list(rows[0]) if rows else empty
        filename = f"{report}_{report_range.start.isoformat()}_{report_range.end.isoformat()}.csv"
        return Response(
            _csv_lines(header, ([row[column] for column in header] for row in rows)),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
                "Report-As-Of": as_of, "Report-Source": source.name,
            },
        )  # fmt: skip
    body = {
        "report": report,
        "start": report_range.start.isoformat(),
        "end": report_range.end.isoformat(),
        "tz": report_range.tz,
        "as_of": as_of,
        "source": source.name,
        **(extra or {}),
        "rows": rows,
    }
    return Response(json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})


def _comparison(arguments: dict[str, Any]) -> dict[str, Any]:
    """The answer's description of its comparison range, if there is one."""
    if "compare" not in arguments:
        return {}
    earlier = comparison_range(_range(arguments), arguments["compare"])
    return {"compare": arguments["compare"], "compared_start": earlier.start.isoformat(),
            "compared_end": earlier.end.isoformat()}  # fmt: skip


def _change(value: Decimal | int, previous: Decimal | int) -> str | None:
    moved = change(value, previous)
    return None if moved is None else f"{moved:.4f}"


def _compared(row: dict[str, Any], now: Any, then: Any, period: str | None = None) -> dict[str, Any]:
    """`row` with the earlier figures and the changes (flat, so the CSV has them as columns too)."""
    orders, revenue, net = (then.orders, then.revenue, then.net) if then is not None else (0, Decimal(0), Decimal(0))
    extra: dict[str, Any] = {"previous_period": period} if period is not None or "period" in row else {}
    return row | extra | {
        "previous_orders": orders, "previous_revenue": _money(revenue), "previous_net": _money(net),
        "orders_change": _change(now.orders, orders), "revenue_change": _change(now.revenue, revenue),
        "net_change": _change(now.net, net),
    }  # fmt: skip


def _period(row: queries.RevenuePeriod) -> dict[str, Any]:
    return {
        "period": row.period.isoformat() if row.period else None,
        "orders": row.orders,
        "units": row.units,
        "revenue": _money(row.revenue),
        "average_order_value": _money(row.average_order_value),
        "unique_customers": row.unique_customers,
        "running_revenue": _money(row.running_revenue),
        "refunds": _money(row.refunds),
        "net": _money(row.net),
    }


_EMPTY_HEADERS: dict[str, list[str]] = {
    "revenue": [
        "period",
        "orders",
        "units",
        "revenue",
        "average_order_value",
        "unique_customers",
        "running_revenue",
        "refunds",
        "net",
    ],
    "revenue-by-category": ["category", "orders", "units", "revenue", "refunds", "net", "share"],
    "top-products": ["product_id", "sku", "name", "units", "revenue"],
    "top-customers": ["user_id", "email", "name", "orders", "revenue"],
    "customers": [
        "period",
        "customers",
        "new_customers",
        "returning_customers",
        "new_revenue",
        "returning_revenue",
    ],
    "cohorts": ["cohort", "month", "months_since", "customers", "revenue", "retention"],
    "fulfilment": ["period", "paid", "payment_p50", "payment_p90", "shipped", "shipment_p50", "shipment_p90"],
}
_CHANGES = ["previous_orders", "previous_revenue", "previous_net", "orders_change", "revenue_change", "net_change"]
# with ?compare=, after the report's own columns
COMPARED_COLUMNS: dict[str, list[str]] = {"revenue": ["previous_period", *_CHANGES], "revenue-by-category": _CHANGES}


def _report(path: str, schema: ma.Schema, summary: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """The decorators every report shares: staff only, strict query arguments, JSON or CSV."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        view.__doc__ = summary
        for decorator in (
            replica_read,
            blp.alt_response(422, description="An invalid argument; the problem names it"),
            blp.response(200, description="JSON (rows, plus totals for revenue) or CSV with a header row"),
            blp.arguments(schema, location="query", unknown=ma.RAISE),
            authenticated(Role.STAFF),
            blp.get(path),
        ):
            view = decorator(view)
        return view

    return decorate


@_report("/revenue", RevenueQuerySchema(), "Revenue per day, ISO week or month of the range, empty periods included.")
def revenue(arguments: dict[str, Any]) -> Response:
    return answer("revenue", arguments, *revenue_report(arguments))


def revenue_report(arguments: dict[str, Any]) -> Built:
    session, granularity = read_session(), arguments["granularity"]
    periods, totals = queries.revenue(session, _range(arguments), granularity)
    rows = [_period(period) for period in periods]
    total = _period(totals)
    del total["period"], total["running_revenue"]
    if "compare" in arguments:
        earlier, earlier_totals = queries.revenue(
            session, comparison_range(_range(arguments), arguments["compare"]), granularity
        )
        rows = [
            _compared(row, period, then, then.period.isoformat() if then is not None and then.period else None)
            for row, period, then in zip(rows, periods, _by_position(earlier, len(periods)), strict=True)
        ]
        total = _compared(total, totals, earlier_totals)
    return rows, {"granularity": granularity, **_comparison(arguments), "totals": total}


def _by_position(earlier: list[queries.RevenuePeriod], count: int) -> list[queries.RevenuePeriod | None]:
    """The earlier range's periods, one for each of this range's (None where it has fewer)."""
    return [earlier[index] if index < len(earlier) else None for index in range(count)]


@_report(
    "/revenue-by-category", ComparableQuerySchema(), "Revenue by product category, largest first; shares sum to 1."
)
def revenue_by_category(arguments: dict[str, Any]) -> Response:
    return answer("revenue-by-category", arguments, *revenue_by_category_report(arguments))


def revenue_by_category_report(arguments: dict[str, Any]) -> Built:
    session = read_session()
    categories = queries.revenue_by_category(session, _range(arguments))
    if "compare" in arguments:
        earlier = queries.revenue_by_category(session, comparison_range(_range(arguments), arguments["compare"]))
        # a category sold then and not now is a row too (with zeros), after the others: nothing vanishes
        known = {row.category for row in categories}
        gone = [queries.CategoryRevenue(row.category, 0, 0, Decimal(0), Decimal(0), Decimal(0), Decimal(0))
                for row in earlier if row.category not in known]  # fmt: skip
        then = {row.category: row for row in earlier}
        rows = [_compared(_category(row), row, then.get(row.category)) for row in [*categories, *gone]]
    else:
        rows = [_category(row) for row in categories]
    return rows, _comparison(arguments)


def _category(row: queries.CategoryRevenue) -> dict[str, Any]:
    return {
        "category": row.category,
        "orders": row.orders,
        "units": row.units,
        "revenue": _money(row.revenue),
        "refunds": _money(row.refunds),
        "net": _money(row.net),
        "share": f"{row.share:.4f}",
    }


class AttentionQuerySchema(InputSchema):
    format = ma.fields.String(validate=ma.validate.OneOf(["json", "csv"]), metadata={"description": "or Accept"})


ATTENTION_COLUMNS = [
    "kind", "id", "user_id", "order_id", "sku", "name", "stock", "total", "amount", "currency", "provider",
    "notification_kind",
    "reference", "flag", "since",
]  # fmt: skip


@blp.get("/attention")
@authenticated(Role.STAFF)
@blp.arguments(AttentionQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, description="JSON (each list's count and oldest items) or CSV (one row an item, with its kind)")
@blp.alt_response(422, description="An invalid argument; the problem names it")
@replica_read
def attention(arguments: dict[str, Any]) -> Response:
    """What needs a person now: orders pending past half the payment window, paid orders not shipped within
    SHIP_WITHIN_HOURS, products at or under LOW_STOCK_THRESHOLD, payment notifications flagged in the last day."""
    session = read_session()
    limits = Limits.of(current_app.config)
    found = needs_attention(session, limits)
    source = read_source()
    as_of = source.as_of.isoformat()
    if _wants_csv(arguments):
        rows = ([{"kind": group.kind} | _plain(item) for item in group.items] for group in found)
        lines = _csv_lines(ATTENTION_COLUMNS, ([row.get(c) for c in ATTENTION_COLUMNS] for g in rows for row in g))
        headers = {"Content-Disposition": 'attachment; filename="attention.csv"', "Cache-Control": "no-store",
                   "Report-As-Of": as_of, "Report-Source": source.name}  # fmt: skip
        return Response(lines, mimetype="text/csv", headers=headers)
    body = {
        "report": "attention",
        "as_of": as_of,
        "source": source.name,
        "limits": {
            "pending_after_minutes": limits.pending_seconds / 60,
            "ship_within_hours": limits.ship_seconds / 3600,
            "low_stock_threshold": limits.low_stock,
        },
        "lists": {
            group.kind: {"count": group.count, "items": [_plain(item) for item in group.items]} for group in found
        },
    }
    return Response(json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """Money as strings with two places, moments in ISO 8601."""
    return {
        key: _money(value)
        if isinstance(value, Decimal)
        else value.isoformat()
        if isinstance(value, datetime)
        else value
        for key, value in item.items()
    }


@_report("/top-products", TopQuerySchema(), "The products that brought in the most revenue.")
def top_products(arguments: dict[str, Any]) -> Response:
    return answer("top-products", arguments, *top_products_report(arguments))


def top_products_report(arguments: dict[str, Any]) -> Built:
    rows = [
        {"product_id": r.product_id, "sku": r.sku, "name": r.name, "units": r.units, "revenue": _money(r.revenue)}
        for r in queries.top_products(read_session(), _range(arguments), arguments["limit"])
    ]
    return rows, {"limit": arguments["limit"]}


@_report("/top-customers", TopQuerySchema(), "The customers who spent the most.")
def top_customers(arguments: dict[str, Any]) -> Response:
    return answer("top-customers", arguments, *top_customers_report(arguments))


def top_customers_report(arguments: dict[str, Any]) -> Built:
    rows = [
        {"user_id": r.user_id, "email": r.email, "name": r.name, "orders": r.orders, "revenue": _money(r.revenue)}
        for r in queries.top_customers(read_session(), _range(arguments), arguments["limit"])
    ]
    return rows, {"limit": arguments["limit"]}


def _customers(row: queries.CustomerPeriod) -> dict[str, Any]:
    return {
        "period": row.period.isoformat() if row.period else None,
        "customers": row.customers,
        "new_customers": row.new_customers,
        "returning_customers": row.returning_customers,
        "new_revenue": _money(row.new_revenue),
        "returning_revenue": _money(row.returning_revenue),
    }


@_report(
    "/customers",
    PeriodQuerySchema(),
    "New and returning customers per period and what each spent; the totals add the repeat-purchase rate.",
)
def customers(arguments: dict[str, Any]) -> Response:
    return answer("customers", arguments, *customers_report(arguments))


def customers_report(arguments: dict[str, Any]) -> Built:
    periods, totals = queries.customers(read_session(), _range(arguments), arguments["granularity"])
    total = _customers(totals)
    del total["period"]
    total |= {"repeat_customers": totals.repeat_customers, "repeat_rate": f"{totals.repeat_rate:.4f}"}
    return [_customers(period) for period in periods], {"granularity": arguments["granularity"], "totals": total}


@_report(
    "/cohorts",
    ReportQuerySchema(),
    "Monthly cohorts of the range's new customers: for each month since their first order, who ordered and spent.",
)
def cohorts(arguments: dict[str, Any]) -> Response:
    return answer("cohorts", arguments, *cohorts_report(arguments))


def cohorts_report(arguments: dict[str, Any]) -> Built:
    cells = queries.cohorts(read_session(), _range(arguments))
    sizes = {cell.cohort: cell.customers for cell in cells if cell.months_since == 0}
    rows = [
        {
            "cohort": cell.cohort.isoformat(),
            "month": cell.month.isoformat(),
            "months_since": cell.months_since,
            "customers": cell.customers,
            "revenue": _money(cell.revenue),
            # of the cohort's customers, the share who ordered this month
            "retention": f"{(Decimal(cell.customers) / sizes[cell.cohort]).quantize(SHARE, ROUND_HALF_UP)}",
        }
        for cell in cells
    ]
    return rows, {}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _fulfilment(row: fulfilment_figures.FulfilmentPeriod) -> dict[str, Any]:
    return {
        "period": row.period.isoformat() if row.period else None,
        "paid": row.paid,
        "payment_p50": _seconds(row.payment_p50),
        "payment_p90": _seconds(row.payment_p90),
        "shipped": row.shipped,
        "shipment_p50": _seconds(row.shipment_p50),
        "shipment_p90": _seconds(row.shipment_p90),
    }


@_report(
    "/fulfilment",
    PeriodQuerySchema(),
    "How long orders placed in each period waited for payment and for shipment (seconds, median and 90th percentile).",
)
def fulfilment(arguments: dict[str, Any]) -> Response:
    return answer("fulfilment", arguments, *fulfilment_report(arguments))


def fulfilment_report(arguments: dict[str, Any]) -> Built:
    periods, totals = fulfilment_figures.fulfilment(read_session(), _range(arguments), arguments["granularity"])
    total = _fulfilment(totals)
    del total["period"]
    return [_fulfilment(period) for period in periods], {"granularity": arguments["granularity"], "totals": total}


# Every report with a range, by name: its arguments and its rows as the API answers them (the staff pages show and
# export exactly these, so the page and the API cannot disagree).
REPORTS: dict[str, tuple[ma.Schema, Callable[[dict[str, Any]], Built]]] = {
    "revenue": (RevenueQuerySchema(), revenue_report),
    "revenue-by-category": (ComparableQuerySchema(), revenue_by_category_report),
    "top-products": (TopQuerySchema(), top_products_report),
    "top-customers": (TopQuerySchema(), top_customers_report),
    "customers": (PeriodQuerySchema(), customers_report),
    "cohorts": (ReportQuerySchema(), cohorts_report),
    "fulfilment": (PeriodQuerySchema(), fulfilment_report),
}
