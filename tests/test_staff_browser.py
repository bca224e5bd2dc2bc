"""The staff pages in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by Selenium
against shop served on 127.0.0.1. Sign in, change the range and the time zone, read the figures on the page and
compare them with the API's JSON for the same range (a daylight-saving day included), follow a needs-attention link,
act on the order, sign out.

Without Chromium the module is skipped, and `make test` says so in its summary (pytest -ra) with the reason."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from shop.extensions import db
from shop.models import User
from tests.conftest import AuthActions
from tests.helpers import add_product
from tests.test_reports import NEW_YORK, REPORTS, add_order, add_user, utc

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "the staff pages' browser tests need Debian's chromium and chromium-driver "
        "(sudo apt-get install chromium chromium-driver); not installed here, so they did not run",
        allow_module_level=True,
    )

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402 - only once Chromium is known to be here
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.commits
STAFF_EMAIL = "staff@example.com"
WAIT_SECONDS = 10


@dataclass
class Shop:
    url: str
    api_headers: dict[str, str]
    pending_order_id: int


@pytest.fixture
def shop(committing_app: Flask) -> Iterator[Shop]:
    """A store with orders either side of New York's change to daylight saving time (9 March 2025), one order
    waiting for payment too long, served on a port of its own for the browser."""
    token = AuthActions(committing_app.test_client()).token_for(STAFF_EMAIL, "staff")
    with committing_app.app_context():
        session = db.session()
        books = add_product(session, "B1", category="Books", price=Decimal("12.50"))
        garden = add_product(session, "G1", category="Garden", price=Decimal("40.00"))
        ann, bob = add_user(session, "ann@example.com"), add_user(session, "bob@example.com")
        for who, moment, status, lines in [
            (ann, "2025-03-03T15:00", "delivered", [(books, 2)]),  # the week before
            (ann, "2025-03-09T04:30", "delivered", [(garden, 1)]),  # 8 March, 23:30 EST in New York
            (bob, "2025-03-09T06:30", "shipped", [(books, 1), (garden, 1)]),  # 9 March, 01:30 EST
            (bob, "2025-03-10T03:30", "paid", [(books, 3)]),  # 9 March, 23:30 EDT: the 23-hour day
            (ann, "2025-03-12T12:00", "cancelled", [(garden, 2)]),  # never counted
        ]:
            add_order(session, who, utc(moment), status, lines)
        waiting = add_order(session, bob, datetime.now(UTC) - timedelta(hours=2), "pending", [(books, 1)])
        session.execute(sa.update(User).where(User.id == bob.id).values(unpaid_orders=1, unpaid_units=1))
        pending_order_id = waiting.id
        session.commit()
    server = make_server("127.0.0.1", 0, committing_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Shop(f"http://127.0.0.1:{server.server_port}", {"Authorization": f"Bearer {token}"}, pending_order_id)
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1400"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.implicitly_wait(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def plain(text: str) -> str:
    """A figure as shown (thousands separated) as the API writes it."""
    return text.replace(",", "").strip()


def api(app: Flask, shop: Shop, report: str, **query: str) -> Any:
    response = app.test_client().get(f"{REPORTS}/{report}", query_string=query, headers=shop.api_headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def click_and_load(driver: Any, element: Any) -> None:
    """Click what leads to another page and wait until that page has replaced this one (reading the old page's
    elements in between would race the navigation)."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, WAIT_SECONDS).until(lambda _: gone(page))


def gone(element: Any) -> bool:
    """Whether the element's page has been replaced. ChromeDriver says so with a stale-element error, or, caught
    mid-navigation, with an "unknown error" that the node does not belong to the document (seen once in CI)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error.msg):
            return True
        raise
    return False


def choose_range(driver: Any, **fields: str) -> None:
    """Fill the page's range form as a person would and submit it."""
    form = driver.find_element(By.ID, "range")
    for name, value in fields.items():
        element = form.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        elif element.get_attribute("type") == "date":
            driver.execute_script("arguments[0].value = arguments[1]", element, value)  # no typing in a date picker
        else:
            element.clear()
            element.send_keys(value)
    click_and_load(driver, form.find_element(By.ID, "apply"))


