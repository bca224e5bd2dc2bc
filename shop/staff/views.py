"""The staff pages: sign-in, the overview, sales, customers, what needs attention, and each order with the staff
actions the API allows. Every figure is a report's rows as the API answers them (shop/api/reports.py, REPORTS)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from shop.api.reports import REPORTS, answer
from shop.db.replica import read_session, read_source, replica_read
from shop.errors import DomainError, TooManyAttempts, flatten_messages, headers_of, status_of
from shop.reports import queries
from shop.reports.attention import Limits, needs_attention
from shop.reports.compare import change
from shop.reports.queries import ReportRange, average_order_value
from shop.services.order_documents import order_document
from shop.services.order_lifecycle import Action, transition
from shop.services.order_reads import read_order
from shop.services.payments import record_manual_payment
from shop.staff import session as staff_session
from shop.staff.charts import bar_chart, line_chart

blp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates", static_folder="static")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DEFAULT_DAYS = 30
ZONES = (
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Sydney",
)
ACTIONS = {"ship": Action.SHIP, "deliver": Action.DELIVER, "cancel": Action.CANCEL}
NEXT_ACTIONS = {"paid": ("ship", "cancel"), "shipped": ("deliver",), "pending": ("cancel",)}


class BadRange(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("bad range")
        self.errors = errors


@blp.before_request
def guard() -> BaseResponse | None:
    """Anonymous callers go to sign-in, signed-in customers get a 403; every POST carries the CSRF token."""
    g.page_started = time.perf_counter()
    if request.endpoint in {"staff.login", "staff.static"}:
        if request.method == "POST":
            staff_session.check_csrf()
        return None
    principal = staff_session.signed_in()
    if principal is None:
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    if not staff_session.is_staff(principal):
        abort(403, "These pages are for staff accounts.")
    if request.method == "POST":
        staff_session.check_csrf()
    g.staff = principal
    return None


@blp.after_request
def page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if "page_started" in g:  # the page's own time on the server, for browsers' developer tools and the benchmark
        response.headers["Server-Timing"] = f"page;dur={(time.perf_counter() - g.page_started) * 1000:.1f}"
    if request.endpoint != "staff.static":
        response.headers["Cache-Control"] = "no-store"  # one account's view of the business
    return response


@blp.app_template_global()
def csrf_token() -> str:
    return staff_session.csrf_token()


@blp.app_template_filter()
def duration(seconds: float | None) -> str:
    """A wait for people to read: 45 s, 12.5 min, 26.3 h, 3.1 days."""
    if seconds is None:
        return "-"
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size * 1.5 or (unit == "min" and seconds >= 90):
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@blp.app_template_filter()
def grouped(value: object) -> str:
    """A figure as the API gives it, with thousands separated for reading: 532354070.05 -> 532,354,070.05."""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value
        places = len(value.partition(".")[2])
        return f"{number:,.{places}f}"
    return str(value)


def _label(period: str, granularity: str) -> str:
    """A period's short name under a chart: 2025-12 for a month, 03-09 for a day or a week's Monday."""
    return period[:7] if granularity == "month" else period[5:]


@blp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return render_template("staff/error.html", status=status, message=error.description), status


@blp.errorhandler(DomainError)
def domain_error(error: DomainError) -> tuple[str, int]:
    status = status_of(error)
    return render_template("staff/error.html", status=status, message=error.detail), status


# --- signing in and out -------------------------------------------------------------------------------------------


@blp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = staff_session.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("staff/login.html", next=target, email="", message=None)
    email, password = request.form.get("email", "").strip(), request.form.get("password", "")
    if not email or not password:
        return render_template(
            "staff/login.html", next=target, email=email, message="Enter your email and password."
        ), 422
    try:
        account = staff_session.sign_in(email, password)
    except DomainError as error:  # wrong credentials (401) or too many attempts (429, with Retry-After)
        status = status_of(error)
        message = "Wrong email or password." if status == 401 else error.detail
        headers = headers_of(error) if isinstance(error, TooManyAttempts) else {}  # Retry-After
        return render_template("staff/login.html", next=target, email=email, message=message), status, headers
    if not staff_session.is_staff(account):
        abort(403, "These pages are for staff accounts.")
    return redirect(target or url_for("staff.overview"))


@blp.post("/logout")
def logout() -> BaseResponse:
    staff_session.sign_out()
    return redirect(url_for("staff.login"))


# --- the range every report page shares ---------------------------------------------------------------------------


def _report_arguments(name: str, form: Mapping[str, str], **fixed: Any) -> dict[str, Any]:
    """`form`'s range for report `name`, loaded by the API's own schema (the same rules and messages)."""
    schema = REPORTS[name][0]
    raw = {key: value for key, value in form.items() if key in schema.fields and value != ""} | fixed
    try:
        loaded: dict[str, Any] = schema.load(raw)
    except ma.ValidationError as error:
        raise BadRange(flatten_messages(error.messages)) from None
    return loaded


def _range_form() -> dict[str, str]:
    """The page's range as the form shows it: the query's, else the last 30 days in UTC by day, compared with the
    30 before."""
    tz = request.args.get("tz") or "UTC"
    try:
        today = datetime.now(ZoneInfo(tz)).date()
    except (ValueError, KeyError):
        today = datetime.now(ZoneInfo("UTC")).date()
    defaults = {
        "start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "end": today.isoformat(),
        "tz": "UTC",
        "granularity": "day",
        "compare": "previous_period",
    }
    return defaults | {key: request.args[key] for key in defaults if key in request.args}


def _report(name: str, form: Mapping[str, str], **fixed: Any) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The report's rows and extras, and the link to its CSV."""
    arguments = _report_arguments(name, form, **fixed)
    rows, extra = REPORTS[name][1](arguments)
    link = {key: str(value) for key, value in form.items() if key in REPORTS[name][0].fields} | {
        key: str(value) for key, value in fixed.items()
    }
    return rows, extra, f"{url_for('staff.export', name=name)}?{urlencode(link)}"


