"""The seeded store, generated deterministically: the same plan gives the same rows, byte for byte.

Faker supplies the human parts (names, streets, cities, product names and descriptions) from small pools drawn
once; a seeded `random.Random` does the bulk (who orders what, when, how many). Everything is produced as
PostgreSQL COPY text, row by row, so a million orders stream to the database without being held in memory.

Money is integer cents until it is written; timestamps are integer seconds since the epoch (UTC) until then.
"""

from __future__ import annotations

import array
import bisect
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from faker import Faker

from shop.models.order import EXPIRED_REASON
from shop.services.sample_catalog import CATEGORY_PRICES

DAY = 86_400
HOUR = 3_600
PAYMENT_WINDOW = 30 * 60  # ORDER_PAYMENT_WINDOW_MINUTES' default: paid within it, or expired at its end
# seeded customers cannot log in: no password hashes to anything ("!" is never an Argon2 hash)
NO_PASSWORD = "!seeded-account-without-a-password"  # noqa: S105 - a marker, not a credential
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "SE", "ES", "IT", "CA", "AU")

# Busier at weekends and in the run-up to Christmas; a little more trade every month than the one before.
WEEKDAY_WEIGHT = (0.9, 0.85, 0.9, 1.0, 1.15, 1.35, 1.25)  # Monday first
MONTH_WEIGHT = (0.85, 0.8, 0.9, 0.9, 0.95, 0.9, 0.9, 0.95, 1.0, 1.1, 1.45, 1.75)  # January first
HOUR_WEIGHT = (1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 8, 8, 9, 8, 8, 7, 7, 8, 10, 12, 12, 10, 6, 3)
LINES_WEIGHT = {1: 15, 2: 20, 3: 30, 4: 20, 5: 15}  # three lines an order on average
QUANTITY_WEIGHT = {1: 70, 2: 20, 3: 7, 4: 2, 5: 1}


@dataclass(frozen=True)
class SeedPlan:
    users: int
    products: int
    orders: int
    since: date  # first day with orders
    until: date  # the day after the last; "now" for order statuses
    seed: int
    demo_accounts: bool


