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
import multiprocessing
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from config import normalize_database_url
from shop.devservices import gunicorn_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    what: str
    server: str = "cached"


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
    Scenario("products", "/api/v1/products?page=1&per_page=20", "a cached list page: 3 Redis round trips"),
    Scenario("product", "/api/v1/products/{product}", "a cached product detail: 1 Redis round trip"),
    Scenario("products-uncached", "/api/v1/products?page=1&per_page=20", "the list page from PostgreSQL", "uncached"),
    Scenario("product-uncached", "/api/v1/products/{product}", "the detail from PostgreSQL", "uncached"),
]


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


async def _connection_loop(port: int, path: str, deadline: float, latencies: list[float], errors: list[int]) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
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


async def _drive(port: int, path: str, connections: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds
    outcomes = await asyncio.gather(
        *(_connection_loop(port, path, deadline, latencies, errors) for _ in range(connections)),
        return_exceptions=True,
    )
    errors[0] += sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
    return latencies, errors[0]


def _load_process(port: int, path: str, connections: int, seconds: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results.put(asyncio.run(_drive(port, path, connections, seconds)))


def python_load(port: int, scenario: Scenario, connections: int, seconds: float) -> Result:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    loader = multiprocessing.Process(target=_load_process, args=(port, scenario.path, connections, seconds, results))
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


# --- the run -------------------------------------------------------------------------------------


def print_table(results: Sequence[Result], connections: int) -> None:
    floor = next((r.per_second for r in results if r.scenario == "healthz"), None)
    print()
    print(
        f"{'scenario':<18} {'requests/s':>11} {'x healthz':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'requests':>9}  tool"
    )
    for result in results:
        ratio = f"{result.per_second / floor:>9.2f}" if floor else f"{'-':>9}"
        print(
            f"{result.scenario:<18} {result.per_second:>11.0f} {ratio} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} "
            f"{result.errors:>7} {result.requests:>9}  {result.tool}, {connections} connections"
        )


def bench_database(database_url: str) -> str:
    """A fresh `<name>_bench` database on the same server; its URL."""
    url = make_url(normalize_database_url(database_url) or database_url)
    name = f"{url.database}_bench"
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def drop_bench_database(bench_url: str) -> None:
    url = make_url(bench_url)
    _admin(url.set(database="postgres"), f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def _admin(url: URL, *statements: str) -> None:
    connection = psycopg2.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def flask(environ: dict[str, str], *arguments: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shop", *arguments],
        cwd=PROJECT_ROOT,
        env=environ,
        check=True,
        capture_output=True,
    )


def run_scenario(port: int, scenario: Scenario, args: argparse.Namespace, wrk: str | None) -> Result:
    if wrk:
        return wrk_load(wrk, port, scenario, args.connections, args.duration)
    return python_load(port, scenario, args.connections, args.duration)


def run_rounds(port: int, scenarios: Sequence[Scenario], args: argparse.Namespace, wrk: str | None) -> list[Result]:
    """Interleave the scenarios over several rounds on one server and keep each one's median round.

    On a small shared machine one sample per scenario is at the mercy of whatever else ran at that moment;
    alternating them and taking medians compares them under the same conditions.
    """
    for scenario in scenarios:
        print(f"{scenario.name}: {scenario.what}", file=sys.stderr)
        if args.warmup > 0:
            python_load(port, scenario, args.connections, args.warmup)
    rounds: dict[str, list[Result]] = {scenario.name: [] for scenario in scenarios}
    for _ in range(args.rounds):
        for scenario in scenarios:
            rounds[scenario.name].append(run_scenario(port, scenario, args, wrk))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per scenario round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario; medians (default 3)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (default 32)")
    parser.add_argument("--products", type=int, default=10_000, help="catalog size (default 10,000)")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="run only these")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    args = parser.parse_args(argv)

    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        parser.error(f"{' and '.join(missing)} unset: run it as `make bench`, which starts embedded servers")

    database_url = bench_database(os.environ["DATABASE_URL"])
    environ = dict(os.environ) | {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEBUG": "false",
        "DATABASE_URL": database_url,
        # keys of their own, so a shared Redis is not mixed with anything else
        "CACHE_KEY_PREFIX": f"shop-bench-{secrets.token_hex(4)}:",
    }
    wrk = None if args.python_load else shutil.which("wrk")
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    product = str(args.products // 2)
    chosen = [Scenario(s.name, s.path.replace("{product}", product), s.what, s.server) for s in chosen]
    results: list[Result] = []
    try:
        print(f"loading {args.products:,} products into {make_url(database_url).database}", file=sys.stderr)
        flask(environ, "db", "upgrade")
        flask(environ, "load-sample-data", "--products", str(args.products))
        for server_name, settings in SERVERS.items():
            scenarios = [s for s in chosen if s.server == server_name]
            if not scenarios:
                continue
            with gunicorn_server(environ | settings) as url:
                results.extend(run_rounds(int(url.rsplit(":", 1)[1]), scenarios, args, wrk))
    finally:
        drop_bench_database(database_url)
    print_table(results, args.connections)
    workers = environ.get("WEB_CONCURRENCY", "CPUs + 1")
    print(f"\n{os.cpu_count()} CPUs, gunicorn workers: {workers}; the load generator shares the CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
