"""A PostgreSQL primary and a streaming replica of it, for the tests of reads from a replica (shop/db/replica.py).

Both run the project's own PostgreSQL binaries (the `pgserver` package's, which `make test` already uses) on free
loopback ports, from a directory of the instance folder per test worker. The pair is its own rather than a copy of
the suite's server: a replica needs the same major version as its primary and a server that accepts replication
connections, and a server named by DATABASE_URL may offer neither (this machine's PostgreSQL 15 has no replication
entry in its pg_hba.conf, and the binaries are PostgreSQL 16). The replica is made the standard way:
`pg_basebackup --write-recovery-conf` (standby.signal and primary_conninfo), then started as a hot standby.

Pausing a server (SIGSTOP) stops its postmaster and every process it started. Servers a killed test run left
behind are stopped by the next run, by the PID in their data directory's postmaster.pid (ours: nothing else uses
that directory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg2

START_SECONDS = 30.0


with warnings.catch_warnings():
    # pgserver's import warns where XDG_RUNTIME_DIR is unset, which the suite turns into an error
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

# PostgreSQL refuses to run as root; as pgserver does for the embedded server, run it as an unprivileged user then
SYSTEM_USER = "pgserver" if os.geteuid() == 0 else None


def _as_server_user() -> dict[str, Any]:
    return {"user": SYSTEM_USER} if SYSTEM_USER else {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """One postgres process on 127.0.0.1:port over `data`."""

    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = (self.data.parent / f"{self.data.name}.log").open("ab")
        self.process = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **_as_server_user(),
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                psycopg2.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions are ended, the server stops cleanly."""
        if self.process is None:
            return
        self.resume()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=START_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process it started (each backend is a session of its own: PostgreSQL makes
        them so, and a signal to the postmaster's process group would not reach them)."""
        assert self.process is not None
        postmaster = psutil.Process(self.process.pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def pause(self) -> None:
        """SIGSTOP the server and its backends: a machine that hangs, a VM paused. Connections stay open, and
        nothing on them answers; new ones wait for a postmaster that does not accept them."""
        for process in self.processes():
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is None:
            return
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)

    def execute(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        connection = psycopg2.connect(self.url(database), connect_timeout=5)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()


def stop_leftover(data: Path) -> None:
    """Stop a server a killed earlier run left on `data` (its PID is the first line of postmaster.pid)."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
        pid = int(pid_file.read_text().split()[0])
        os.killpg(pid, signal.SIGCONT)
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)


@contextlib.contextmanager
def streaming_pair(directory: Path, database: str) -> Iterator[tuple[Server, Server]]:
    """A primary with `database` created, and a hot standby streaming from it; both stopped afterwards. The caller
    builds the schema on the primary before calling `replicate` (a base backup copies what is there)."""
    for leftover in ("primary", "replica"):
        stop_leftover(directory / leftover)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if SYSTEM_USER:
        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(directory)
        shutil.chown(directory, SYSTEM_USER, SYSTEM_USER)
    primary = Server(directory / "primary", free_port())
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(primary.data), "-U", "postgres", "--auth=trust",
         "--encoding=UTF8", "--no-sync"],
        check=True, capture_output=True, **_as_server_user(),
    )  # fmt: skip
    with (primary.data / "postgresql.conf").open("a") as conf:
        # a test server: no fsync; replication as shipped (wal_level replica, WAL senders), reports' parallel plans
        conf.write("fsync = off\nmax_wal_senders = 4\n")
    replica = Server(directory / "replica", free_port())
    try:
        primary.start()
        primary.execute(f'CREATE DATABASE "{database}"')
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(directory, ignore_errors=True)


def replicate(primary: Server, replica: Server) -> None:
    """Make `replica` a streaming copy of `primary` and start it; wait until it streams."""
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
         "-D", str(replica.data), "--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-sync"],
        check=True, capture_output=True, **_as_server_user(),
    )  # fmt: skip
    replica.start()
    wait_until_streaming(replica)


def wait_until_streaming(replica: Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while replica.execute("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0] != 1:
        assert time.monotonic() < deadline, "the replica did not start streaming"
        time.sleep(0.1)


def wait_until_replayed(primary: Server, replica: Server) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    (target,) = primary.execute("SELECT pg_current_wal_insert_lsn()::text")[0]
    deadline = time.monotonic() + START_SECONDS
    while not replica.execute(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0][0]:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)
