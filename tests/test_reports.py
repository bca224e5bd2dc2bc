"""Revenue reports: every figure worked out by hand, across a daylight-saving change, in JSON and CSV."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.models import Order, OrderItem, Product, User
from shop.models.order import COUNTED_STATUSES, counted_sql
from shop.reports.queries import branched_statement, shares, statement
from shop.repositories import OrderRepository
from tests.conftest import AuthActions
from tests.helpers import add_product

NEW_YORK = "America/New_York"  # DST began 2025-03-09 at 02:00 local: UTC-5 before, UTC-4 after
REPORTS = "/api/v1/reports"
ADDRESS = {"name": "A", "line1": "1 St", "line2": "", "city": "X", "postal_code": "1", "country": "US"}
STEPS = {
    "paid": ("paid_at",),
    "shipped": ("paid_at", "shipped_at"),
    "delivered": ("paid_at", "shipped_at", "delivered_at"),
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_user(session: Any, email: str) -> User:
    user = User(email=email, name=email.split("@")[0].title(), password_hash="!")
    session.add(user)
    session.flush()
    return user


def add_order(session: Any, user: User, created: datetime, status: str, lines: list[tuple[Product, int]]) -> Order:
    """An order placed at `created` and already in `status`, with the facts the reports read kept as the order
    code keeps them (the database checks them at commit, so a fixture cannot get them wrong either)."""
    counted = status in COUNTED_STATUSES
    items = [
        OrderItem(
            product_id=p.id, sku=p.sku, name=p.name, quantity=q, unit_price=p.price, line_total=p.price * q,
            placed_at=created, counted=counted, category=p.category,
            first_in_category=p.category not in [other.category for other, _ in lines[:position]],
        )
        for position, (p, q) in enumerate(lines)
    ]  # fmt: skip
    order = Order(
        user_id=user.id, status=status, currency="USD", shipping_address=ADDRESS, items=items,
        total=sum((item.line_total for item in items), Decimal("0.00")), units=sum(q for _, q in lines),
        created_at=created, updated_at=created,
    )  # fmt: skip
    for step in STEPS.get(status, ()):
        setattr(order, step, created + timedelta(minutes=5))
    if status == "cancelled":
        order.cancelled_at = created + timedelta(minutes=5)
    session.add(order)
    session.flush()
    OrderRepository(session).relink(order.id)
    return order


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


@pytest.fixture
def store(db_session: Any) -> dict[str, Any]:
    """Eight orders whose every figure is worked out by hand in the tests below."""
    books = add_product(db_session, "P1", category="Books", price=Decimal("10.00"))
    garden = add_product(db_session, "P2", category="Garden", price=Decimal("25.50"))
    toys = add_product(db_session, "P3", category="Toys", price=Decimal("3.99"))
    ann, bob, cy = (add_user(db_session, f"{name}@example.com") for name in ("ann", "bob", "cy"))
    orders = {
        # 23.99, 3 units, January
        "O1": add_order(db_session, ann, utc("2025-01-15T15:00"), "delivered", [(books, 2), (toys, 1)]),
        # 2025-03-08 23:30 EST: the 8th in New York, the 9th in UTC
        "O2": add_order(db_session, bob, utc("2025-03-09T04:30"), "paid", [(garden, 1)]),
        # 2025-03-09 03:30 EDT, just after the change
        "O3": add_order(db_session, ann, utc("2025-03-09T07:30"), "shipped", [(books, 1)]),
        # 2025-03-10 00:30 EDT: the 10th in New York (a fixed UTC-5 would say the 9th)
        "O4": add_order(db_session, cy, utc("2025-03-10T04:30"), "delivered", [(garden, 2), (toys, 3)]),
        # never counted
        "O5": add_order(db_session, bob, utc("2025-03-09T12:00"), "cancelled", [(books, 5)]),
        "O6": add_order(db_session, cy, utc("2025-03-09T13:00"), "pending", [(garden, 1)]),
        # 2025-04-30 23:30 EDT: April in New York, May in UTC
        "O7": add_order(db_session, bob, utc("2025-05-01T03:30"), "delivered", [(toys, 1)]),
        # 2024-12-31 23:59 EST: December in New York, January in UTC
        "O8": add_order(db_session, ann, utc("2025-01-01T04:59"), "delivered", [(books, 1)]),
    }
    return {"products": (books, garden, toys), "users": (ann, bob, cy), "orders": orders}


def report(client: FlaskClient, headers: dict[str, str], name: str, **query: str) -> Any:
    response = client.get(f"{REPORTS}/{name}", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def period(
    day: str, orders: int, units: int, revenue: str, average: str, customers: int, running: str, refunds: str = "0.00"
) -> dict[str, Any]:
    return {
        "period": day, "orders": orders, "units": units, "revenue": revenue, "average_order_value": average,
        "unique_customers": customers, "running_revenue": running, "refunds": refunds,
        "net": str(Decimal(revenue) - Decimal(refunds)),
    }  # fmt: skip


def category(name: str, orders: int, units: int, revenue: str, share: str) -> dict[str, Any]:
    """A row of revenue by category with no refunds in the range (tests/test_reports_refunds.py has those)."""
    return {"category": name, "orders": orders, "units": units, "revenue": revenue, "refunds": "0.00", "net": revenue,
            "share": share}  # fmt: skip


def test_revenue_by_month_in_new_york_with_an_empty_february(
    client: FlaskClient, staff: dict[str, str], store: dict[str, Any]
) -> None:
    body = report(client, staff, "revenue", start="2025-01-01", end="2025-04-30", tz=NEW_YORK, granularity="month")

    assert body["rows"] == [
        period("2025-01-01", 1, 3, "23.99", "23.99", 1, "23.99"),  # O1 (O8 was still December here)
        period("2025-02-01", 0, 0, "0.00", "0.00", 0, "23.99"),
        period("2025-03-01", 3, 7, "98.47", "32.82", 3, "122.46"),  # O2 O3 O4; 98.47 / 3 = 32.823...
        period("2025-04-01", 1, 1, "3.99", "3.99", 1, "126.45"),  # O7
    ]
    assert body["totals"] == {
        "orders": 5, "units": 11, "revenue": "126.45", "average_order_value": "25.29", "unique_customers": 3,
        "refunds": "0.00", "net": "126.45",
    }  # fmt: skip
    assert (body["report"], body["tz"], body["granularity"]) == ("revenue", NEW_YORK, "month")


def test_the_same_range_in_utc_moves_the_orders_near_midnight(
    client: FlaskClient, staff: dict[str, str], store: dict[str, Any]
) -> None:
    body = report(client, staff, "revenue", start="2025-01-01", end="2025-04-30", granularity="month")

    assert [(row["period"], row["orders"], row["revenue"]) for row in body["rows"]] == [
        ("2025-01-01", 2, "33.99"),  # O1 and O8
        ("2025-02-01", 0, "0.00"),
        ("2025-03-01", 3, "98.47"),
        ("2025-04-01", 0, "0.00"),  # O7 is May in UTC
    ]
    assert body["tz"] == "UTC"


def test_revenue_by_day_across_the_daylight_saving_change(
    client: FlaskClient, staff: dict[str, str], store: dict[str, Any]
) -> None:
    body = report(client, staff, "revenue", start="2025-03-08", end="2025-03-10", tz=NEW_YORK, granularity="day")

    assert body["rows"] == [
        period("2025-03-08", 1, 1, "25.50", "25.50", 1, "25.50"),  # O2
        period("2025-03-09", 1, 1, "10.00", "10.00", 1, "35.50"),  # O3; O5 cancelled and O6 pending do not count
        period("2025-03-10", 1, 5, "62.97", "62.97", 1, "98.47"),  # O4
    ]
    assert body["totals"]["revenue"] == "98.47"


def test_revenue_by_iso_week_starts_on_monday(
    client: FlaskClient, staff: dict[str, str], store: dict[str, Any]
) -> None:
    body = report(client, staff, "revenue", start="2025-03-01", end="2025-03-16", tz=NEW_YORK, granularity="week")

    assert body["rows"] == [
        period("2025-02-24", 0, 0, "0.00", "0.00", 0, "0.00"),  # the week of Saturday 1 March
        period("2025-03-03", 2, 2, "35.50", "17.75", 2, "35.50"),  # O2 O3
        period("2025-03-10", 1, 5, "62.97", "62.97", 1, "98.47"),  # O4
    ]


def test_revenue_by_category_shares_sum_to_one(
    client: FlaskClient, staff: dict[str, str], store: dict[str, Any]
) -> None:
    body = report(client, staff, "revenue-by-category", start="2025-01-01", end="2025-04-30", tz=NEW_YORK)

    assert body["rows"] == [
        # 76.50 / 126.45 = 0.60498..., 30.00 / 126.45 = 0.23724..., 19.95 / 126.45 = 0.15776...: the two largest
        # remainders (Garden's .82, Toys' .70 of a ten-thousandth) round up so the shares add up to exactly 1
        category("Garden", 2, 3, "76.50", "0.6050"),
        category("Books", 2, 3, "30.00", "0.2372"),
        category("Toys", 3, 5, "19.95", "0.1578"),
    ]


def test_an_order_with_two_lines_in_one_category_counts_once_there_and_keeps_the_category_it_was_placed_in(
    client: FlaskClient, staff: dict[str, str], db_session: Any
) -> None:
    atlas = add_product(db_session, "ATLAS", category="Books", price=Decimal("30.00"))
    novel = add_product(db_session, "NOVEL", category="Books", price=Decimal("12.00"))
    rake = add_product(db_session, "RAKE", category="Garden", price=Decimal("20.00"))
    dee = add_user(db_session, "dee@example.com")
    add_order(db_session, dee, utc("2025-06-02T12:00"), "paid", [(atlas, 1), (novel, 2), (rake, 1)])
    add_order(db_session, dee, utc("2025-06-03T12:00"), "delivered", [(novel, 1)])
    # re-shelved afterwards: the orders already placed keep the category they were placed in
    novel.category = "Gifts"
    db_session.flush()
    add_order(db_session, dee, utc("2025-06-04T12:00"), "shipped", [(novel, 1)])

    body = report(client, staff, "revenue-by-category", start="2025-06-01", end="2025-06-30")

    assert body["rows"] == [
        # 30.00 + 2 x 12.00 + 12.00 in two orders; the first order is one order here, not two. Of 98.00:
        # 0.67346..., 0.20408..., 0.12244...; the two largest remainders (Garden's, then Books') round up
        category("Books", 2, 4, "66.00", "0.6735"),
        category("Garden", 1, 1, "20.00", "0.2041"),
        category("Gifts", 1, 1, "12.00", "0.1224"),
    ]


def test_top_products_and_customers(client: FlaskClient, staff: dict[str, str], store: dict[str, Any]) -> None:
    books, garden, _ = store["products"]
    ann, bob, cy = store["users"]
    window = {"start": "2025-01-01", "end": "2025-04-30", "tz": NEW_YORK}

    products = report(client, staff, "top-products", limit="2", **window)
    customers = report(client, staff, "top-customers", **window)

    assert products["rows"] == [
        {"product_id": garden.id, "sku": "P2", "name": "P2", "units": 3, "revenue": "76.50"},
        {"product_id": books.id, "sku": "P1", "name": "P1", "units": 3, "revenue": "30.00"},
    ]
    assert products["limit"] == 2
    assert customers["rows"] == [
        {"user_id": cy.id, "email": "cy@example.com", "name": "Cy", "orders": 1, "revenue": "62.97"},
        {"user_id": ann.id, "email": "ann@example.com", "name": "Ann", "orders": 2, "revenue": "33.99"},
        {"user_id": bob.id, "email": "bob@example.com", "name": "Bob", "orders": 2, "revenue": "29.49"},
    ]


def test_csv_by_parameter_or_accept_header(client: FlaskClient, staff: dict[str, str], store: dict[str, Any]) -> None:
    window = {"start": "2025-01-01", "end": "2025-04-30", "tz": NEW_YORK}
    query = window | {"granularity": "month"}

    by_parameter = client.get(f"{REPORTS}/revenue", query_string=query | {"format": "csv"}, headers=staff)
    by_header = client.get(f"{REPORTS}/revenue", query_string=query, headers=staff | {"Accept": "text/csv"})

    assert by_parameter.status_code == 200
    assert by_parameter.mimetype == "text/csv"
    assert by_parameter.is_streamed
    assert by_parameter.headers["Content-Disposition"] == 'attachment; filename="revenue_2025-01-01_2025-04-30.csv"'
    assert by_parameter.get_data(as_text=True).splitlines() == [
        "period,orders,units,revenue,average_order_value,unique_customers,running_revenue,refunds,net",
        "2025-01-01,1,3,23.99,23.99,1,23.99,0.00,23.99",
        "2025-02-01,0,0,0.00,0.00,0,23.99,0.00,0.00",
        "2025-03-01,3,7,98.47,32.82,3,122.46,0.00,98.47",
        "2025-04-01,1,1,3.99,3.99,1,126.45,0.00,3.99",
    ]
    assert by_header.get_data() == by_parameter.get_data()

    categories = client.get(
        f"{REPORTS}/revenue-by-category", query_string=window | {"format": "csv"}, headers=staff
    ).get_data(as_text=True)
    assert categories.splitlines()[0] == "category,orders,units,revenue,refunds,net,share"
    assert categories.splitlines()[1] == "Garden,2,3,76.50,0.00,76.50,0.6050"


@pytest.mark.parametrize(
    ("name", "extra"),
    [("revenue", {"granularity": "month"}), ("revenue", {"granularity": "week"}), ("revenue-by-category", {}),
     ("top-products", {"limit": "3"}), ("top-customers", {"limit": "3"})],
)  # fmt: skip
def test_every_csv_row_carries_the_same_figures_as_the_json(
    client: FlaskClient, staff: dict[str, str], store: dict[str, Any], name: str, extra: dict[str, str]
) -> None:
    query = {"start": "2025-01-01", "end": "2025-04-30", "tz": NEW_YORK} | extra
    rows = report(client, staff, name, **query)["rows"]

    text = client.get(f"{REPORTS}/{name}", query_string=query | {"format": "csv"}, headers=staff).get_data(as_text=True)

    parsed = list(csv.DictReader(io.StringIO(text)))
    assert rows
    assert parsed == [{column: str(value) for column, value in row.items()} for row in rows]


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(
    client: FlaskClient, staff: dict[str, str], db_session: Any
) -> None:
    evil = add_product(db_session, "EVIL", name='=HYPERLINK("http://x")', price=Decimal("9.00"))
    buyer = add_user(db_session, "dee@example.com")
    add_order(db_session, buyer, utc("2025-06-01T12:00"), "paid", [(evil, 1)])

    text = client.get(
        f"{REPORTS}/top-products", query_string={"start": "2025-06-01", "end": "2025-06-01", "format": "csv"},
        headers=staff,
    ).get_data(as_text=True)  # fmt: skip

    assert text.splitlines()[1] == f'{evil.id},EVIL,"\'=HYPERLINK(""http://x"")",1,9.00'


def test_an_empty_range_has_zero_rows_and_a_header_only_csv(client: FlaskClient, staff: dict[str, str]) -> None:
    body = report(client, staff, "revenue", start="2030-01-01", end="2030-01-02")
    assert [row["orders"] for row in body["rows"]] == [0, 0]
    assert body["totals"]["revenue"] == "0.00"
    assert report(client, staff, "revenue-by-category", start="2030-01-01", end="2030-01-02")["rows"] == []

    csv_text = client.get(
        f"{REPORTS}/top-customers", query_string={"start": "2030-01-01", "end": "2030-01-02", "format": "csv"},
        headers=staff,
    ).get_data(as_text=True)  # fmt: skip
    assert csv_text == "user_id,email,name,orders,revenue\r\n"


@pytest.mark.parametrize(
    ("name", "query", "field"),
    [
        ("revenue", {"start": "2025-02-01", "end": "2025-01-01"}, "start"),
        ("revenue", {"start": "2020-01-01", "end": "2025-01-01"}, "end"),  # five years and a day
        ("revenue", {"start": "2025-01-01", "end": "2025-01-31", "tz": "Mars/Olympus_Mons"}, "tz"),
        ("revenue", {"start": "2025-01-01", "end": "2025-01-31", "tz": "../../etc/passwd"}, "tz"),
        ("revenue", {"start": "2025-01-01", "end": "2025-01-31", "granularity": "hour"}, "granularity"),
        ("revenue", {"start": "2025-01-01", "end": "2025-01-31", "format": "xml"}, "format"),
        ("revenue", {"start": "2025-01-01"}, "end"),
        ("revenue", {"start": "01/02/2025", "end": "2025-01-31"}, "start"),
        ("revenue", {"start": "2025-01-01", "end": "2025-01-31", "colour": "red"}, "colour"),
        ("top-products", {"start": "2025-01-01", "end": "2025-01-31", "limit": "0"}, "limit"),
        ("top-customers", {"start": "2025-01-01", "end": "2025-01-31", "limit": "101"}, "limit"),
        ("top-customers", {"start": "2025-01-01", "end": "2025-01-31", "limit": "ten"}, "limit"),
        ("customers", {"start": "2025-01-01", "end": "2025-01-31", "granularity": "year"}, "granularity"),
        ("customers", {"start": "2025-01-01", "end": "2025-01-31", "compare": "previous_year"}, "compare"),
        ("cohorts", {"start": "2025-01-01", "end": "2025-01-31", "granularity": "month"}, "granularity"),
        ("cohorts", {"start": "2025-01-01", "end": "2025-01-31", "tz": "Nowhere/Town"}, "tz"),
        ("fulfilment", {"start": "2025-01-31", "end": "2025-01-01"}, "start"),
        ("fulfilment", {"start": "2025-01-01", "end": "2025-01-31", "limit": "5"}, "limit"),
    ],
)
def test_bad_arguments_are_a_422_naming_the_parameter(
    client: FlaskClient, staff: dict[str, str], name: str, query: dict[str, str], field: str
) -> None:
    response = client.get(f"{REPORTS}/{name}", query_string=query, headers=staff)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


def test_a_five_year_range_is_allowed(client: FlaskClient, staff: dict[str, str]) -> None:
    body = report(client, staff, "revenue", start="2020-01-01", end="2024-12-31", granularity="month")
    assert len(body["rows"]) == 60


@pytest.mark.parametrize(
    "name", ["revenue", "revenue-by-category", "top-products", "top-customers", "customers", "cohorts", "fulfilment"]
)
def test_reports_are_for_staff_only(client: FlaskClient, auth: AuthActions, name: str) -> None:
    query = {"start": "2025-01-01", "end": "2025-01-31"}

    anonymous = client.get(f"{REPORTS}/{name}", query_string=query)
    customer = client.get(f"{REPORTS}/{name}", query_string=query, headers=auth.headers("c@example.com"))

    assert anonymous.status_code == 401
    assert customer.status_code == 403


# --- properties --------------------------------------------------------------------------------------------

STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled"]
orders_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=89 * 24 * 60),  # minutes into the 90 days from 2025-01-01 UTC
        st.sampled_from(STATUSES),
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), min_size=1, max_size=3, unique_by=lambda t: t[0]),
        st.integers(0, 2),
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=orders_strategy, granularity=st.sampled_from(["day", "week", "month"]), tz=st.sampled_from(
    ["UTC", NEW_YORK, "Asia/Kolkata", "Pacific/Chatham"]))  # fmt: skip
def test_the_periods_and_the_categories_add_up_to_the_totals(
    client: FlaskClient, staff: dict[str, str], db_session: Any, orders: list[Any], granularity: str, tz: str
) -> None:
    example = db_session.begin_nested()
    try:
        products = [
            add_product(db_session, f"H{n}", category=f"C{n % 2}", price=Decimal(price))
            for n, price in enumerate(["0.01", "19.99", "1234.56"])
        ]
        users = [add_user(db_session, f"h{n}@example.com") for n in range(3)]
        for minutes, status, lines, user in orders:
            created = utc("2025-01-01T00:00") + timedelta(minutes=minutes)
            add_order(db_session, users[user], created, status, [(products[p], q) for p, q in lines])
        window = {"start": "2025-01-02", "end": "2025-03-30", "tz": tz}

        revenue = report(client, staff, "revenue", granularity=granularity, **window)
        categories = report(client, staff, "revenue-by-category", **window)

        total = Decimal(revenue["totals"]["revenue"])
        assert sum(Decimal(row["revenue"]) for row in revenue["rows"]) == total
        assert sum(row["orders"] for row in revenue["rows"]) == revenue["totals"]["orders"]
        assert sum(row["units"] for row in revenue["rows"]) == revenue["totals"]["units"]
        assert Decimal(revenue["rows"][-1]["running_revenue"]) == total
        assert sum(Decimal(row["revenue"]) for row in categories["rows"]) == total
        if categories["rows"]:
            assert sum(Decimal(row["share"]) for row in categories["rows"]) == 1
    finally:
        example.rollback()


@given(st.lists(st.decimals(min_value=0, max_value=10**9, places=2), min_size=1, max_size=30))
def test_shares_always_add_up_to_exactly_one(amounts: list[Decimal]) -> None:
    result = shares(amounts)
    if sum(amounts) == 0:
        assert all(share == 0 for share in result)
    else:
        assert sum(result) == 1
        assert all(
            abs(share - amount / sum(amounts)) < Decimal("0.0001")
            for share, amount in zip(result, amounts, strict=True)
        )


@pytest.mark.parametrize("tz", ["UTC", NEW_YORK, "Asia/Kathmandu"])
def test_revenue_by_day_over_more_days_than_branches_matches_python(
    client: FlaskClient, staff: dict[str, str], db_session: Any, tz: str
) -> None:
    """40 days by day: the statement cuts them into runs of two periods (shop/reports/branches.py). Three customers
    order about local midnights, often on consecutive days and twice a day, so every run has a customer counted in
    both its periods and some periods hold a customer twice."""
    book = add_product(db_session, "D1", category="Books", price=Decimal("10.00"))
    users = [add_user(db_session, f"{name}@example.com") for name in ("ann", "bob", "cy")]
    zone = ZoneInfo(tz)
    randomly = random.Random(tz)
    placed: list[tuple[datetime, int, Decimal, bool]] = []
    for _ in range(120):
        day = date(2025, 2, 20) + timedelta(days=randomly.randrange(44))
        moment = datetime.combine(day, time(), zone) + timedelta(minutes=randomly.choice([-1, 0, 1, 30, 600]))
        user, status, units = (
            randomly.randrange(3),
            randomly.choice(["paid", "delivered", "pending"]),
            1 + randomly.randrange(3),
        )
        add_order(db_session, users[user], moment.astimezone(UTC), status, [(book, units)])
        placed.append((moment.astimezone(UTC), user, Decimal(10 * units), status != "pending"))
    start, end = date(2025, 2, 22), date(2025, 4, 2)  # 40 days, across New York's change to summer time

    body = report(client, staff, "revenue", start=start.isoformat(), end=end.isoformat(), tz=tz)

    counted = [(at.astimezone(zone).date(), user, total) for at, user, total, counts in placed if counts]
    in_range = [order for order in counted if start <= order[0] <= end]
    expected = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        that_day = [order for order in in_range if order[0] == day]
        expected.append((day.isoformat(), len(that_day), f"{sum((o[2] for o in that_day), Decimal(0)):.2f}",
                         len({o[1] for o in that_day})))  # fmt: skip
    rows = [(row["period"], row["orders"], row["revenue"], row["unique_customers"]) for row in body["rows"]]
    assert rows == expected
    assert sum(1 for row in expected if row[1] > row[3]) > 0  # a customer twice in a day
    assert body["totals"]["unique_customers"] == len({order[1] for order in in_range})


def test_the_statuses_that_count_as_revenue_are_written_once() -> None:
    """shop/models/order.py defines them; SQL anywhere else uses COUNTED_SQL, or $COUNTED_STATUSES in a report."""
    root = Path(__file__).resolve().parents[1]
    spelled = re.compile(r"'paid',\s*'shipped',\s*'delivered'")
    sources = [
        p for folder in ("shop", "scripts", "tests") for p in (root / folder).rglob("*") if p.suffix in {".py", ".sql"}
    ]
    assert [str(p.relative_to(root)) for p in sources if spelled.search(p.read_text(encoding="utf-8"))] == []
    # a statement of one file, and one put together from branches (a period, and a run of two)
    for text in (str(statement("top_customers")), str(branched_statement("revenue", (1, 2)))):
        assert "$COUNTED_STATUSES" not in text
        assert counted_sql("o.status") in text
