"""Screenshots of the staff pages for the docs, taken in headless Chromium (Debian's chromium and chromium-driver).

    python scripts/staff_screenshots.py --base-url http://127.0.0.1:8000 --email staff@example.com \\
        --password shop-demo-password --out docs/images

Signs in, then saves the overview and the customers page for the range given (default: the last twelve months by
month in New York, compared with the year before). Nothing is downloaded: the browser and driver must be installed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

WIDTH, HEIGHT = 1280, 1500


def browser() -> webdriver.Chrome:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--email", default="staff@example.com")
    parser.add_argument("--password", default="shop-demo-password")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--end", type=date.fromisoformat, default=datetime.now(UTC).date() - timedelta(days=1))
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    start = date(arguments.end.year - 1, arguments.end.month, 1) + timedelta(days=31)
    start = start.replace(day=1)
    query = {"start": start.isoformat(), "end": arguments.end.isoformat(), "tz": "America/New_York",
             "granularity": "month", "compare": "previous_year"}  # fmt: skip
    driver = browser()
    try:
        driver.get(f"{arguments.base_url}/staff/login")
        driver.find_element(By.NAME, "email").send_keys(arguments.email)
        driver.find_element(By.NAME, "password").send_keys(arguments.password)
        login_page = driver.find_element(By.TAG_NAME, "html")
        driver.find_element(By.ID, "sign-in").click()
        WebDriverWait(driver, 10).until(expected_conditions.staleness_of(login_page))  # signed in first
        for page, name in (("/staff/", "staff-overview.png"), ("/staff/customers", "staff-customers.png")):
            driver.get(f"{arguments.base_url}{page}?{urlencode(query)}")
            driver.set_window_size(WIDTH, driver.execute_script("return document.documentElement.scrollHeight"))
            driver.save_screenshot(str(arguments.out / name))
            print(arguments.out / name)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
