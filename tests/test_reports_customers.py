"""The customers, cohorts and fulfilment reports, every figure worked out by hand on a fixture whose customers' first
orders fall either side of a month boundary: the last evening of January in New York is already February in UTC."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import AuthActions
from tests.helpers import add_product
from tests.test_reports import NEW_YORK, REPORTS, add_order, add_user, report, utc

FIRST_QUARTER = {"start": "2025-01-01", "end": "2025-03-31"}


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


@pytest.fixture
def store(db_session: Any) -> None:
    """Each order of n units costs 10n, so a sum names its orders."""
    book = add_product(db_session, "K1", category="Books", price=Decimal("10.00"))
    ann, bob, cy, dee, eve = (
        add_user(db_session, f"{name}@example.com") for name in ("ann", "bob", "cy", "dee", "eve")
    )
    for user, moment, status, units in [
        (ann, "2025-02-01T04:30", "delivered", 1),  # 31 January 23:30 in New York: January there, February in UTC
        (ann, "2025-02-10T12:00", "shipped", 2),
        (ann, "2025-03-05T12:00", "paid", 3),
        (bob, "2025-02-01T06:00", "delivered", 4),  # 1 February 01:00 in New York: February everywhere
        (bob, "2025-02-20T12:00", "paid", 5),
        (cy, "2024-12-15T12:00", "delivered", 1),  # before the range: cy returns in it
        (cy, "2025-02-15T12:00", "delivered", 6),
        (dee, "2025-04-01T03:30", "paid", 7),  # 31 March 23:30 in New York (EDT); April in UTC
        (eve, "2025-01-10T12:00", "cancelled", 8),  # never counted
        (eve, "2025-03-10T12:00", "pending", 9),
    ]:
        add_order(db_session, user, utc(moment), status, [(book, units)])


def customers_rows(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("period", "customers", "new_customers", "returning_customers", "new_revenue", "returning_revenue")
    return [tuple(row[key] for key in keys) for row in body["rows"]]


def test_new_and_returning_customers_by_month_in_new_york(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "customers", tz=NEW_YORK, granularity="month", **FIRST_QUARTER)

    assert customers_rows(body) == [
        ("2025-01-01", 1, 1, 0, "10.00", "0.00"),  # ann's first order
        # bob is new and both his orders are new revenue (90); ann and cy return (20 + 60)
        ("2025-02-01", 3, 1, 2, "90.00", "80.00"),
        ("2025-03-01", 2, 1, 1, "70.00", "30.00"),  # dee is new; ann returns
    ]
    # over the quarter: ann, bob and dee are new (10+20+30 + 40+50 + 70), cy returns (60); ann, bob and cy have
    # two or more orders by its end, dee one
    assert body["totals"] == {
        "customers": 4, "new_customers": 3, "returning_customers": 1, "new_revenue": "220.00",
        "returning_revenue": "60.00", "repeat_customers": 3, "repeat_rate": "0.7500",
    }  # fmt: skip


def test_the_same_quarter_in_utc_moves_anns_first_order_into_february_and_dees_out(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "customers", granularity="month", **FIRST_QUARTER)

    assert customers_rows(body) == [
        ("2025-01-01", 0, 0, 0, "0.00", "0.00"),
        ("2025-02-01", 3, 2, 1, "120.00", "60.00"),  # ann (10 + 20) and bob (40 + 50) new, cy returns
        ("2025-03-01", 1, 0, 1, "0.00", "30.00"),
    ]
    assert (body["totals"]["customers"], body["totals"]["new_revenue"], body["totals"]["repeat_rate"]) == (
        3, "150.00", "1.0000",
    )  # fmt: skip


def test_a_customer_new_in_one_week_returns_in_the_next(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "customers", start="2025-02-03", end="2025-02-16", granularity="week")

    # the week of 3 February: nobody; the week of 10 February: ann (her first order, the 1st, is before the range)
    # and cy return; bob's orders fall before and after
    assert customers_rows(body) == [
        ("2025-02-03", 0, 0, 0, "0.00", "0.00"),
        ("2025-02-10", 2, 0, 2, "0.00", "80.00"),
    ]
    assert body["totals"]["repeat_customers"] == 2


def test_a_repeat_customer_ordered_again_before_the_range_ended(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "customers", start="2025-02-01", end="2025-02-15", granularity="month")

    # new: ann (1 February, again on the 10th) and bob (1 February, again on the 20th: after the range);
    # returning: cy (first in December, again on the 15th). Repeat by the 15th: ann and cy, not bob
    assert body["totals"]["customers"] == 3
    assert body["totals"]["new_customers"] == 2
    assert body["totals"]["repeat_customers"] == 2
    assert body["totals"]["repeat_rate"] == "0.6667"


def cohort_rows(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("cohort", "month", "months_since", "customers", "revenue", "retention")
    return [tuple(row[key] for key in keys) for row in body["rows"]]


def test_monthly_cohorts_in_new_york(client: FlaskClient, staff: dict[str, str], store: None) -> None:
    body = report(client, staff, "cohorts", tz=NEW_YORK, **FIRST_QUARTER)

    # cy's first order is before the range: in no cohort
    assert cohort_rows(body) == [
        ("2025-01-01", "2025-01-01", 0, 1, "10.00", "1.0000"),  # ann
        ("2025-01-01", "2025-02-01", 1, 1, "20.00", "1.0000"),
        ("2025-01-01", "2025-03-01", 2, 1, "30.00", "1.0000"),
        ("2025-02-01", "2025-02-01", 0, 1, "90.00", "1.0000"),  # bob, twice in his first month
        ("2025-03-01", "2025-03-01", 0, 1, "70.00", "1.0000"),  # dee
    ]


def test_monthly_cohorts_in_utc(client: FlaskClient, staff: dict[str, str], store: None) -> None:
    body = report(client, staff, "cohorts", **FIRST_QUARTER)

    assert cohort_rows(body) == [
        ("2025-02-01", "2025-02-01", 0, 2, "120.00", "1.0000"),  # ann and bob
        ("2025-02-01", "2025-03-01", 1, 1, "30.00", "0.5000"),  # ann again
    ]
    csv_text = client.get(f"{REPORTS}/cohorts", query_string=FIRST_QUARTER | {"format": "csv"}, headers=staff)
    assert csv_text.get_data(as_text=True).splitlines() == [
        "cohort,month,months_since,customers,revenue,retention",
        "2025-02-01,2025-02-01,0,2,120.00,1.0000",
        "2025-02-01,2025-03-01,1,1,30.00,0.5000",
    ]


def test_a_range_starting_mid_month_makes_its_first_cohort_of_that_part(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "cohorts", start="2025-02-05", end="2025-03-31")

    # ann's and bob's first orders (1 February) are before the range; the range's first month is 5-28 February
    assert cohort_rows(body) == []
    assert report(client, staff, "cohorts", start="2025-02-01", end="2025-02-01")["rows"][0]["cohort"] == "2025-02-01"


@pytest.fixture
def waits(db_session: Any) -> None:
    """Orders of 2 and 3 March 2025 (UTC) with their waits for payment and shipment in minutes."""
    book = add_product(db_session, "W1", category="Books", price=Decimal("10.00"))
    ann = add_user(db_session, "ann@example.com")
    for moment, status, to_payment, to_shipment in [
        ("2025-03-02T10:00", "paid", 1, None),
        ("2025-03-02T11:00", "delivered", 2, 60),
        ("2025-03-02T12:00", "shipped", 10, 120),
        ("2025-03-02T13:00", "pending", None, None),  # never paid: in neither
        ("2025-03-03T04:30", "cancelled", 30, None),  # paid, then cancelled: waited 30 minutes for payment
    ]:
        placed = utc(moment)
        order = add_order(db_session, ann, placed, status, [(book, 1)])
        paid = placed + timedelta(minutes=to_payment) if to_payment is not None else None
        order.paid_at = paid
        if paid is not None and to_shipment is not None:
            order.shipped_at = paid + timedelta(minutes=to_shipment)
        db_session.flush()


def test_fulfilment_medians_and_90th_percentiles(client: FlaskClient, staff: dict[str, str], waits: None) -> None:
    body = report(client, staff, "fulfilment", start="2025-03-02", end="2025-03-03")

    # 2 March: payment waits 60, 120, 600 s: median 120, p90 120 + 0.8 * 480 = 504;
    # shipment waits 3600, 7200: median 5400, p90 3600 + 0.9 * 3600 = 6840
    assert body["rows"] == [
        {"period": "2025-03-02", "paid": 3, "payment_p50": 120.0, "payment_p90": 504.0, "shipped": 2,
         "shipment_p50": 5400.0, "shipment_p90": 6840.0},
        {"period": "2025-03-03", "paid": 1, "payment_p50": 1800.0, "payment_p90": 1800.0, "shipped": 0,
         "shipment_p50": None, "shipment_p90": None},
    ]  # fmt: skip
    # all four: 60, 120, 600, 1800: median 360; p90 600 + 0.7 * 1200 = 1440
    assert body["totals"] == {"paid": 4, "payment_p50": 360.0, "payment_p90": 1440.0, "shipped": 2,
                              "shipment_p50": 5400.0, "shipment_p90": 6840.0}  # fmt: skip


def test_fulfilment_counts_an_order_in_the_day_it_was_placed_in_the_zone(
    client: FlaskClient, staff: dict[str, str], waits: None
) -> None:
    body = report(client, staff, "fulfilment", start="2025-03-02", end="2025-03-02", tz=NEW_YORK)

    # 3 March 04:30 UTC is 2 March 23:30 in New York: the cancelled order joins the 2nd
    assert [(row["paid"], row["payment_p50"]) for row in body["rows"]] == [(4, 360.0)]


def test_an_empty_range_has_no_waits(client: FlaskClient, staff: dict[str, str]) -> None:
    body = report(client, staff, "fulfilment", start="2030-01-01", end="2030-01-01")
    assert body["totals"] == {"paid": 0, "payment_p50": None, "payment_p90": None, "shipped": 0,
                              "shipment_p50": None, "shipment_p90": None}  # fmt: skip
    assert report(client, staff, "customers", start="2030-01-01", end="2030-01-01")["totals"]["repeat_rate"] == "0.0000"


def _percentile_cont(waits: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont, as its documentation defines it: interpolated between the two nearest waits."""
    if not waits:
        return None
    ordered = sorted(waits)
    position = fraction * (len(ordered) - 1)
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    return round(low + (position - math.floor(position)) * (high - low), 1)