def test_a_staff_session_from_sign_in_to_sign_out(committing_app: Flask, shop: Shop, browser: Any) -> None:
    browser.get(f"{shop.url}/staff/")
    assert "/staff/login" in browser.current_url  # anonymous: sent to sign in
    browser.find_element(By.NAME, "email").send_keys(STAFF_EMAIL)
    browser.find_element(By.NAME, "password").send_keys(AuthActions.password)
    click_and_load(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"

    # the week of New York's change to daylight saving time, by day, against the week before
    week = {"start": "2025-03-08", "end": "2025-03-14", "tz": NEW_YORK, "granularity": "day",
            "compare": "previous_period"}  # fmt: skip
    choose_range(browser, **week)
    expected = api(committing_app, shop, "revenue", **week)
    new_customers = api(committing_app, shop, "customers", **{k: v for k, v in week.items() if k != "compare"})
    kpi = {key: plain(browser.find_element(By.ID, f"kpi-{key}").text)
           for key in ("revenue", "orders", "average_order_value", "new_customers")}  # fmt: skip
    assert kpi == {
        "revenue": expected["totals"]["revenue"],
        "orders": str(expected["totals"]["orders"]),
        "average_order_value": expected["totals"]["average_order_value"],
        "new_customers": str(new_customers["totals"]["new_customers"]),
    }
    # 8 March: ann's 40.00; 9 March (23 hours): bob's 52.50 and 37.50; the week before: ann's 25.00
    assert (kpi["revenue"], kpi["orders"], kpi["new_customers"]) == ("130.00", "3", "1")
    assert plain(browser.find_element(By.ID, "kpi-revenue-previous").text) == expected["totals"]["previous_revenue"]
    shown = [
        tuple(plain(cell.text) for cell in row.find_elements(By.CSS_SELECTOR, "th, td")[:5])
        for row in browser.find_elements(By.CSS_SELECTOR, "#revenue-table tbody tr")
    ]
    assert shown == [
        (row["period"], str(row["orders"]), row["revenue"], row["refunds"], row["net"]) for row in expected["rows"]
    ]
    assert shown[1] == ("2025-03-09", "2", "90.00", "0.00", "90.00")  # the daylight-saving day

    # the same week in UTC moves ann's order onto the 9th and bob's last onto the 10th
    choose_range(browser, tz="UTC")
    in_utc = api(committing_app, shop, "revenue", **(week | {"tz": "UTC"}))
    shown_utc = [
        plain(cell.text) for cell in browser.find_elements(By.CSS_SELECTOR, "#revenue-table td[data-key=revenue]")
    ]
    assert shown_utc == [row["revenue"] for row in in_utc["rows"]]
    assert shown_utc[:3] == ["0.00", "92.50", "37.50"]

    # the needs-attention list links to the order waiting for payment; staff record its payment there
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Needs attention"))
    pending = browser.find_element(By.ID, "list-pending_overdue")
    assert pending.find_element(By.CSS_SELECTOR, ".count").text == "1"
    click_and_load(browser, pending.find_element(By.LINK_TEXT, f"Order {shop.pending_order_id}"))
    assert browser.find_element(By.ID, "order-id").text == str(shop.pending_order_id)
    assert browser.find_element(By.ID, "order-status").text == "pending"
    browser.find_element(By.NAME, "reference").send_keys("till receipt 42")
    click_and_load(browser, browser.find_element(By.ID, "action-payment"))
    assert browser.find_element(By.ID, "order-status").text == "paid"
    assert "order.paid" in browser.find_element(By.ID, "history").text
    with committing_app.app_context():
        unpaid = db.session.execute(sa.select(User.unpaid_orders).where(User.email == "bob@example.com")).scalar_one()
        db.session.remove()
    assert unpaid == 0

    click_and_load(browser, browser.find_element(By.ID, "sign-out"))
    assert "/staff/login" in browser.current_url
    browser.get(f"{shop.url}/staff/attention")
    assert "/staff/login" in browser.current_url  # the session is over