def _page(template: str, build: Any) -> Any:
    form = _range_form()
    if form.get("compare") == "none":
        form.pop("compare")
    try:
        context = build(form)
    except BadRange as bad:
        return render_template(template, form=form, errors=bad.errors, zones=ZONES), 422
    source = read_source()
    as_of = source.as_of.isoformat(timespec="seconds")
    return render_template(template, form=form, errors={}, zones=ZONES, as_of=as_of, read_from=source.name, **context)


@blp.get("/export/<name>.csv")
@replica_read
def export(name: str) -> Response:
    """A report as CSV, exactly as the API's `format=csv` answers it."""
    if name not in REPORTS:
        abort(404, "No such report.")
    schema, build = REPORTS[name]
    try:
        arguments = schema.load({key: value for key, value in request.args.items() if key in schema.fields})
    except ma.ValidationError as error:
        abort(
            422,
            "; ".join(f"{field}: {' '.join(messages)}" for field, messages in flatten_messages(error.messages).items()),
        )
    return answer(name, arguments | {"format": "csv"}, *build(arguments))


# --- pages -------------------------------------------------------------------------------------------------------


def _money(text: str | None) -> Decimal:
    return Decimal(text) if text is not None else Decimal(0)


def _kpi(label: str, key: str, now: Any, then: Any) -> dict[str, Any]:
    moved = None if then is None else change(Decimal(now), Decimal(then))
    return {"label": label, "key": key, "value": now, "previous": then,
            "change": None if moved is None else f"{moved:.4f}"}  # fmt: skip