@pytest.mark.parametrize("tz", ["UTC", NEW_YORK, "Asia/Kathmandu"])
@pytest.mark.parametrize("granularity", ["day", "week", "month"])
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2025, 3, 3), date(2025, 3, 11)),
        # 50 days: by day, more periods than the statement has branches (runs of 3, the last of 2), most empty
        (date(2025, 2, 1), date(2025, 3, 22)),
    ],
)
def test_fulfilment_matches_percentiles_worked_out_in_python(
    client: FlaskClient, staff: dict[str, str], db_session: Any, tz: str, granularity: str, start: date, end: date
) -> None:
    """Every period's waits and the range's, on orders crowded about local midnights across New York's change to
    summer time (9 March 2025), some before and after the range, with ties among the waits."""
    book = add_product(db_session, "R1", category="Books", price=Decimal("10.00"))
    ann = add_user(db_session, "ann@example.com")
    randomly = random.Random(f"{tz}-{granularity}")
    zone = ZoneInfo(tz)
    placed: list[tuple[datetime, float | None, float | None]] = []
    for _ in range(90):
        midnight = datetime.combine(date(2025, 3, 1) + timedelta(days=randomly.randrange(14)), time(), zone)
        created = (midnight + timedelta(minutes=randomly.choice([-30, -1, 0, 1, 30, 600]))).astimezone(UTC)
        to_payment = randomly.choice([None, 60.0, 90.25, 600.5, randomly.randrange(1, 4000) / 4])
        to_shipment = None if to_payment is None else randomly.choice([None, 3600.0, randomly.randrange(1, 9**6) / 4])
        order = add_order(db_session, ann, created, "pending", [(book, 1)])
        if to_payment is not None:
            order.paid_at = created + timedelta(seconds=to_payment)
            order.shipped_at = None if to_shipment is None else order.paid_at + timedelta(seconds=to_shipment)
        placed.append((created, to_payment, to_shipment))
    db_session.flush()

    body = report(client, staff, "fulfilment", start=start.isoformat(), end=end.isoformat(), tz=tz,
                  granularity=granularity)  # fmt: skip

    def figures(of: list[tuple[datetime, float | None, float | None]]) -> dict[str, Any]:
        payment = [wait for _, wait, _ in of if wait is not None]
        shipment = [wait for _, _, wait in of if wait is not None]
        return {
            "paid": len(payment), "payment_p50": _percentile_cont(payment, 0.5),
            "payment_p90": _percentile_cont(payment, 0.9), "shipped": len(shipment),
            "shipment_p50": _percentile_cont(shipment, 0.5), "shipment_p90": _percentile_cont(shipment, 0.9),
        }  # fmt: skip

    in_range = [order for order in placed if start <= order[0].astimezone(zone).date() <= end]
    labels = sorted({_period_label(start + timedelta(days=n), granularity) for n in range((end - start).days + 1)})
    expected = [
        {"period": label.isoformat()}
        | figures(
            [order for order in in_range if _period_label(order[0].astimezone(zone).date(), granularity) == label]
        )
        for label in labels
    ]
    assert len({wait for _, wait, _ in in_range}) < len(in_range)  # ties among the waits
    assert body["rows"] == expected
    assert body["totals"] == figures(in_range)


