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
from collections.abc import Iterator
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

# What the generators yield: the COPY text of one or more rows, and how many. The big tables come many rows to a
# string (about BATCH_ROWS): a yield, a count and a hand-over per row cost as much as making the row did.
Rows = Iterator[tuple[str, int]]
BATCH_ROWS = 4096


class _Batches:
    """Rows written one or a few at a time (`write`), handed on as one string with its count: `take(n)` once the
    batch holds BATCH_ROWS or more strings (`parts`), n being the rows written so far, then `rest(n)` at the end."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.write = self.parts.append
        self._handed = 0

    def take(self, written: int) -> tuple[str, int]:
        text = "".join(self.parts)
        self.parts.clear()
        count, self._handed = written - self._handed, written
        return text, count

    def rest(self, written: int) -> Rows:
        if self.parts:
            yield self.take(written)


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

    def text(self, seconds: int) -> str:
        day, second = divmod(seconds, DAY)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d ")
        return prefix + self._times[second]


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _percentiles(weights: dict[int, int]) -> list[int]:
    """Weights in hundredths as a table of a hundred: the pick for a uniform u is table[int(u * 100)], the same
    pick as bisecting the cumulative weights at u * 100, without the call."""
    if sum(weights.values()) != 100:
        raise ValueError(f"weights must add up to 100: {weights}")
    return [value for value, weight in weights.items() for _ in range(weight)]


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

    def users(self, demo_password_hashes: dict[str, str] | None = None) -> Rows:
        """Rows of `users`: customers (first), then the demo staff and customer when asked for."""
        fake, rng = self.people, self.rng
        first_names = [fake.first_name() for _ in range(400)]
        last_names = [fake.last_name() for _ in range(400)]
        streets = [fake.street_address() for _ in range(500)]
        cities = [(fake.city(), fake.postcode()) for _ in range(300)]
        domains = [self.fake.free_email_domain() for _ in range(12)]
        # each name as an address's local part, made once for the pool
        ascii_names = {name: _ascii(name) for name in (*first_names, *last_names)}
        joined_span = max(self.end - self.start, DAY)
        activity = []
        batches = _Batches()
        write, parts = batches.write, batches.parts
        for number in range(1, self.plan.users + 1):
            first, last = rng.choice(first_names), rng.choice(last_names)
            name = f"{first} {last}"
            email = f"{ascii_names[first]}.{ascii_names[last]}.{number}@{rng.choice(domains)}".lower()
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
            joined = self.timestamp.text(self.start - rng.randrange(0, joined_span))
            write(f"{number}\t{copy_text(email)}\t{copy_text(name)}\t{NO_PASSWORD}\tcustomer\tt\t{joined}\t{joined}\n")
            if len(parts) >= BATCH_ROWS:
                yield batches.take(number)
        yield from batches.rest(self.plan.users)
        if demo_password_hashes is not None:
            joined = self.timestamp.text(self.start)
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
                yield f"{user_id}\t{email}\t{name}\t{password_hash}\t{role}\tt\t{joined}\t{joined}\n", 1
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

    def product_rows(self) -> Rows:
        """Rows of `products`, after the orders: stock is what remains after the non-cancelled orders."""
        rng = self.rng
        created = self.timestamp.text(self.start - 30 * DAY)
        for index in range(self.plan.products):
            # about one product in twenty is sold out; the rest have a few to a few hundred left
            remaining = 0 if rng.random() < 0.05 else rng.choice((2, 5, 12, 25, 40, 80, 150, 300))
            description = self._descriptions[index % len(self._descriptions)]
            row = (
                f"{index + 1}\t{self.catalog.skus[index]}\t{self.catalog.names[index]}\t{description}\t"
                f"{self.catalog.categories[index]}\t{money(self.catalog.price_cents[index])}\t{remaining}\tt\t"
                f"{created}\t{created}\t1\n"
            )
            yield row, 1

    # --- orders ---------------------------------------------------------------------------------------------

    def order_items(self) -> Rows:
        """Rows of `order_items`; decides each order's customer, time and status on the way."""
        orders = self._orders = _OrderHeaders.allocate(self.plan.orders)
        if not self.plan.orders:
            return
        rng, catalog = self.rng, self.catalog
        product_count = self.plan.products
        popularity, last_weight = catalog.popularity, catalog.popularity[-1]
        line_counts, quantities = _percentiles(LINES_WEIGHT), _percentiles(QUANTITY_WEIGHT)
        # the text of a line between its order id and its order's time depends only on its product and quantity,
        # and after that only on its product and whether it is the first of its category: all made once
        middles = [
            [""]
            + [
                f"\t{product + 1}\t{catalog.skus[product]}\t{catalog.names[product]}\t{quantity}\t{money(cents)}\t"
                f"{money(cents * quantity)}\t"
                for quantity in range(1, max(QUANTITY_WEIGHT) + 1)
            ]
            for product, cents in enumerate(catalog.price_cents)
        ]
        ends = [(f"{category}\tt\n", f"{category}\tf\n") for category in catalog.categories]
        categories, price_cents, sold = catalog.categories, catalog.price_cents, catalog.sold
        status_of, created_of, total_of, units_of = orders.status, orders.created, orders.total_cents, orders.units
        random_, bisect_, stamp = rng.random, bisect.bisect, self.timestamp.text
        batches = _Batches()
        write, parts = batches.write, batches.parts
        line_id = 0
        for order_index in orders.drawn(self):
            wanted = min(line_counts[int(random_() * 100.0)], product_count)
            chosen: list[int] = []
            while len(chosen) < wanted:
                product = bisect_(popularity, random_() * last_weight)
                if product < product_count and product not in chosen:
                    chosen.append(product)
            status = status_of[order_index]
            cancelled = status == CANCELLED
            # what the reports read off each line: the order's time, whether it counts, first of its category
            order_tail = f"{stamp(created_of[order_index])}\t{'t' if status in COUNTED else 'f'}\t"
            head = f"\t{order_index + 1}"
            total = units = 0
            seen: list[str] = []
            for product in chosen:
                quantity = quantities[int(random_() * 100.0)]
                total += price_cents[product] * quantity
                units += quantity
                if not cancelled:
                    sold[product] += quantity
                line_id += 1
                category = categories[product]
                write(f"{line_id}{head}{middles[product][quantity]}{order_tail}{ends[product][category in seen]}")
                seen.append(category)
            total_of[order_index] = total
            units_of[order_index] = units
            if len(parts) >= BATCH_ROWS:
                yield batches.take(line_id)
        yield from batches.rest(line_id)

    def order_rows(self, currency: str) -> Rows:
        """Rows of `orders`, after their lines (their totals are the sums of those lines)."""
        orders = self._drawn_orders()
        stamp, addresses = self.timestamp.text, self.customers.addresses
        user_of, status_of, created_of, paid_of, shipped_of, delivered_of, cancelled_of, total_of, units_of = (
            getattr(orders, name) for name in HEADER_FIELDS
        )
        # each customer's previous counted order, for the reports (orders come in time order: id order)
        # and their first (every counted order carries it)
        last_counted: dict[int, str] = {}
        first_counted: dict[int, str] = {}
        batches = _Batches()
        write, parts = batches.write, batches.parts
        for index in range(self.plan.orders):
            user, status = user_of[index], status_of[index]
            created, paid, shipped = created_of[index], paid_of[index], shipped_of[index]
            delivered, cancelled = delivered_of[index], cancelled_of[index]
            # each step is later than the one before: the last one's time is the order's updated_at
            updated = created_text = stamp(created)
            if status in COUNTED:
                previous = last_counted.get(user, NULL)
                last_counted[user] = created_text
                first = first_counted.setdefault(user, created_text)
            else:
                previous = first = NULL
            paid_text = shipped_text = delivered_text = cancelled_text = reference = reason = NULL
            if paid:
                updated = paid_text = stamp(paid)
                reference = f"pay_{index + 1:09d}"
                if shipped:
                    updated = shipped_text = stamp(shipped)
                    if delivered:
                        updated = delivered_text = stamp(delivered)
            if cancelled:
                updated = cancelled_text = stamp(cancelled)
                reason = EXPIRED_REASON if _expired(created, paid, cancelled) else CHANGED_MIND
            write(
                f"{index + 1}\t{user + 1}\t{STATUSES[status]}\t{currency}\t{money(total_of[index])}\t"
                f"{units_of[index]}\t{addresses[user]}\t{reference}\t{reason}\t{paid_text}\t{shipped_text}\t"
                f"{delivered_text}\t{cancelled_text}\t{created_text}\t{updated}\t[]\t{previous}\t{first}\n"
            )
            if len(parts) >= BATCH_ROWS:
                yield batches.take(index + 1)
        yield from batches.rest(self.plan.orders)

    def history_rows(self, currency: str) -> Rows:
        """Rows of `order_status_changes`, after the orders: every step of every order as the lifecycle would have
        recorded it, order by order and each order's in the order they happened (its history is read in id order).
        Customers place, pay and cancel; staff (the demo staff account, or nobody in production) ship and deliver;
        nobody (shop) expires the unpaid."""
        orders = self._drawn_orders()
        stamp = self.timestamp.text
        user_of, created_of, paid_of, shipped_of, delivered_of, cancelled_of, total_of = (
            orders.user, orders.created, orders.paid, orders.shipped, orders.delivered, orders.cancelled,
            orders.total_cents,
        )  # fmt: skip
        staff = NULL if self.customers.staff_id is None else str(self.customers.staff_id)
        batches = _Batches()
        write, parts = batches.write, batches.parts
        change_id = 0
        for index in range(self.plan.orders):
            order_id, customer = index + 1, user_of[index] + 1
            created, paid, cancelled = created_of[index], paid_of[index], cancelled_of[index]
            change_id += 1
            write(f"{change_id}\t{order_id}\t{NULL}\tpending\t{customer}\t{stamp(created)}\t{NULL}\torder.placed\n")
            if paid:
                paid_at, total = stamp(paid), money(total_of[index])
                write(
                    f"{change_id + 1}\t{order_id}\tpending\tpending\t{NULL}\t{paid_at}\tcapture of {total} {currency}\t"
                    f"payment.captured\n{change_id + 2}\t{order_id}\tpending\tpaid\t{NULL}\t{paid_at}\t"
                    f"pay_{order_id:09d}\torder.paid\n"
                )
                change_id += 2
                if shipped := shipped_of[index]:
                    change_id += 1
                    write(f"{change_id}\t{order_id}\tpaid\tshipped\t{staff}\t{stamp(shipped)}\t{NULL}\torder.shipped\n")
                    if delivered := delivered_of[index]:
                        change_id += 1
                        write(
                            f"{change_id}\t{order_id}\tshipped\tdelivered\t{staff}\t{stamp(delivered)}\t{NULL}\t"
                            "order.delivered\n"
                        )
            if cancelled:
                before = "paid" if paid else "pending"
                if _expired(created, paid, cancelled):
                    who, reason, event = NULL, EXPIRED_REASON, "order.expired"
                else:
                    who, reason, event = str(customer), CHANGED_MIND, "order.cancelled"
                change_id += 1
                write(f"{change_id}\t{order_id}\t{before}\tcancelled\t{who}\t{stamp(cancelled)}\t{reason}\t{event}\n")
            if len(parts) >= BATCH_ROWS:
                yield batches.take(change_id)
        yield from batches.rest(change_id)

    def capture_rows(self, currency: str, provider: str) -> Rows:
        """Rows of `ledger_entries`, after the orders: a capture of its total for every order that was paid, when it
        was paid, under its payment reference (refunds follow, made in SQL: seeding/money.py)."""
        orders = self._drawn_orders()
        stamp, paid_of, total_of = self.timestamp.text, orders.paid, orders.total_cents
        batches = _Batches()
        write, parts = batches.write, batches.parts
        entry_id = 0
        for index in range(self.plan.orders):
            if paid := paid_of[index]:
                entry_id += 1
                write(
                    f"{entry_id}\t{index + 1}\tcapture\t{money(total_of[index])}\t{currency}\t{stamp(paid)}\t"
                    f"{provider}\tpay_{index + 1:09d}\n"
                )
                if len(parts) >= BATCH_ROWS:
                    yield batches.take(entry_id)
        yield from batches.rest(entry_id)

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
        # the customer is where a uniform number falls on their cumulative weights: bisecting all half a million
        # of them missed the CPU's caches at every step (1.8 us an order), so each of 65,536 equal slices of the
        # weights knows where the customers of the slices either side of it start and end, and the bisecting
        # happens between those (the same answer: a slice is far wider than a rounding error)
        slices = 1 << 16
        per_weight = slices / activity_total
        slice_starts = array.array(
            "q", [bisect.bisect(activity, (k - 1) / per_weight) if k else 0 for k in range(slices + 4)]
        )
        random_, bisect_, log, expm1 = rng.random, bisect.bisect, math.log, math.expm1
        user_of, status_of, created_of = self.user, self.status, self.created
        paid_of, shipped_of, delivered_of, cancelled_of = self.paid, self.shipped, self.delivered, self.cancelled
        now = store.end
        point, hour = 0.0, 0
        for index in range(count):
            # the next of `count` sorted uniform numbers: the least of the count - index still to come, all above
            # the last (sorted without holding them all; Bentley and Saxe, "Generating sorted lists of random
            # numbers", 1980)
            point += (1.0 - point) * -expm1(log(1.0 - random_()) / (count - index))
            at = point * total
            # the first hour whose cumulative weight passes `at` (what bisecting would find): the points only grow,
            # so the hour is the last one's or a later one
            while hour < last_hour and cumulative[hour] <= at:
                hour += 1
            into_hour = (at - (cumulative[hour] - hour_weights[hour])) / hour_weights[hour]
            placed = hour_starts[hour] + min(int(into_hour * HOUR), HOUR - 1)
            created_of[index] = placed
            spot = random_() * activity_total
            first = int(spot * per_weight)
            user_of[index] = min(bisect_(activity, spot, slice_starts[first], slice_starts[first + 3]), last_customer)
            # what happened to it, as far as now: each step after the last, never later. A wait between low and
            # high seconds is low + int(u * (high - low)): randrange's job at a third of its cost (a float has bits
            # enough here), written out, as this runs ten million times
            if random_() < 0.07:  # cancelled: before paying, within the payment window; after, within two days
                if random_() < 0.5:
                    paid = placed + 60 + int(random_() * (PAYMENT_WINDOW - 60))
                    when = paid + 600 + int(random_() * (2 * DAY - 600))
                else:
                    paid = 0
                    when = placed + 60 + int(random_() * (PAYMENT_WINDOW - 60))  # the window's end is an expiry
                if when < now:
                    status_of[index], paid_of[index], cancelled_of[index] = CANCELLED, paid, when
                    yield index
                    continue
            if random_() < 0.01:  # a few never paid: expired at the window's end, as `flask orders expire` does
                if placed + PAYMENT_WINDOW < now:
                    status_of[index], cancelled_of[index] = CANCELLED, placed + PAYMENT_WINDOW
                yield index
                continue
            paid = placed + 60 + int(random_() * (PAYMENT_WINDOW - 60))
            shipped = paid + 4 * HOUR + int(random_() * (3 * DAY - 4 * HOUR))
            delivered = shipped + DAY + int(random_() * (5 * DAY))
            if paid < now:
                status_of[index], paid_of[index] = PAID, paid
                if shipped < now:
                    status_of[index], shipped_of[index] = SHIPPED, shipped
                    if delivered < now:
                        status_of[index], delivered_of[index] = DELIVERED, delivered
            yield index
