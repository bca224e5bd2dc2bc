"""What fails first as orders grow: the measurements behind docs/scaling.md.

    make bench-capacity                             # embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set
    make bench-capacity BENCH_CAPACITY_ARGS="--seconds 5"

The order transaction itself (scripts/pgbench/place_order.sql, the placement's own prepared statements) run by
pgbench against a fresh `<name>_capacity` database next to the one DATABASE_URL names (yours is never touched):

1. lock waits on hot products: as many clients as given, every order on three products drawn from 999 (uniform)
   against every order on the same three (hot): the hot rows' lock is held from the order's lock to its commit,
   so their orders a second stop growing with clients at 1 / (that time);
2. WAL fsync: the uniform orders with synchronous_commit on and off (off: a commit does not wait for its WAL to
   reach the disk; what the flush costs each order);
3. connections: the uniform orders with no other connection open and with many idle ones, and what an idle
   backend holds in memory (PSS, when the server runs on this machine).

Each figure is pgbench's transactions a second over `--seconds`, median of `--rounds`; the database is dropped at
the end. Everything runs on this machine and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence

import psutil
import psycopg2
from bench import (
    _admin,
    _cursor,
    _local_process,
    drop_bench_database,
    flask,
    fresh_database,
    pgbench_tps,
    run_pgbench,
)
from sqlalchemy.engine import make_url

PRODUCTS = 1_000
CLIENTS = (1, 2, 4, 8, 16, 32)


def tps(database_url: str, clients: int, seconds: float, *, span: int, options: str = "") -> float:
    """pgbench's transactions a second for the order transaction; `span` products a line draws from (1: hot)."""
    return pgbench_tps(run_pgbench(database_url, seconds, clients, span=span, options=options))


def median_tps(rounds: int, database_url: str, clients: int, seconds: float, *, span: int, options: str = "") -> float:
    return statistics.median(tps(database_url, clients, seconds, span=span, options=options) for _ in range(rounds))


def idle_backend_pss_mb(connections: Sequence[object]) -> float | None:
    """The median PSS of the idle backends behind these connections, if the server runs on this machine."""
    sizes = []
    for connection in connections:
        process = _local_process(connection.info.backend_pid, "postgres")  # type: ignore[attr-defined]
        if process is None:
            return None
        try:
            sizes.append(process.memory_full_info().pss / 2**20)
        except psutil.Error:
            return None
    return statistics.median(sizes) if sizes else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds a pgbench run (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="runs a figure; medians (default 3)")
    parser.add_argument("--idle", type=int, default=0, help="idle connections to open (default: max_connections - 20)")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("DATABASE_URL unset: run it as `make bench-capacity`, which starts embedded servers")

    database_url = fresh_database(os.environ["DATABASE_URL"], "capacity")
    environ = dict(os.environ) | {"DATABASE_URL": database_url, "APP_ENV": "development"}
    try:
        flask(environ, "db", "upgrade")
        flask(environ, "seed-db", "--users", "100", "--products", str(PRODUCTS), "--orders", "0")
        _admin(make_url(database_url), "UPDATE products SET stock = 100000000, is_active = true")
        settings = {
            name: _scalar_text(database_url, f"SHOW {name}")
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "max_connections", "server_version")
        }
        print(f"server: {settings}", file=sys.stderr)

        tps(database_url, 8, args.seconds, span=333)  # unmeasured: caches warm, autovacuum settled

        print("\n1. lock waits on hot products: orders a second (pgbench tps), median of", args.rounds)
        print(f"{'clients':>8} {'uniform':>9} {'hot':>9} {'hot/uniform':>12} {'hot ms an order':>16}")
        for clients in CLIENTS:
            # round by round, so both see the machine as it was then (its speed drifts on a shared host)
            pairs = [
                (tps(database_url, clients, args.seconds, span=333),
                 tps(database_url, clients, args.seconds, span=1))
                for _ in range(args.rounds)
            ]  # fmt: skip
            uniform, hot = (statistics.median(pair[side] for pair in pairs) for side in (0, 1))
            ratio = statistics.median(hot_tps / uniform_tps for uniform_tps, hot_tps in pairs)
            print(f"{clients:>8} {uniform:>9.0f} {hot:>9.0f} {ratio:>12.2f} {1000 / hot:>16.2f}")

        print("\n2. WAL fsync: uniform orders, 8 clients")
        synced = median_tps(args.rounds, database_url, 8, args.seconds, span=333)
        unsynced = median_tps(args.rounds, database_url, 8, args.seconds, span=333, options="-c synchronous_commit=off")
        flush = f"fsync={settings['fsync']}, {settings['wal_sync_method']}"
        print(
            f"synchronous_commit on {synced:.0f}/s, off {unsynced:.0f}/s: waiting for the flush costs"
            f" {1 - synced / unsynced:.0%} of the orders at this load ({flush})"
        )

        idle = args.idle or max(int(settings["max_connections"]) - 20, 1)
        print(f"\n3. connections: uniform orders, 8 clients, with 0 and {idle} idle connections open")
        alone = median_tps(args.rounds, database_url, 8, args.seconds, span=333)
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        held = [psycopg2.connect(dsn) for _ in range(idle)]
        try:
            crowded = median_tps(args.rounds, database_url, 8, args.seconds, span=333)
            pss = idle_backend_pss_mb(held)
        finally:
            for connection in held:
                connection.close()
        memory = f"; an idle backend holds {pss:.1f} MB (PSS)" if pss is not None else ""
        print(f"alone {alone:.0f}/s, beside {idle} idle connections {crowded:.0f}/s ({crowded / alone:.2f}){memory};"
              f" max_connections={settings['max_connections']}")  # fmt: skip
    finally:
        drop_bench_database(database_url)
    print(f"\n{os.cpu_count()} CPUs; PostgreSQL {settings['server_version']}; pgbench shares the CPUs")
    return 0


def _scalar_text(database_url: str, statement: str) -> str:
    with _cursor(make_url(database_url)) as cursor:
        cursor.execute(statement)
        return str(cursor.fetchone()[0])


if __name__ == "__main__":
    sys.exit(main())
