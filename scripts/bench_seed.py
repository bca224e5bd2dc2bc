"""Benchmark `flask seed-db`, end to end (the whole command, startup included), on a fresh database.

    make bench-seed                                   # embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set
    make bench-seed BENCH_SEED_ARGS="--runs 3"
    make bench-seed BENCH_SEED_ARGS="--orders 10000000"   # 10,000,000 orders and 500,000 users alone (target 600 s)

It makes a fresh database `<name>_seedbench` next to the one DATABASE_URL names (yours is never touched),
migrates it, times the default demo seed and the large seed (1,000,000 orders, 50,000 users, 2,000
products), each `--runs` times with `--reset --yes`, prints the medians and drops the database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import PROJECT_ROOT, drop_bench_database, fresh_database

SEEDS = {
    "default demo seed": ([], 5.0),
    "1,000,000 orders": (["--users", "50000", "--products", "2000", "--orders", "1000000"], 60.0),
}
# --orders 10000000: the size a store ten times larger reaches (500,000 customers), target 10 minutes
TEN_MILLION = {"10,000,000 orders": (["--users", "500000", "--products", "2000", "--orders", "10000000"], 600.0)}


def timed_seed(environ: dict[str, str], arguments: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "shop", "seed-db", "--reset", "--yes", *arguments],
        cwd=PROJECT_ROOT,
        env=environ,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs per seed; medians (default 1)")
    parser.add_argument(
        "--orders",
        type=int,
        choices=[1_000_000, 10_000_000],
        default=1_000_000,
        help="the large seed: 1,000,000 orders (50,000 users), or 10,000,000 (500,000 users) alone",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("DATABASE_URL unset: run it as `make bench-seed`, which starts embedded servers")

    database_url = fresh_database(os.environ["DATABASE_URL"], "seedbench")
    environ = dict(os.environ) | {"DATABASE_URL": database_url, "APP_ENV": "development"}
    results: dict[str, list[float]] = {}
    seeds = SEEDS if args.orders == 1_000_000 else TEN_MILLION
    try:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "shop", "db", "upgrade"],
            cwd=PROJECT_ROOT, env=environ, check=True, capture_output=True,
        )  # fmt: skip
        for _ in range(args.runs):
            for name, (arguments, _) in seeds.items():
                results.setdefault(name, []).append(timed_seed(environ, arguments))
    finally:
        drop_bench_database(database_url)

    print(f"\n{'seed':<20} {'seconds':>8} {'target':>7}  runs")
    for name, (_, target) in seeds.items():
        seconds = statistics.median(results[name])
        verdict = "meets" if seconds <= target else "MISSES"
        print(f"{name:<20} {seconds:8.1f} {target:7.0f}  {len(results[name])}, {verdict}")
    print(f"\n{os.cpu_count()} CPUs; `flask seed-db` timed end to end, process start included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
