"""Comparisons in the revenue reports (?compare=previous_period|previous_year), every figure worked out by hand:
a week across New York's change to daylight saving time, a month a year apart, a year; and `as_of` on every answer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.helpers import add_product
from tests.test_reports import NEW_YORK, REPORTS, add_order, add_user, report, utc


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


@pytest.fixture
def store(db_session: Any) -> None:
    books = add_product(db_session, "C1", category="Books", price=Decimal("10.00"))
    garden = add_product(db_session, "C2", category="Garden", price=Decimal("25.50"))
    ann = add_user(db_session, "ann@example.com")
    for moment, product, units in [
        ("2025-03-09T04:30", books, 1),  # A: 8 March 23:30 EST (New York); 9 March in UTC
        ("2025-03-10T03:30", garden, 1),  # B: 9 March 23:30 EDT, after the change; 10 March in UTC
        ("2025-03-12T15:00", books, 2),  # C: 12 March everywhere
        ("2024-03-15T12:00", garden, 2),  # D: a year before
        ("2024-12-31T23:30", books, 1),  # E: 2024 everywhere
        ("2025-01-01T03:00", books, 1),  # F: 31 December 2024, 22:00 in New York; 2025 in UTC
    ]:
        add_order(db_session, ann, utc(moment), "delivered", [(product, units)])


def compared(body: dict[str, Any], row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[key] for key in ("revenue", "previous_revenue", "revenue_change", "orders", "previous_orders",
                                      "orders_change"))  # fmt: skip


def test_a_week_against_the_one_before_across_the_daylight_saving_change(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    week = {"start": "2025-03-10", "end": "2025-03-16", "granularity": "week", "compare": "previous_period"}

    new_york = report(client, staff, "revenue", tz=NEW_YORK, **week)
    in_utc = report(client, staff, "revenue", **week)

    # New York: this week C (20.00); the week before A and B (35.50): (20 - 35.5) / 35.5 = -0.43661...
    assert (new_york["compare"], new_york["compared_start"], new_york["compared_end"]) == (
        "previous_period", "2025-03-03", "2025-03-09",
    )  # fmt: skip
    (row,) = new_york["rows"]
    assert row["previous_period"] == "2025-03-03"
    assert compared(new_york, row) == ("20.00", "35.50", "-0.4366", 1, 2, "-0.5000")
    assert compared(new_york, new_york["totals"]) == ("20.00", "35.50", "-0.4366", 1, 2, "-0.5000")
    # UTC: B falls on the 10th, in this week: B and C (45.50) against A (10.00)
    assert compared(in_utc, in_utc["rows"][0]) == ("45.50", "10.00", "3.5500", 2, 1, "1.0000")


def test_a_month_against_the_same_month_a_year_before(client: FlaskClient, staff: dict[str, str], store: None) -> None:
    body = report(client, staff, "revenue", start="2025-03-01", end="2025-03-31", tz=NEW_YORK, granularity="month",
                  compare="previous_year")  # fmt: skip

    # A, B, C (55.50, 3 orders) against D (51.00, 1): 4.50 / 51 = 0.088235...
    assert (body["compared_start"], body["compared_end"]) == ("2024-03-01", "2024-03-31")
    assert compared(body, body["rows"][0]) == ("55.50", "51.00", "0.0882", 3, 1, "2.0000")
    assert body["rows"][0]["previous_period"] == "2024-03-01"
    assert (body["totals"]["previous_net"], body["totals"]["net_change"]) == ("51.00", "0.0882")


@pytest.mark.parametrize(
    ("tz", "now", "then", "change"),
    [
        (NEW_YORK, "55.50", "71.00", "-0.2183"),  # F is 2024's in New York: D + E + F = 71.00
        ("UTC", "65.50", "61.00", "0.0738"),  # F is 2025's in UTC: A + B + C + F against D + E
    ],
)
def test_a_year_against_the_year_before_in_the_zone_asked_for(
    client: FlaskClient, staff: dict[str, str], store: None, tz: str, now: str, then: str, change: str
) -> None:
    body = report(client, staff, "revenue", start="2025-01-01", end="2025-12-31", tz=tz, granularity="month",
                  compare="previous_year")  # fmt: skip

    totals = body["totals"]
    assert (totals["revenue"], totals["previous_revenue"], totals["revenue_change"]) == (now, then, change)
    assert len(body["rows"]) == 12
    assert sum(Decimal(row["previous_revenue"]) for row in body["rows"]) == Decimal(then)


def test_categories_compared_by_name_and_one_sold_only_before_stays_a_row(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "revenue-by-category", start="2025-03-10", end="2025-03-16", tz=NEW_YORK,
                  compare="previous_period")  # fmt: skip

    rows = [(r["category"], r["revenue"], r["previous_revenue"], r["revenue_change"], r["share"]) for r in body["rows"]]
    assert rows == [
        ("Books", "20.00", "10.00", "1.0000", "1.0000"),
        ("Garden", "0.00", "25.50", "-1.0000", "0.0000"),
    ]  # fmt: skip


def test_nothing_before_to_compare_with_is_no_change_not_a_division_by_zero(
    client: FlaskClient, staff: dict[str, str], store: None
) -> None:
    body = report(client, staff, "revenue", start="2024-03-15", end="2024-03-15", compare="previous_period")

    assert compared(body, body["rows"][0]) == ("51.00", "0.00", None, 1, 0, None)


def test_every_answer_says_how_fresh_it_is(client: FlaskClient, staff: dict[str, str], store: None) -> None:
    window = {"start": "2025-03-01", "end": "2025-03-31"}
    for name in ("revenue", "revenue-by-category", "top-products", "top-customers"):
        as_of = datetime.fromisoformat(report(client, staff, name, **window)["as_of"])
        assert abs((datetime.now(UTC) - as_of).total_seconds()) < 300, name
    csv = client.get(f"{REPORTS}/revenue", query_string=window | {"format": "csv", "compare": "previous_year"},
                     headers=staff)  # fmt: skip
    assert datetime.fromisoformat(csv.headers["Report-As-Of"])
    header = csv.get_data(as_text=True).splitlines()[0].split(",")
    assert header[-7:] == ["previous_period", "previous_orders", "previous_revenue", "previous_net", "orders_change",
                           "revenue_change", "net_change"]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "query"),
    [("revenue", {"compare": "last_week"}), ("top-products", {"compare": "previous_year"})],
)
def test_a_comparison_it_does_not_know_is_a_422(
    client: FlaskClient, staff: dict[str, str], name: str, query: dict[str, str]
) -> None:
    answer = client.get(f"{REPORTS}/{name}", query_string={"start": "2025-03-01", "end": "2025-03-31"} | query,
                        headers=staff)  # fmt: skip

    assert answer.status_code == 422
    assert "compare" in answer.get_json()["errors"]