# --- the customers and cohorts reports against a model of them in Python, on random stores ---------------------


def _period_label(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


@dataclass(frozen=True)
class Placed:
    user: int
    created: datetime
    counted: bool
    total: Decimal
    position: int  # insertion order: the id order among equal placement times


def _model(orders: list[Placed], start: date, end: date, tz: str, granularity: str) -> dict[str, Any]:
    """What the customers and cohorts reports must answer, worked out by brute force."""
    zone = ZoneInfo(tz)
    counted = sorted((o for o in orders if o.counted), key=lambda o: (o.created, o.position))
    first: dict[int, Placed] = {}
    for order in counted:
        first.setdefault(order.user, order)

    def local(order: Placed) -> date:
        return order.created.astimezone(zone).date()

    in_range = [o for o in counted if start <= local(o) <= end]
    rows: dict[date, dict[str, Any]] = {}
    label = _period_label(start, granularity)
    while label <= end:
        rows[label] = {"customers": set(), "new": set(), "new_revenue": Decimal(0), "revenue": Decimal(0)}
        label = (label + timedelta(days=32)).replace(day=1) if granularity == "month" else label + timedelta(
            days=7 if granularity == "week" else 1)  # fmt: skip
    for order in in_range:
        row = rows[_period_label(local(order), granularity)]
        row["customers"].add(order.user)
        row["revenue"] += order.total
        first_here = first[order.user]
        if _period_label(local(first_here), granularity) == _period_label(local(order), granularity) and (
            start <= local(first_here)
        ):
            row["new"].add(order.user)
            row["new_revenue"] += order.total
    newcomers = {o.user for o in in_range if first[o.user] is o}
    customers = {o.user for o in in_range}
    until = {o.user for o in counted if local(o) <= end}
    orders_by_end = {user: sum(1 for o in counted if o.user == user and local(o) <= end) for user in until}
    cells: dict[tuple[date, date], dict[str, Any]] = {}
    for order in in_range:
        if order.user in newcomers:
            key = (local(first[order.user]).replace(day=1), local(order).replace(day=1))
            cell = cells.setdefault(key, {"customers": set(), "revenue": Decimal(0)})
            cell["customers"].add(order.user)
            cell["revenue"] += order.total
    return {
        "rows": [
            (label.isoformat(), len(row["customers"]), len(row["new"]), len(row["customers"] - row["new"]),
             f"{row['new_revenue']:.2f}", f"{row['revenue'] - row['new_revenue']:.2f}")
            for label, row in rows.items()
        ],
        "totals": (len(customers), len(newcomers), len(customers - newcomers),
                   f"{sum((o.total for o in in_range if o.user in newcomers), Decimal(0)):.2f}",
                   f"{sum((o.total for o in in_range if o.user not in newcomers), Decimal(0)):.2f}",
                   sum(1 for user in customers if orders_by_end[user] >= 2)),
        "cohorts": [
            (first_month.isoformat(), month.isoformat(), len(cell["customers"]), f"{cell['revenue']:.2f}")
            for (first_month, month), cell in sorted(cells.items())
        ],
    }  # fmt: skip


random_orders = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),  # a day of the 41 from 2024-12-28, in the report's zone: crowded
        # quarter hours from that day's local midnight: exactly midnight, or just before it, as often as not
        st.one_of(st.just(0), st.just(-1), st.integers(0, 95)),
        st.sampled_from(["pending", "paid", "shipped", "delivered", "cancelled"]),
        st.integers(1, 5),  # units of a 7.35 product
        st.integers(0, 2),  # which of three customers: each has several orders, some in one period
    ),
    min_size=4,
    max_size=30,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=random_orders, granularity=st.sampled_from(["day", "week", "month"]),
       tz=st.sampled_from(["UTC", NEW_YORK, "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"]),
       start_offset=st.integers(0, 20), length=st.integers(0, 40))  # fmt: skip