@blp.get("/")
@replica_read
def overview() -> Any:
    def build(form: dict[str, str]) -> dict[str, Any]:
        rows, extra, csv_link = _report("revenue", form)
        totals = extra["totals"]
        compared = "compare" in extra
        # new customers of the range, and of the range the revenue report compared it with (its answer names it)
        session = read_session()
        arguments = _report_arguments("revenue", form)
        new_customers = queries.new_customers(
            session, ReportRange(arguments["start"], arguments["end"], arguments["tz"])
        )
        previous_new = previous_aov = None
        if compared:
            start, end = date.fromisoformat(extra["compared_start"]), date.fromisoformat(extra["compared_end"])
            earlier = ReportRange(start, end, arguments["tz"])
            previous_new = queries.new_customers(session, earlier)
            previous_aov = average_order_value(Decimal(totals["previous_revenue"]), totals["previous_orders"])
        kpis = [
            _kpi("Revenue", "revenue", totals["revenue"], totals.get("previous_revenue")),
            _kpi("Orders", "orders", totals["orders"], totals.get("previous_orders")),
            _kpi(
                "Average order value",
                "average_order_value",
                totals["average_order_value"],
                None if previous_aov is None else f"{previous_aov:.2f}",
            ),
            _kpi("New customers", "new_customers", new_customers, previous_new),
        ]
        series = [("This range", [_money(row["revenue"]) for row in rows])]
        if compared:
            series.append(("Compared range", [_money(row["previous_revenue"]) for row in rows]))
        labels = [_label(row["period"], extra["granularity"]) for row in rows]
        chart = line_chart("Revenue per period", labels, series)
        return {
            "kpis": kpis,
            "rows": rows,
            "extra": extra,
            "chart": chart,
            "csv_link": csv_link,
        }

    return _page("staff/overview.html", build)


@blp.get("/sales")
@replica_read
def sales() -> Any:
    def build(form: dict[str, str]) -> dict[str, Any]:
        categories, category_extra, categories_link = _report("revenue-by-category", form)
        products, _, products_link = _report("top-products", form, limit=10)
        customers, _, customers_link = _report("top-customers", form, limit=10)
        chart = bar_chart("Net revenue by category", [(row["category"], _money(row["net"])) for row in categories])
        return {
            "categories": categories,
            "category_extra": category_extra,
            "chart": chart,
            "categories_link": categories_link,
            "products": products,
            "products_link": products_link,
            "customers": customers,
            "customers_link": customers_link,
        }

    return _page("staff/sales.html", build)


@blp.get("/customers")
@replica_read
def customers() -> Any:
    def build(form: dict[str, str]) -> dict[str, Any]:
        rows, extra, link = _report("customers", form)  # each report's schema takes the fields it has
        cells, _, cohorts_link = _report("cohorts", form)
        chart = line_chart(
            "New and returning customers per period",
            [_label(row["period"], extra["granularity"]) for row in rows],
            [
                ("New customers", [Decimal(row["new_customers"]) for row in rows]),
                ("Returning customers", [Decimal(row["returning_customers"]) for row in rows]),
            ],
        )
        cohorts: dict[str, dict[int, dict[str, Any]]] = {}
        for cell in cells:
            cohorts.setdefault(cell["cohort"], {})[cell["months_since"]] = cell
        width = max((since for grid in cohorts.values() for since in grid), default=-1) + 1
        return {
            "rows": rows,
            "extra": extra,
            "link": link,
            "chart": chart,
            "cohorts": cohorts,
            "cohort_months": range(width),
            "cohorts_link": cohorts_link,
        }

    return _page("staff/customers.html", build)


@blp.get("/attention")
@replica_read
def attention() -> Any:
    def build(form: dict[str, str]) -> dict[str, Any]:
        waits, extra, link = _report("fulfilment", form)
        limits = Limits.of(current_app.config)
        lists = needs_attention(read_session(), limits)
        return {"lists": lists, "limits": limits, "waits": waits, "waits_extra": extra, "waits_link": link}

    return _page("staff/attention.html", build)


@blp.get("/orders/<int:order_id>")
def order(order_id: int) -> str:
    view = read_order(order_id, g.staff)
    document = order_document(view.order, view.history)
    return render_template(
        "staff/order.html",
        order=document,
        actions=NEXT_ACTIONS.get(document["status"], ()),
        message=request.args.get("done"),
    )


@blp.post("/orders/<int:order_id>/<action>")
def act(order_id: int, action: str) -> BaseResponse:
    if action == "payment":
        reference = request.form.get("reference", "").strip()
        if not reference or len(reference) > 255:
            abort(422, "A payment needs its reference (up to 255 characters): the receipt or transfer it came by.")
        record_manual_payment(order_id, g.staff, reference, None)
    elif action in ACTIONS:
        transition(order_id, g.staff, ACTIONS[action], reason=request.form.get("reason") or None)
    else:
        abort(404, "No such action.")
    return redirect(url_for("staff.order", order_id=order_id, done=action))
