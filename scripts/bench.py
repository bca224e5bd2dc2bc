"""Benchmark harness: the service under gunicorn with production settings, load from a separate process.

    make bench                                    # embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set
    make bench BENCH_ARGS="--duration 20 --connections 32 --scenario healthz"

It migrates the database named by DATABASE_URL, starts gunicorn (gunicorn.conf.py, APP_ENV=production,
a generated SECRET_KEY) on a free loopback port, drives each scenario with wrk when it is installed or
else with a small asyncio HTTP/1.1 keep-alive client in its own process, and prints one table row per
scenario. Everything listens on 127.0.0.1 and stops by itself when the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    what: str


# later issues add their scenarios here; /healthz is the floor every endpoint is compared with
SCENARIOS = [
    Scenario("healthz", "/healthz", "the floor: routing and JSON, nothing else"),
    Scenario("readyz", "/readyz", "one PostgreSQL round trip and one Redis PING"),
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_gunicorn(port: int, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    env = environ | {"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESS_LOG": "/dev/null"}
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def wait_until_serving(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {process.returncode} before serving")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not serve /healthz within {timeout:.0f}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
    print()
    print(f"{'scenario':<12} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'requests':>9}  tool")
    for result in results:
        print(
            f"{result.scenario:<12} {result.per_second:>11.0f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} "
            f"{result.errors:>7} {result.requests:>9}  {result.tool}, {connections} connections"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per scenario (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (default 16)")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="run only these")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    args = parser.parse_args(argv)

    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        parser.error(f"{' and '.join(missing)} unset: run it as `make bench`, which starts embedded servers")

    environ = dict(os.environ) | {"APP_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(48), "DEBUG": "false"}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shop", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=environ,
        check=True,
        capture_output=True,
    )

    wrk = None if args.python_load else shutil.which("wrk")
    scenarios = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    port = free_port()
    server = start_gunicorn(port, environ)
    results = []
    try:
        wait_until_serving(port, server)
        for scenario in scenarios:
            print(f"{scenario.name}: {scenario.what}", file=sys.stderr)
            if args.warmup > 0:
                python_load(port, scenario, args.connections, args.warmup)
            if wrk:
                results.append(wrk_load(wrk, port, scenario, args.connections, args.duration))
            else:
                results.append(python_load(port, scenario, args.connections, args.duration))
    finally:
        stop(server)
    print_table(results, args.connections)
    workers = environ.get("WEB_CONCURRENCY", "2 x CPUs + 1")
    print(f"\n{os.cpu_count()} CPUs, gunicorn workers: {workers}; the load generator shares the CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