def test_the_customers_and_cohorts_reports_match_a_brute_force_model(
    client: FlaskClient, staff: dict[str, str], db_session: Any, orders: list[Any], granularity: str, tz: str,
    start_offset: int, length: int,
) -> None:  # fmt: skip
    example = db_session.begin_nested()
    try:
        lamp = add_product(db_session, "PROP", category="Home", price=Decimal("7.35"))
        users = [add_user(db_session, f"p{n}@example.com") for n in range(3)]
        placed = []
        for position, (day, quarters, status, units, user) in enumerate(orders):
            midnight = datetime.combine(date(2024, 12, 28) + timedelta(days=day), time(), tzinfo=ZoneInfo(tz))
            created = (midnight + timedelta(minutes=15 * quarters)).astimezone(UTC)
            add_order(db_session, users[user], created, status, [(lamp, units)])
            placed.append(Placed(user, created, status in {"paid", "shipped", "delivered"},
                                 Decimal("7.35") * units, position))  # fmt: skip
        start = date(2025, 1, 1) + timedelta(days=start_offset)
        end = start + timedelta(days=length)
        window = {"start": start.isoformat(), "end": end.isoformat(), "tz": tz}
        expected = _model(placed, start, end, tz, granularity)

        body = report(client, staff, "customers", granularity=granularity, **window)
        assert customers_rows(body) == expected["rows"]
        totals = body["totals"]
        assert (totals["customers"], totals["new_customers"], totals["returning_customers"], totals["new_revenue"],
                totals["returning_revenue"], totals["repeat_customers"]) == expected["totals"]  # fmt: skip
        cohorts = report(client, staff, "cohorts", **window)
        assert [(r["cohort"], r["month"], r["customers"], r["revenue"]) for r in cohorts["rows"]] == expected["cohorts"]
    finally:
        example.rollback()
