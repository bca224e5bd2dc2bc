"""Benchmark harness: the service under gunicorn with production settings, load from a separate process.

    make bench                                    # embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set
    make bench BENCH_ARGS="--duration 20 --connections 32 --scenario healthz"

It makes a fresh database `<name>_bench` next to the one DATABASE_URL names (yours is never touched),
migrates it and loads a catalog (10,000 products by default), then starts gunicorn (gunicorn.conf.py,
APP_ENV=production, a generated SECRET_KEY) on a free loopback port once per server configuration: with
the catalog cache, and without it for the "uncached" rows. Each scenario is driven with wrk when it is
installed, else with a small asyncio HTTP/1.1 keep-alive client in its own process; one table row per
scenario, with its requests/s as a fraction of /healthz in the same run. Everything listens on 127.0.0.1
and stops by itself when the run ends; the bench database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.server
import itertools
import json
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import redis
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from config import normalize_database_url
from shop.devservices import gunicorn_server
from shop.local_pgbouncer import local_pgbouncer

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    what: str
    server: str = "cached"
    orders: str | None = None  # "uniform" or "hot": POST 3-line orders instead of GET
    pgbench: bool = False  # the order transaction run by pgbench instead of through the service


ADDRESS = {"name": "Bench", "line1": "1 Load St", "city": "Loopback", "postal_code": "12700", "country": "US"}
HOT_PRODUCT = 1000


def order_product_ids(kind: str, rng: random.Random) -> list[int]:
    """Three distinct products: uniform over 1..999, or the hot product 1000 with two others."""
    if kind == "hot":
        return [HOT_PRODUCT, rng.randint(1, 499), rng.randint(500, 999)]
    return [rng.randint(1, 333), rng.randint(334, 666), rng.randint(667, 999)]


# each server configuration is one gunicorn run, with these settings on top of production's
SERVERS: dict[str, dict[str, str]] = {
    "cached": {},
    "uncached": {"CATALOG_CACHE_ENABLED": "false"},
}

# later issues add their scenarios here; /healthz is the floor every endpoint is compared with.
# {product} is a product in the middle of the loaded catalog.
SCENARIOS = [
    Scenario("healthz", "/healthz", "the floor: routing and JSON, nothing else"),
    Scenario("readyz", "/readyz", "one PostgreSQL round trip and one Redis PING"),
    Scenario("products", "/api/v1/products?page=1&per_page=20", "a cached list page (near cache: no round trip)"),
    Scenario("product", "/api/v1/products/{product}", "a cached product detail (near cache: no round trip)"),
    Scenario("products-uncached", "/api/v1/products?page=1&per_page=20", "the list page from PostgreSQL", "uncached"),
    Scenario("product-uncached", "/api/v1/products/{product}", "the detail from PostgreSQL", "uncached"),
    Scenario("orders-uniform", "/api/v1/orders", "3-line orders over 1,000 products", orders="uniform"),
    Scenario("orders-hot", "/api/v1/orders", "3-line orders, every one holding product 1000", orders="hot"),
    # run with the order scenarios, in the same interleaved rounds, so a noisy moment on the machine hits both
    Scenario("pgbench-ceiling", "", "the order transaction run by pgbench: PostgreSQL's ceiling", pgbench=True),
]


READ_SCENARIOS = {s.name for s in SCENARIOS if s.orders is None and not s.pgbench}


@dataclass(frozen=True)
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    tool: str

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- the Python load generator -----------------------------------------------------------------


def request_maker(port: int, scenario: Scenario, token: str | None) -> Callable[[], bytes]:
    """The bytes of the next request: one fixed GET, or a new order with a key of its own each time."""
    host = f"Host: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
    if scenario.orders is None:
        fixed = f"GET {scenario.path} HTTP/1.1\r\n{host}\r\n".encode()
        return lambda: fixed
    rng = random.Random()
    prefix = secrets.token_hex(6)
    counter = itertools.count()
    kind = scenario.orders

    def next_order() -> bytes:
        lines = [{"product_id": product_id, "quantity": 1} for product_id in order_product_ids(kind, rng)]
        body = json.dumps({"items": lines, "shipping_address": ADDRESS}).encode()
        head = (
            f"POST {scenario.path} HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\n"
            f"Idempotency-Key: bench-{prefix}-{next(counter)}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    return next_order


async def _connection_loop(
    port: int, make_request: Callable[[], bytes], deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            request = make_request()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if length is None:
                raise RuntimeError("response without Content-Length")
            await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                errors[0] += 1
            if re.search(rb"(?i)connection:\s*close", head):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _drive(
    port: int, scenario: Scenario, tokens: Sequence[str], connections: int, seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds
    # each connection a customer of its own (one customer's orders are counted unpaid one at a time)
    makers = [request_maker(port, scenario, tokens[n % len(tokens)] if tokens else None) for n in range(connections)]
    outcomes = await asyncio.gather(
        *(_connection_loop(port, make_request, deadline, latencies, errors) for make_request in makers),
        return_exceptions=True,
    )
    errors[0] += sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
    return latencies, errors[0]


def _load_process(
    port: int,
    scenario: Scenario,
    tokens: Sequence[str],
    connections: int,
    seconds: float,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    results.put(asyncio.run(_drive(port, scenario, tokens, connections, seconds)))


def python_load(port: int, scenario: Scenario, connections: int, seconds: float, tokens: Sequence[str] = ()) -> Result:
    """Waits for every response in flight at the deadline, so its count of answers is exact."""
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    loader = multiprocessing.Process(
        target=_load_process, args=(port, scenario, list(tokens), connections, seconds, results)
    )
    started = time.monotonic()
    loader.start()
    latencies, errors = results.get(timeout=seconds + 60)
    loader.join(timeout=30)
    elapsed = min(time.monotonic() - started, seconds) or seconds
    latencies.sort()
    return Result(
        scenario=scenario.name,
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        tool="python",
    )


# --- wrk, when installed -------------------------------------------------------------------------


def _wrk_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_load(wrk: str, port: int, scenario: Scenario, connections: int, seconds: float) -> Result:
    output = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", f"http://127.0.0.1:{port}{scenario.path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.MULTILINE))

    def ms(text: str) -> float:
        match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
        return _wrk_ms(match.group(1), match.group(2)) if match else float("nan")

    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return Result(scenario.name, requests, errors, seconds, ms(latency["50"]), ms(latency["99"]), "wrk")


# --- nginx in front, as deployed ---------------------------------------------------------------

NGINX_MAIN = """\
{user}daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/shop.conf;
}}
"""


def nginx_site(app_port: int, proxy_port: int) -> str:
    """deploy/nginx.conf itself, pointed at the loopback gunicorn: only the addresses change."""
    site = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    replacements = {
        "server app:8000 resolve;": f"server 127.0.0.1:{app_port};",
        "listen 80 default_server;": f"listen 127.0.0.1:{proxy_port} default_server;",
    }
    for old, new in replacements.items():
        if old not in site:
            raise SystemExit(f"deploy/nginx.conf no longer says {old!r}: update scripts/bench.py's nginx_site")
        site = site.replace(old, new)
    return re.sub(r"(?m)^resolver .*;$", "", site)  # Docker's DNS is not here, and nothing needs resolving


@contextlib.contextmanager
def nginx_proxy(app_port: int) -> Iterator[int]:
    """nginx with deploy/nginx.conf in front of gunicorn on a free loopback port until the block ends."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    folder = Path(tempfile.mkdtemp(prefix="shop-bench-nginx-"))
    proxy_port = _free_port()
    (folder / "shop.conf").write_text(nginx_site(app_port, proxy_port), encoding="utf-8")
    user = "user root;\n" if os.geteuid() == 0 else ""  # else its workers could not write the temporary folder
    (folder / "nginx.conf").write_text(NGINX_MAIN.format(folder=folder, user=user), encoding="utf-8")
    process = subprocess.Popen([binary, "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{proxy_port}/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"nginx did not start: {(folder / 'error.log').read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield proxy_port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- webhooks: the outbox delivered while orders are placed --------------------------------------


class ReceiverServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the worker opens up to 16 connections at once; the default backlog is 5


class BenchReceiver:
    """A webhook receiver on 127.0.0.1 that notes when each event arrived, to measure commit-to-delivery."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                occurred = datetime.fromisoformat(json.loads(body)["occurred_at"]).timestamp()
                receiver.latencies.append(arrived - occurred)
                receiver.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ReceiverServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[int(fraction * (len(ordered) - 1))] if ordered else float("nan")


@dataclasses.dataclass
class BenchWebhook:
    """The endpoint the worker delivers to, which the pgbench rounds turn off: PostgreSQL's ceiling is measured
    without delivery (and what pgbench writes is not delivered: an endpoint turned back on goes on from then)."""

    receiver: BenchReceiver
    base_url: str
    token: str
    endpoint_id: int

    def set_active(self, active: bool) -> None:
        request = urllib.request.Request(  # noqa: S310 - the loopback server we started
            f"{self.base_url}/api/v1/webhooks/{self.endpoint_id}",
            data=json.dumps({"is_active": active}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="PATCH",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass


@contextlib.contextmanager
def webhook_delivery(base_url: str, environ: dict[str, str]) -> Iterator[BenchWebhook]:
    """An endpoint for order.placed on a local receiver, and one delivery worker, for the length of the block."""
    receiver = BenchReceiver()
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    token = bench_token(base_url, environ, role="staff")
    request = urllib.request.Request(  # noqa: S310 - the loopback server we started
        f"{base_url}/api/v1/webhooks",
        data=json.dumps({"url": receiver.url, "event_types": ["order.placed"]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        endpoint_id = int(json.loads(response.read())["id"])
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "shop", "events", "deliver"],
        cwd=PROJECT_ROOT, env=environ, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield BenchWebhook(receiver, base_url, token, endpoint_id)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        receiver.server.shutdown()


# --- CPU per order, from /proc ------------------------------------------------------------------

TIERS = ("gunicorn", "postgres", "redis", "load", "worker", "pgbouncer")


def _tree_seconds(root: psutil.Process) -> float:
    """CPU seconds of a process and its children: live ones read directly, exited (reaped) ones through the
    parent's children_* times, so a backend that ends between two samples is still counted whole."""
    times = root.cpu_times()
    total: float = times.user + times.system + times.children_user + times.children_system
    for child in root.children():
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def _local_process(pid: int | None, name: str) -> psutil.Process | None:
    """The process, if it runs on this machine and is what it should be (a server in a container is not)."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        return process if name in process.name() or name in " ".join(process.cmdline()) else None
    except psutil.Error:
        return None


class CpuMeter:
    """Cumulative CPU seconds of each tier: gunicorn (master and workers), PostgreSQL (the postmaster and every
    backend), Redis, the load generator (this process's reaped children: the Python client, or pgbench), and
    pgbouncer with --pooler."""

    pooler: psutil.Process | None = None

    def __init__(self, database_url: str, redis_url: str) -> None:
        with _cursor(make_url(database_url)) as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = _local_process(int(cursor.fetchone()[0]), "postgres")
        self.postmaster = _local_process(backend.ppid(), "postgres") if backend else None
        client = redis.Redis.from_url(redis_url)
        try:
            self.redis = _local_process(int(client.info("server")["process_id"]), "redis")
        finally:
            client.close()

    @staticmethod
    def _child(name: str) -> psutil.Process | None:
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if name in " ".join(child.cmdline()):
                    return child
        return None

    def sample(self) -> dict[str, float | None]:
        own = resource.getrusage(resource.RUSAGE_CHILDREN)
        gunicorn, worker = self._child("gunicorn"), self._child("events deliver")
        return {
            "gunicorn": _tree_seconds(gunicorn) if gunicorn else None,
            "worker": _tree_seconds(worker) if worker else None,
            "postgres": _tree_seconds(self.postmaster) if self.postmaster else None,
            "redis": _tree_seconds(self.redis) if self.redis else None,
            "load": own.ru_utime + own.ru_stime,
            "pgbouncer": _tree_seconds(self.pooler) if self.pooler else None,
        }


@dataclass
class CpuSpent:
    """CPU seconds per tier over a scenario's rounds, and the orders (or pgbench transactions) they placed."""

    seconds: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(TIERS, 0.0))
    unknown: set[str] = dataclasses.field(default_factory=set)
    units: int = 0

    def add(self, before: dict[str, float | None], after: dict[str, float | None], units: int) -> None:
        for tier in TIERS:
            start, end = before[tier], after[tier]
            if start is None or end is None:
                self.unknown.add(tier)
            else:
                self.seconds[tier] += end - start
        self.units += units

    def per_unit_ms(self, tier: str) -> str:
        if tier in self.unknown or not self.units:
            return "-"
        return f"{1000 * self.seconds[tier] / self.units:.2f}"


def print_delivery(receiver: BenchReceiver, run: Run) -> None:
    delivered = _scalar(run.database_url, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
    undelivered = _scalar(run.database_url, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
    print(
        f"\nwebhooks: {receiver.count} order.placed deliveries received, {delivered} recorded delivered,"
        f" {undelivered} not delivered (the pgbench rounds' orders are not sent: the endpoint is off during them);"
        f" commit to delivery p50 {receiver.percentile(0.5):.0f} ms, p99 {receiver.percentile(0.99):.0f} ms"
        f" (target p99 < 1000 ms), measured from the event's occurred_at (its transaction's start)"
    )


def print_cpu(run: Run) -> None:
    if not run.cpu:
        return
    print("\nCPU per order, ms (read from /proc over all order rounds; '-': not on this machine)")
    header = f"{'scenario':<18} {'gunicorn':>9} {'postgres':>9} {'redis':>7} {'load gen':>9} {'webhooks':>9}"
    print(f"{header} {'pgbouncer':>9} {'units':>8}")
    for name, spent in run.cpu.items():
        ceiling = name == "pgbench-ceiling"
        load = spent.per_unit_ms("load") + (" (pgbench)" if ceiling else "")
        gunicorn, redis_ms, worker, pooler = (
            ("-",) * 4 if ceiling else (spent.per_unit_ms(t) for t in ("gunicorn", "redis", "worker", "pgbouncer"))
        )
        postgres = spent.per_unit_ms("postgres")
        print(
            f"{name:<18} {gunicorn:>9} {postgres:>9} {redis_ms:>7} {load:>9} {worker:>9} {pooler:>9} {spent.units:>8}"
        )


# --- the run -------------------------------------------------------------------------------------


def print_order_summary(results: Sequence[Result], run: Run) -> None:
    by_name = {result.scenario: result for result in results}
    uniform, hot, ceiling = (by_name.get(name) for name in ("orders-uniform", "orders-hot", "pgbench-ceiling"))
    print("\nratios: the median of the per-round ratios (each round runs the scenarios back to back)")
    if uniform and ceiling:
        print(f"orders-uniform / pgbench ceiling: {_ratio(run, uniform, ceiling):.2f} (target >= 0.30)")
    if uniform and hot:
        print(f"orders-hot / orders-uniform:      {_ratio(run, hot, uniform):.2f} (target >= 0.6)")
    verdict = "equal" if run.orders_created == run.orders_answered else "DIFFERENT"
    print(f"orders written {run.orders_created}, answered 201 {run.orders_answered}: {verdict}")


def _ratio(run: Run, top: Result, bottom: Result) -> float:
    by_round = run.ratio(top.scenario, bottom.scenario)
    return by_round if by_round is not None else top.per_second / bottom.per_second


def print_table(results: Sequence[Result], connections: int, run: Run) -> None:
    floor = next((r for r in results if r.scenario == "healthz"), None)
    print()
    print(
        f"{'scenario':<18} {'requests/s':>11} {'x healthz':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'requests':>9}  tool"
    )
    for result in results:
        reads = result.scenario in READ_SCENARIOS  # orders are compared with pgbench, below
        ratio = f"{_ratio(run, result, floor):>9.2f}" if floor and reads else f"{'-':>9}"
        print(
            f"{result.scenario:<18} {result.per_second:>11.0f} {ratio} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} "
            f"{result.errors:>7} {result.requests:>9}  {result.tool}, {connections} connections"
        )


def fresh_database(database_url: str, suffix: str = "bench") -> str:
    """A fresh `<name>_<suffix>` database on the same server; its URL."""
    url = make_url(normalize_database_url(database_url) or database_url)
    name = f"{url.database}_{suffix}"
    # through the maintenance database: the one DATABASE_URL names need not exist yet
    _admin(url.set(database="postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def drop_bench_database(bench_url: str) -> None:
    url = make_url(bench_url)
    _admin(url.set(database="postgres"), f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@contextlib.contextmanager
def _cursor(url: URL) -> Iterator[Any]:
    """An autocommit cursor on `url` (CREATE/DROP DATABASE need one; counts are fine with one)."""
    connection = psycopg2.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def _admin(url: URL, *statements: str) -> None:
    with _cursor(url) as cursor:
        for statement in statements:
            cursor.execute(statement)


def flask(environ: dict[str, str], *arguments: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shop", *arguments],
        cwd=PROJECT_ROOT,
        env=environ,
        check=True,
        capture_output=True,
    )


@dataclass
class Run:
    """What one gunicorn run needs besides its port: the options, wrk, the customers' tokens, and where to count
    orders."""

    args: argparse.Namespace
    wrk: str | None
    database_url: str
    tokens: list[str] = dataclasses.field(default_factory=list)
    orders_created: int = 0
    orders_answered: int = 0
    # every round of every scenario, in the order run; scenarios of one server run alternate round by round
    rounds: dict[str, list[Result]] = dataclasses.field(default_factory=dict)
    meter: CpuMeter | None = None
    cpu: dict[str, CpuSpent] = dataclasses.field(default_factory=dict)
    webhook: BenchWebhook | None = None  # --webhooks: the endpoint being delivered to

    def ratio(self, numerator: str, denominator: str) -> float | None:
        """The median of the per-round ratios of two scenarios run in the same rounds, else None.

        Round i of each ran back to back, so both saw the machine as it was then: on a shared machine
        whose speed drifts by tens of percent within a minute, this is steadier than a ratio of medians.
        """
        tops, bottoms = self.rounds.get(numerator, []), self.rounds.get(denominator, [])
        if not tops or len(tops) != len(bottoms) or any(bottom.per_second == 0 for bottom in bottoms):
            return None
        return statistics.median(top.per_second / bottom.per_second for top, bottom in zip(tops, bottoms, strict=True))


def run_scenario(port: int, scenario: Scenario, run: Run) -> Result:
    if run.meter is None or not (scenario.pgbench or scenario.orders):
        return _run_scenario(port, scenario, run)
    before = run.meter.sample()
    result = _run_scenario(port, scenario, run)
    run.cpu.setdefault(scenario.name, CpuSpent()).add(before, run.meter.sample(), result.requests - result.errors)
    return result


def _run_scenario(port: int, scenario: Scenario, run: Run) -> Result:
    args = run.args
    if scenario.pgbench:
        if run.webhook is None:
            return pgbench_ceiling(run.database_url, args.duration)
        run.webhook.set_active(False)
        try:
            return pgbench_ceiling(run.database_url, args.duration)
        finally:
            run.webhook.set_active(True)
    if scenario.orders is None:
        if run.wrk:
            return wrk_load(run.wrk, port, scenario, args.connections, args.duration)
        return python_load(port, scenario, args.connections, args.duration)
    # orders: the Python generator waits for every answer in flight, so 201s and new rows compare exactly
    before = _scalar(run.database_url, "SELECT count(*) FROM orders")
    result = python_load(port, scenario, args.connections, args.duration, run.tokens)
    run.orders_created += _scalar(run.database_url, "SELECT count(*) FROM orders") - before
    run.orders_answered += result.requests - result.errors
    return result


def run_rounds(port: int, scenarios: Sequence[Scenario], run: Run) -> list[Result]:
    """Interleave the scenarios over several rounds on one server and keep each one's median round.

    On a small shared machine one sample per scenario is at the mercy of whatever else ran at that moment;
    alternating them and taking medians compares them under the same conditions.
    """
    args = run.args
    for scenario in scenarios:
        print(f"{scenario.name}: {scenario.what}", file=sys.stderr)
        if args.warmup > 0 and not scenario.pgbench:
            python_load(port, scenario, args.connections, args.warmup, run.tokens)
    rounds: dict[str, list[Result]] = {scenario.name: [] for scenario in scenarios}
    for _ in range(args.rounds):
        for scenario in scenarios:
            rounds[scenario.name].append(run_scenario(port, scenario, run))
    run.rounds.update(rounds)
    return [median_round(samples) for samples in rounds.values()]


def median_round(samples: list[Result]) -> Result:
    ordered = sorted(samples, key=lambda result: result.per_second)
    middle = ordered[len(ordered) // 2]
    return Result(
        scenario=middle.scenario,
        requests=middle.requests,
        errors=sum(result.errors for result in samples),
        seconds=middle.seconds,
        p50_ms=middle.p50_ms,
        p99_ms=statistics.median(result.p99_ms for result in samples),
        tool=f"{middle.tool}, median of {len(samples)}",
    )


def bench_account(environ: dict[str, str], role: str = "customer") -> tuple[str, str]:
    """An account for the benchmark, made as an operator would: its email and password."""
    password = secrets.token_urlsafe(16)
    email = f"bench-{secrets.token_hex(4)}@example.com"
    flask(environ, "create-user", "--email", email, "--name", "Bench", "--role", role, "--password", password)
    return email, password


def bench_token(base_url: str, environ: dict[str, str], role: str = "customer") -> str:
    """An account for the benchmark and its bearer token."""
    email, password = bench_account(environ, role)
    request = urllib.request.Request(  # noqa: S310 - the loopback server we started
        f"{base_url}/api/v1/auth/tokens",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        token: str = json.loads(response.read())["token"]
        return token


def run_pgbench(database_url: str, seconds: float, clients: int = 8, *, span: int = 333, options: str = "") -> str:
    """The order transaction run by pgbench (-M prepared) for `seconds`; its output. `span`: the products each
    line draws from (333: three disjoint thirds of 999; 1: every order on the same three). `options`: PGOPTIONS."""
    pgbench = shutil.which("pgbench") or str(Path(pgserver_bin()) / "pgbench")
    url = make_url(database_url).set(drivername="postgresql")
    user_id = _scalar(database_url, "SELECT min(id) FROM users")
    command = [
        pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(max(1, int(seconds))), "-D", f"uid0={user_id}", "-D", "first=1", "-D", f"span={span}",
        "-f", str(PROJECT_ROOT / "scripts" / "pgbench" / "place_order.sql"),
        url.render_as_string(hide_password=False),
    ]  # fmt: skip
    environ = dict(os.environ) | ({"PGOPTIONS": options} if options else {})
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False, env=environ)
    if finished.returncode != 0:
        raise SystemExit(f"pgbench failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    return finished.stdout


def pgbench_tps(output: str) -> float:
    return float(re.search(r"tps = ([\d.]+)", output).group(1))  # type: ignore[union-attr]


def pgbench_ceiling(database_url: str, seconds: float, clients: int = 8) -> Result:
    """The same order transaction, run by pgbench: what PostgreSQL alone manages here."""
    output = run_pgbench(database_url, seconds, clients)
    tps = pgbench_tps(output)
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return Result(
        scenario="pgbench-ceiling",
        requests=int(tps * seconds),
        errors=int(failed.group(1)) if failed else 0,
        seconds=seconds,
        p50_ms=float(latency.group(1)) if latency else float("nan"),  # pgbench reports the mean
        p99_ms=float("nan"),
        tool=f"pgbench -M prepared, {clients} clients",
    )


def pgserver_bin() -> str:
    import pgserver  # the embedded PostgreSQL's own client binaries, when pgbench is not installed

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin")


def _scalar(database_url: str, statement: str) -> int:
    with _cursor(make_url(database_url)) as cursor:
        cursor.execute(statement)
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per scenario round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario; medians (default 3)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (default 32)")
    parser.add_argument("--products", type=int, default=10_000, help="catalog size (default 10,000)")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="run only these")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument(
        "--proxy", choices=["nginx"], help="load through nginx with deploy/nginx.conf, as deployed (needs nginx)"
    )
    parser.add_argument(
        "--pooler",
        choices=["pgbouncer"],
        help="gunicorn reaches PostgreSQL through pgbouncer in session mode, with DB_EXTERNAL_POOL (needs pgbouncer)",
    )
    parser.add_argument(
        "--pooler-size", type=int, default=8, help="pgbouncer's server connections with --pooler (default 8)"
    )
    parser.add_argument(
        "--webhooks",
        action="store_true",
        help="a webhook endpoint for order.placed on a local receiver and a delivery worker, during the order rounds",
    )
    args = parser.parse_args(argv)

    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        parser.error(f"{' and '.join(missing)} unset: run it as `make bench`, which starts embedded servers")

    database_url = fresh_database(os.environ["DATABASE_URL"])
    environ = dict(os.environ) | {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEBUG": "false",
        "DATABASE_URL": database_url,
        # keys of their own, so a shared Redis is not mixed with anything else
        "CACHE_KEY_PREFIX": f"shop-bench-{secrets.token_hex(4)}:",
        # no per-request log lines, neither the app's nor gunicorn's access log (each costs every request alike)
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": "",
        # a customer per connection, each signing up and in from 127.0.0.1
        "REGISTER_LIMIT_PER_ADDRESS": "10000 per hour",
        "TOKEN_REQUESTS_PER_ADDRESS": "10000 per minute",
        # the bench's customers never pay: the unpaid limit's check is off, its counting on every order is not
        "UNPAID_ORDERS_PER_CUSTOMER": "0",
        "UNPAID_UNITS_PER_CUSTOMER": "0",
        # --webhooks: the receiver is on this machine
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "WEBHOOK_REQUIRE_HTTPS": "false",
    }
    wrk = None if args.python_load else shutil.which("wrk")
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    if any(s.orders for s in chosen) and not any(s.pgbench for s in chosen):
        chosen.append(next(s for s in SCENARIOS if s.pgbench))  # the ceiling the order targets are measured against
    product = str(args.products // 2)
    chosen = [dataclasses.replace(s, path=s.path.replace("{product}", product)) for s in chosen]
    results: list[Result] = []
    run = Run(args, wrk, database_url)
    # pgbench's clients order as customers of their own too: the accounts are made for it alone as well
    ordering = any(s.orders or s.pgbench for s in chosen)
    if ordering:
        run.meter = CpuMeter(database_url, os.environ["REDIS_URL"])
    pooling = contextlib.ExitStack()
    try:
        if args.pooler == "pgbouncer":
            pooler_directory = Path(pooling.enter_context(tempfile.TemporaryDirectory(prefix="bench-pgbouncer-")))
            pooler = pooling.enter_context(local_pgbouncer(pooler_directory, database_url, args.pooler_size))
            environ |= {"DATABASE_URL": pooler.url(str(make_url(database_url).database)), "DB_EXTERNAL_POOL": "true"}
            if run.meter is not None and pooler.process is not None:
                run.meter.pooler = psutil.Process(pooler.process.pid)
        print(f"loading {args.products:,} products into {make_url(database_url).database}", file=sys.stderr)
        flask(environ, "db", "upgrade")
        flask(environ, "load-sample-data", "--products", str(args.products))
        if ordering:
            # orders must never run out of stock here: the point is the cost of placing them
            _admin(make_url(database_url), "UPDATE products SET stock = 10000000, is_active = true")
        for server_name, settings in SERVERS.items():
            scenarios = [s for s in chosen if s.server == server_name]
            if not scenarios:
                continue
            with gunicorn_server(environ | settings) as url, contextlib.ExitStack() as in_front:
                if ordering and not run.tokens:
                    # a customer per connection, as in a store where many customers order at once
                    run.tokens = [bench_token(url, environ) for _ in range(args.connections)]
                port = int(url.rsplit(":", 1)[1])
                if args.proxy == "nginx":
                    port = in_front.enter_context(nginx_proxy(port))
                run.webhook = None
                if args.webhooks and any(s.orders for s in scenarios):
                    run.webhook = in_front.enter_context(webhook_delivery(url, environ | settings))
                results.extend(run_rounds(port, scenarios, run))
                if run.webhook is not None:
                    time.sleep(2)  # the last orders' deliveries
                    print_delivery(run.webhook.receiver, run)
    finally:
        pooling.close()
        drop_bench_database(database_url)
    print_table(results, args.connections, run)
    if ordering:
        print_order_summary(results, run)
        print_cpu(run)
    workers = environ.get("WEB_CONCURRENCY", "CPUs + 1")
    worker_class = environ.get("GUNICORN_WORKER_CLASS", "shop.gunicorn_worker.BalancedThreadWorker")
    proxy = ", through nginx (deploy/nginx.conf)" if args.proxy else ""
    if args.pooler:
        proxy += f", to PostgreSQL through pgbouncer (session mode, {args.pooler_size} server connections)"
    print(
        f"\n{os.cpu_count()} CPUs, gunicorn workers: {workers} ({worker_class}){proxy};"
        " the load generator shares the CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