def copy_text(value: str) -> str:
    """A value as COPY's text format wants it: backslash, tab, newline and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class Timestamps:
    """Epoch seconds as timestamptz text, fast: the date part is formatted once per day and the time of day once
    per second of the day (formatting each took half the time of making ten million orders)."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._times = [f"{second // HOUR:02d}:{second // 60 % 60:02d}:{second % 60:02d}+00" for second in range(DAY)]

    def __call__(self, seconds: int) -> str:
        day, second = divmod(seconds, DAY)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d ")
        return prefix + self._times[second]


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


@dataclass
class Catalog:
    """What orders need of the products: snapshots, prices, popularity; and what they sold."""

    skus: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    price_cents: list[int] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    popularity: list[float] = field(default_factory=list)  # cumulative weights, in product order
    sold: array.array[int] = field(default_factory=lambda: array.array("q"))


@dataclass
class Customers:
    addresses: list[str] = field(default_factory=list)  # shipping address JSON, COPY-escaped
    activity: list[float] = field(default_factory=list)  # cumulative weights: who orders often
    staff_id: int | None = None


class StoreGenerator:
    """Generates the store in the order the loader writes it: users, products, order lines, orders, products' stock."""

    def __init__(self, plan: SeedPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)  # noqa: S311 - fixtures, not secrets
        # people from several countries; products in one language
        self.people = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
        self.people.seed_instance(plan.seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(plan.seed)
        self.timestamp = Timestamps()
        self.catalog = Catalog()
        self.customers = Customers()
        self.start = _epoch(plan.since)
        self.end = _epoch(plan.until)
        self._orders: _OrderHeaders | None = None

    # --- users ----------------------------------------------------------------------------------------------

    def users(self, demo_password_hashes: dict[str, str] | None = None) -> Iterator[str]:
        """Rows of `users`: customers (first), then the demo staff and customer when asked for."""
        fake, rng = self.people, self.rng
        first_names = [fake.first_name() for _ in range(400)]
        last_names = [fake.last_name() for _ in range(400)]
        streets = [fake.street_address() for _ in range(500)]
        cities = [(fake.city(), fake.postcode()) for _ in range(300)]
        domains = [self.fake.free_email_domain() for _ in range(12)]
        joined_span = max(self.end - self.start, DAY)
        activity = []
        for number in range(1, self.plan.users + 1):
            first, last = rng.choice(first_names), rng.choice(last_names)
            name = f"{first} {last}"
            email = f"{_ascii(first)}.{_ascii(last)}.{number}@{rng.choice(domains)}".lower()
            city, postal_code = rng.choice(cities)
            address = {
                "name": name,
                "line1": rng.choice(streets),
                "line2": "",
                "city": city,
                "postal_code": postal_code,
                "country": rng.choice(COUNTRIES),
            }
            self.customers.addresses.append(copy_text(json.dumps(address, ensure_ascii=False)))
            # repeat customers: a few order often, most now and then (a Pareto tail, capped)
            activity.append(min(rng.paretovariate(1.3), 60.0))
            joined = self.timestamp(self.start - rng.randrange(0, joined_span))
            yield f"{number}\t{copy_text(email)}\t{copy_text(name)}\t{NO_PASSWORD}\tcustomer\tt\t{joined}\t{joined}\n"
        if demo_password_hashes is not None:
            joined = self.timestamp(self.start)
            for offset, (role, email) in enumerate(DEMO_ACCOUNTS.items(), start=1):
                user_id = self.plan.users + offset
                name = f"Demo {role.title()}"
                address = {"name": name, "line1": "1 Demo Street", "line2": "", "city": "Springfield",
                           "postal_code": "12345", "country": "US"}  # fmt: skip
                self.customers.addresses.append(copy_text(json.dumps(address)))
                if role == "staff":
                    self.customers.staff_id = user_id
                    activity.append(0.0)  # staff do not shop here
                else:
                    activity.append(8.0)  # the demo customer has a history worth looking at
                password_hash = demo_password_hashes[email]
                yield f"{user_id}\t{email}\t{name}\t{password_hash}\t{role}\tt\t{joined}\t{joined}\n"
        self.customers.activity = _cumulative(activity)

    # --- products -------------------------------------------------------------------------------------------

    def products(self) -> None:
        """Decide the catalog (the rows are written after the orders, with the stock they left)."""
        fake, rng = self.fake, self.rng
        categories = list(CATEGORY_PRICES)
        self._descriptions = [copy_text(fake.paragraph(nb_sentences=3)) for _ in range(min(self.plan.products, 500))]
        for number in range(1, self.plan.products + 1):
            category = categories[rng.randrange(len(categories))]
            low, high = CATEGORY_PRICES[category]
            # shop prices end in .99 or .49
            cents = rng.randint(low, high) * 100 + rng.choice((99, 49))
            self.catalog.skus.append(f"SKU-{number:07d}")
            self.catalog.names.append(copy_text(f"{fake.catch_phrase()} {fake.word()}".title()[:200]))
            self.catalog.price_cents.append(cents)
            self.catalog.categories.append(category)
        # a long tail: rank products at random and weight them 1 / rank (Zipf)
        ranks = list(range(1, self.plan.products + 1))
        rng.shuffle(ranks)
        self.catalog.popularity = _cumulative([1 / rank**1.07 for rank in ranks])
        self.catalog.sold = array.array("q", bytes(8 * self.plan.products))

    def product_rows(self) -> Iterator[str]:
        """Rows of `products`, after the orders: stock is what remains after the non-cancelled orders."""
        rng = self.rng
        created = self.timestamp(self.start - 30 * DAY)
        for index in range(self.plan.products):
            # about one product in twenty is sold out; the rest have a few to a few hundred left
            remaining = 0 if rng.random() < 0.05 else rng.choice((2, 5, 12, 25, 40, 80, 150, 300))
            description = self._descriptions[index % len(self._descriptions)]
            yield (
                f"{index + 1}\t{self.catalog.skus[index]}\t{self.catalog.names[index]}\t{description}\t"
                f"{self.catalog.categories[index]}\t{money(self.catalog.price_cents[index])}\t{remaining}\tt\t"
                f"{created}\t{created}\t1\n"
            )

    # --- orders ---------------------------------------------------------------------------------------------

    def order_items(self) -> Iterator[str]:
        """Rows of `order_items`; decides each order's customer, time and status on the way."""
        orders = self._orders = _OrderHeaders.allocate(self.plan.orders)
        if not self.plan.orders:
            return
        rng, catalog = self.rng, self.catalog
        product_count = self.plan.products
        popularity, last_weight = catalog.popularity, catalog.popularity[-1]
        line_counts = list(LINES_WEIGHT)
        line_count_weights = _cumulative([float(weight) for weight in LINES_WEIGHT.values()])
        last_line_count_weight = line_count_weights[-1]
        quantities = list(QUANTITY_WEIGHT)
        quantity_weights = _cumulative([float(weight) for weight in QUANTITY_WEIGHT.values()])
        last_quantity_weight = quantity_weights[-1]
        # the text of a line that depends only on its product, or on its product and quantity: made once
        product_text = [
            f"\t{product + 1}\t{catalog.skus[product]}\t{catalog.names[product]}\t" for product in range(product_count)
        ]
        quantity_text = [
            {q: f"{q}\t{money(cents)}\t{money(cents * q)}\t" for q in quantities} for cents in catalog.price_cents
        ]
        categories = catalog.categories
        line_id = 0
        random_ = rng.random
        for order_index in orders.drawn(self):
            line_count = line_counts[bisect.bisect(line_count_weights, random_() * last_line_count_weight)]
            wanted = min(line_count, product_count)
            chosen: list[int] = []
            while len(chosen) < wanted:
                product = bisect.bisect(popularity, random_() * last_weight)
                if product < product_count and product not in chosen:
                    chosen.append(product)
            status = orders.status[order_index]
            cancelled = status == CANCELLED
            # what the reports read off each line: the order's time, whether it counts, first of its category
            order_tail = f"{self.timestamp(orders.created[order_index])}\t{'t' if status in COUNTED else 'f'}\t"
            total = units = 0
            order_id = order_index + 1
            seen: list[str] = []
            for product in chosen:
                quantity = quantities[bisect.bisect(quantity_weights, random_() * last_quantity_weight)]
                cents = catalog.price_cents[product]
                total += cents * quantity
                units += quantity
                if not cancelled:
                    catalog.sold[product] += quantity
                line_id += 1
                category = categories[product]
                first = "f" if category in seen else "t"
                seen.append(category)
                yield (
                    f"{line_id}\t{order_id}{product_text[product]}{quantity_text[product][quantity]}"
                    f"{order_tail}{category}\t{first}\n"
                )
            orders.total_cents[order_index] = total
            orders.units[order_index] = units

    def order_rows(self, currency: str) -> Iterator[str]:
        """Rows of `orders`, after their lines (their totals are the sums of those lines)."""
        orders = self._drawn_orders()
        stamp = self.timestamp
        # each customer's previous counted order, for the reports (orders come in time order: id order)
        # and their first (every counted order carries it)
        last_counted: dict[int, str] = {}
        first_counted: dict[int, str] = {}
        for index in range(self.plan.orders):
            user = orders.user[index]
            if orders.status[index] in COUNTED:
                previous = last_counted.get(user, NULL)
                last_counted[user] = created_text = stamp(orders.created[index])
                first = first_counted.setdefault(user, created_text)
            else:
                previous = first = NULL
                created_text = stamp(orders.created[index])
            status = STATUSES[orders.status[index]]
            created, paid, shipped, delivered, cancelled = (
                orders.created[index],
                orders.paid[index],
                orders.shipped[index],
                orders.delivered[index],
                orders.cancelled[index],
            )
            updated = max(created, paid, shipped, delivered, cancelled)
            reference = f"pay_{index + 1:09d}" if paid else "\\N"
            reason = NULL if not cancelled else EXPIRED_REASON if _expired(created, paid, cancelled) else CHANGED_MIND
            yield (
                f"{index + 1}\t{user + 1}\t{status}\t{currency}\t"
                f"{money(orders.total_cents[index])}\t{orders.units[index]}\t"
                f"{self.customers.addresses[user]}\t{reference}\t{reason}\t"
                f"{stamp(paid) if paid else NULL}\t{stamp(shipped) if shipped else NULL}\t"
                f"{stamp(delivered) if delivered else NULL}\t{stamp(cancelled) if cancelled else NULL}\t"
                f"{created_text}\t{stamp(updated)}\t[]\t{previous}\t{first}\n"
            )

    def history_rows(self, currency: str) -> Iterator[str]:
        """Rows of `order_status_changes`, after the orders: every step of every order as the lifecycle would have
        recorded it, order by order and each order's in the order they happened (its history is read in id order).
        Customers place, pay and cancel; staff (the demo staff account, or nobody in production) ship and deliver;
        nobody (shop) expires the unpaid."""
        orders = self._drawn_orders()
        stamp = self.timestamp
        staff = NULL if self.customers.staff_id is None else str(self.customers.staff_id)
        change_id = 0
        for index in range(self.plan.orders):
            order_id, customer = index + 1, orders.user[index] + 1
            created, paid, cancelled = orders.created[index], orders.paid[index], orders.cancelled[index]
            steps = [f"{order_id}\t{NULL}\tpending\t{customer}\t{stamp(created)}\t{NULL}\torder.placed\n"]
            if paid:
                paid_at, total = stamp(paid), money(orders.total_cents[index])
                capture = f"capture of {total} {currency}"
                steps.append(f"{order_id}\tpending\tpending\t{NULL}\t{paid_at}\t{capture}\tpayment.captured\n")
                steps.append(f"{order_id}\tpending\tpaid\t{NULL}\t{paid_at}\tpay_{order_id:09d}\torder.paid\n")
            if orders.shipped[index]:
                steps.append(
                    f"{order_id}\tpaid\tshipped\t{staff}\t{stamp(orders.shipped[index])}\t{NULL}\torder.shipped\n"
                )
            if orders.delivered[index]:
                delivered_at = stamp(orders.delivered[index])
                steps.append(f"{order_id}\tshipped\tdelivered\t{staff}\t{delivered_at}\t{NULL}\torder.delivered\n")
            if cancelled:
                before = "paid" if paid else "pending"
                if _expired(created, paid, cancelled):
                    who, reason, event = NULL, EXPIRED_REASON, "order.expired"
                else:
                    who, reason, event = str(customer), CHANGED_MIND, "order.cancelled"
                steps.append(f"{order_id}\t{before}\tcancelled\t{who}\t{stamp(cancelled)}\t{reason}\t{event}\n")
            for step in steps:
                change_id += 1
                yield f"{change_id}\t{step}"

    def capture_rows(self, currency: str, provider: str) -> Iterator[str]:
        """Rows of `ledger_entries`, after the orders: a capture of its total for every order that was paid, when it
        was paid, under its payment reference (refunds follow, made in SQL: seeding/money.py)."""
        orders = self._drawn_orders()
        stamp = self.timestamp
        entry_id = 0
        for index in range(self.plan.orders):
            if orders.paid[index]:
                entry_id += 1
                yield (
                    f"{entry_id}\t{index + 1}\tcapture\t{money(orders.total_cents[index])}\t{currency}\t"
                    f"{stamp(orders.paid[index])}\t{provider}\tpay_{index + 1:09d}\n"
                )

    def _drawn_orders(self) -> _OrderHeaders:
        """The orders order_items() drew: the rows written after the lines (orders, history, captures) follow them."""
        if self._orders is None:
            raise RuntimeError("order_items() decides the orders; run it first")
        return self._orders

    def staff_id(self) -> int | None:
        return self.customers.staff_id


NULL = "\\N"
CHANGED_MIND = "Changed my mind"  # a customer's reason for cancelling
PENDING, PAID, SHIPPED, DELIVERED, CANCELLED = range(5)
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
COUNTED = frozenset({PAID, SHIPPED, DELIVERED})  # revenue
DEMO_ACCOUNTS = {"staff": "staff@example.com", "customer": "customer@example.com"}


def _expired(created: int, paid: int, cancelled: int) -> bool:
    """An unpaid order cancelled exactly at the payment window's end expired; customers cancel within it."""
    return not paid and cancelled - created == PAYMENT_WINDOW


def _between(random_: Callable[[], float], low: int, high: int) -> int:
    """A whole number in [low, high): randrange's job at a third of its cost (a float has bits enough here)."""
    return low + int(random_() * (high - low))


def _ascii(text: str) -> str:
    return "".join(character for character in text if character.isascii() and character.isalnum()) or "user"


HEADER_FIELDS = ("user", "status", "created", "paid", "shipped", "delivered", "cancelled", "total_cents", "units")


@dataclass
class _OrderHeaders:
    """Per order, in id order (= time order): customer, status and the time of each step (0 = never)."""

    user: array.array[int]
    status: array.array[int]
    created: array.array[int]
    paid: array.array[int]
    shipped: array.array[int]
    delivered: array.array[int]
    cancelled: array.array[int]
    total_cents: array.array[int]
    units: array.array[int]

    @classmethod
    def allocate(cls, count: int) -> _OrderHeaders:
        return cls(
            *(
                array.array("b", bytes(count)) if name == "status" else array.array("q", bytes(8 * count))
                for name in HEADER_FIELDS
            )
        )

    def drawn(self, store: StoreGenerator) -> Iterator[int]:
        """Each order's index, once its customer, time and steps are drawn: one at a time, in time order, so that
        its lines can be written (and loaded) while the orders after it are still to be drawn."""
        rng, plan = store.rng, store.plan
        count = plan.orders
        if not count:
            return
        days = [plan.since + timedelta(days=n) for n in range((plan.until - plan.since).days)]
        growth = 1 / max(len(days), 1)
        day_weights = [
            WEEKDAY_WEIGHT[day.weekday()] * MONTH_WEIGHT[day.month - 1] * (0.8 + 0.4 * n * growth)
            for n, day in enumerate(days)
        ]
        # the year as hours, each weighted by its day and its hour of the day; a time is the point a uniform
        # number falls on along their cumulative weights (through the hour, evenly)
        hour_starts = [_epoch(day) + hour * HOUR for day in days for hour in range(24)]
        hour_weights = [day_weight * weight for day_weight in day_weights for weight in HOUR_WEIGHT]
        cumulative = _cumulative(hour_weights)
        total, last_hour = cumulative[-1], len(cumulative) - 1
        activity = store.customers.activity
        activity_total, last_customer = activity[-1], len(activity) - 1
        random_, bisect_, log, expm1 = rng.random, bisect.bisect, math.log, math.expm1
        now = store.end
        point = 0.0
        for index in range(count):
            # the next of `count` sorted uniform numbers: the least of the count - index still to come, all above
            # the last (sorted without holding them all; Bentley and Saxe, "Generating sorted lists of random
            # numbers", 1980)
            point += (1.0 - point) * -expm1(log(1.0 - random_()) / (count - index))
            at = point * total
            hour = min(bisect_(cumulative, at), last_hour)
            into_hour = (at - (cumulative[hour] - hour_weights[hour])) / hour_weights[hour]
            placed = hour_starts[hour] + min(int(into_hour * HOUR), HOUR - 1)
            self.created[index] = placed
            self.user[index] = min(bisect_(activity, random_() * activity_total), last_customer)
            self._live(index, placed, now, random_)
            yield index

    def _live(self, index: int, placed: int, now: int, random_: Callable[[], float]) -> None:
        """What happened to an order placed at `placed`, as far as `now`: each step after the last, never later."""
        if random_() < 0.07:  # cancelled: before paying, within the payment window; after, within two days
            if random_() < 0.5:
                self.paid[index] = placed + _between(random_, 60, PAYMENT_WINDOW)
                when = self.paid[index] + _between(random_, 600, 2 * DAY)
            else:
                when = placed + _between(random_, 60, PAYMENT_WINDOW)  # never the window's end: that is an expiry
            if when < now:
                self.status[index], self.cancelled[index] = CANCELLED, when
                return
            self.paid[index] = 0
        if random_() < 0.01:  # a few never paid: expired at the window's end, as `flask orders expire` does
            if placed + PAYMENT_WINDOW < now:
                self.status[index], self.cancelled[index] = CANCELLED, placed + PAYMENT_WINDOW
            return
        paid = placed + _between(random_, 60, PAYMENT_WINDOW)
        shipped = paid + _between(random_, 4 * HOUR, 3 * DAY)
        delivered = shipped + _between(random_, DAY, 6 * DAY)
        steps = ((PAID, paid), (SHIPPED, shipped), (DELIVERED, delivered))
        for status, when in steps:
            if when >= now:
                break
            self.status[index] = status
            (self.paid, self.shipped, self.delivered)[status - 1][index] = when
