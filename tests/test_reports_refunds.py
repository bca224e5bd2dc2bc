"""Refunds in the revenue reports: a refund counts in the period it was paid out, not in its order's; net = revenue -
refunds in every row and in the totals, in every zone; the category and product reports are net of refunded lines."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.models import LedgerEntry, Order, Refund, RefundLine
from tests.conftest import AuthActions
from tests.helpers import add_product
from tests.test_reports import NEW_YORK, add_order, add_user, report, utc


def add_refund(
    session: Any, order: Order, at: datetime, amount: str, lines: list[tuple[int, int, str]] | None = None
) -> Refund:
    """A refund of `order` paid out at `at` (by hand), of `amount`, and of `lines` (index of the order's line,
    quantity, amount), written as shop.services.refunds writes one."""
    refund = Refund(
        order_id=order.id, amount=Decimal(amount), currency="USD", reason="test", status="succeeded",
        created_at=at, succeeded_at=at,
    )  # fmt: skip
    session.add(refund)
    session.flush()
    for index, quantity, share in lines or []:
        item = order.items[index]
        session.add(
            RefundLine(refund_id=refund.id, order_item_id=item.id, product_id=item.product_id, category=item.category,
                       quantity=quantity, amount=Decimal(share))
        )  # fmt: skip
    session.add(
        LedgerEntry(order_id=order.id, kind="refund", amount=Decimal(amount), currency="USD", occurred_at=at,
                    refund_id=refund.id, in_revenue=order.status in {"paid", "shipped", "delivered"})
    )  # fmt: skip
    session.flush()
    return refund


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


@pytest.fixture
def refunded(db_session: Any) -> dict[str, Any]:
    books = add_product(db_session, "R1", category="Books", price=Decimal("10.00"))
    garden = add_product(db_session, "R2", category="Garden", price=Decimal("25.50"))
    ann = add_user(db_session, "ann@example.com")
    # February: 2 books and a garden item, 45.50; one book refunded on 5 March
    february = add_order(db_session, ann, utc("2025-02-10T12:00"), "delivered", [(books, 2), (garden, 1)])
    add_refund(db_session, february, utc("2025-03-05T12:00"), "10.00", [(0, 1, "10.00")])
    # 8 March 23:30 EST (the 9th in UTC): a garden item, refunded 5.00 by amount alone at 10 March 01:30 EDT
    # (05:30 UTC), after the change to daylight saving time
    march = add_order(db_session, ann, utc("2025-03-09T04:30"), "paid", [(garden, 1)])
    add_refund(db_session, march, utc("2025-03-10T05:30"), "5.00")
    # a cancelled order's refund (a capture after it expired, given back) is not revenue's to lower
    cancelled = add_order(db_session, ann, utc("2025-03-01T12:00"), "cancelled", [(books, 1)])
    add_refund(db_session, cancelled, utc("2025-03-02T12:00"), "10.00")
    return {"books": books, "garden": garden}


def test_a_march_refund_of_a_february_order_lowers_march_and_leaves_february_alone(
    client: FlaskClient, staff: dict[str, str], refunded: dict[str, Any]
) -> None:
    body = report(client, staff, "revenue", start="2025-02-01", end="2025-03-31", granularity="month")

    assert [(r["period"], r["revenue"], r["refunds"], r["net"]) for r in body["rows"]] == [
        ("2025-02-01", "45.50", "0.00", "45.50"),
        ("2025-03-01", "25.50", "15.00", "10.50"),
    ]
    assert (body["totals"]["revenue"], body["totals"]["refunds"], body["totals"]["net"]) == ("71.00", "15.00", "56.00")


def test_refunds_fall_on_the_local_day_they_were_paid_out_across_the_daylight_saving_change(
    client: FlaskClient, staff: dict[str, str], refunded: dict[str, Any]
) -> None:
    new_york = report(client, staff, "revenue", start="2025-03-04", end="2025-03-10", tz=NEW_YORK, granularity="day")
    in_utc = report(client, staff, "revenue", start="2025-03-04", end="2025-03-10", granularity="day")

    def money(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {
            r["period"]: (r["revenue"], r["refunds"]) for r in body["rows"] if r["revenue"] != r["net"] or r["orders"]
        }

    # the order is the 8th in New York and the 9th in UTC; the 5.00 refund is the 10th in both (01:30 EDT)
    assert money(new_york) == {"2025-03-05": ("0.00", "10.00"), "2025-03-08": ("25.50", "0.00"),
                               "2025-03-10": ("0.00", "5.00")}  # fmt: skip
    assert money(in_utc) == {"2025-03-05": ("0.00", "10.00"), "2025-03-09": ("25.50", "0.00"),
                             "2025-03-10": ("0.00", "5.00")}  # fmt: skip


def test_a_refund_just_before_local_midnight_is_that_day_in_the_zone_and_the_next_in_utc(
    client: FlaskClient, staff: dict[str, str], db_session: Any
) -> None:
    lamp = add_product(db_session, "R3", category="Home", price=Decimal("8.00"))
    bo = add_user(db_session, "bo@example.com")
    order = add_order(db_session, bo, utc("2025-03-01T12:00"), "delivered", [(lamp, 1)])
    add_refund(db_session, order, utc("2025-03-09T04:59"), "8.00")  # 8 March 23:59 EST

    zone = report(client, staff, "revenue", start="2025-03-08", end="2025-03-09", tz=NEW_YORK, granularity="day")
    utc_day = report(client, staff, "revenue", start="2025-03-08", end="2025-03-09", granularity="day")

    assert [r["refunds"] for r in zone["rows"]] == ["8.00", "0.00"]
    assert [r["refunds"] for r in utc_day["rows"]] == ["0.00", "8.00"]


def test_categories_and_top_products_are_net_of_refunded_lines_in_the_refunds_period(
    client: FlaskClient, staff: dict[str, str], refunded: dict[str, Any]
) -> None:
    march = {"start": "2025-03-01", "end": "2025-03-31"}
    categories = report(client, staff, "revenue-by-category", **march)
    products = report(client, staff, "top-products", **march)
    february = report(client, staff, "revenue-by-category", start="2025-02-01", end="2025-02-28")

    # March: the garden item of 9 March (25.50), and the book refunded on 5 March (-10.00, -1 unit); the refund of an
    # amount alone (5.00) lowers the revenue report's net, no category's
    assert [
        (r["category"], r["units"], r["revenue"], r["refunds"], r["net"], r["share"]) for r in categories["rows"]
    ] == [
        ("Garden", 1, "25.50", "0.00", "25.50", "1.0000"),
        ("Books", -1, "0.00", "10.00", "-10.00", "0.0000"),
    ]
    assert [(r["product_id"], r["units"], r["revenue"]) for r in products["rows"]] == [
        (refunded["garden"].id, 1, "25.50"),
        (refunded["books"].id, -1, "-10.00"),
    ]
    assert [(r["category"], r["net"]) for r in february["rows"]] == [("Garden", "25.50"), ("Books", "20.00")]


refunds_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=89 * 24 * 60),  # the order: minutes into the 90 days from 2025-01-01
        st.integers(min_value=0, max_value=30 * 24 * 60),  # the refund: minutes after the order
        st.sampled_from(["paid", "shipped", "delivered"]),
        st.integers(1, 3),  # units of the one line
        st.booleans(),  # refund the line, or an amount alone
    ),
    max_size=15,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=refunds_strategy, tz=st.sampled_from(["UTC", NEW_YORK, "Asia/Kathmandu", "America/St_Johns"]))
def test_gross_less_refunds_is_net_in_every_row_and_day_week_and_month_agree(
    client: FlaskClient, staff: dict[str, str], db_session: Any, cases: list[Any], tz: str
) -> None:
    example = db_session.begin_nested()
    try:
        product = add_product(db_session, "PROP", category="C", price=Decimal("19.99"))
        user = add_user(db_session, "prop@example.com")
        for placed, after, status, units, by_line in cases:
            created = utc("2025-01-01T00:00") + timedelta(minutes=placed)
            order = add_order(db_session, user, created, status, [(product, units)])
            amount = str(Decimal("19.99") * units) if by_line else "1.00"
            add_refund(db_session, order, created + timedelta(minutes=after), amount,
                       [(0, units, amount)] if by_line else None)  # fmt: skip
        window = {"start": "2025-01-02", "end": "2025-04-30", "tz": tz}

        nets = set()
        for granularity in ("day", "week", "month"):
            body = report(client, staff, "revenue", granularity=granularity, **window)
            for row in [*body["rows"], body["totals"]]:
                assert Decimal(row["revenue"]) - Decimal(row["refunds"]) == Decimal(row["net"])
            assert sum(Decimal(row["net"]) for row in body["rows"]) == Decimal(body["totals"]["net"])
            assert sum(Decimal(row["refunds"]) for row in body["rows"]) == Decimal(body["totals"]["refunds"])
            nets.add(body["totals"]["net"])
        assert len(nets) == 1, nets
        categories = report(client, staff, "revenue-by-category", **window)
        line_refunds = sum(
            Decimal("19.99") * units
            for placed, after, _, units, by_line in cases
            if by_line and _within(placed + after, window)
        )
        assert sum(Decimal(row["refunds"]) for row in categories["rows"]) == line_refunds
    finally:
        example.rollback()


def _within(minutes: int, window: dict[str, str]) -> bool:
    moment = (utc("2025-01-01T00:00") + timedelta(minutes=minutes)).astimezone(ZoneInfo(window["tz"]))
    return window["start"] <= moment.date().isoformat() <= window["end"]
