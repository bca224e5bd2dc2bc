"""A pgbouncer of a test's or a benchmark's own, in session mode, in front of the PostgreSQL a URL names.

Debian's `pgbouncer` package (not a Python dependency: `shutil.which("pgbouncer")` says whether it is here). It
listens on a free loopback port, lets in every database of that server with trust authentication (as the
servers the tests and benchmarks use do), and keeps at most `pool_size` server connections per database and user,
however many clients connect: the rest wait their turn. pgbouncer refuses to run as root, so as root it runs as
pgserver's system user, as the embedded PostgreSQL does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

from shop.devservices import free_port, unprivileged_user

START_SECONDS = 10.0
# What pgbouncer runs on a server connection when its client leaves: DISCARD ALL but for DEALLOCATE ALL and
# DISCARD PLANS, so the next client of the same database and role (the app again) finds the statements the last
# one prepared (shop/db/prepared.py looks before it prepares) instead of planning them again on every request.
# The same line is in deploy/pgbouncer/pgbouncer.ini.
SERVER_RESET_QUERY = (
    "CLOSE ALL; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer")


class LocalPgbouncer:
    """pgbouncer over `directory` (its config, log and pid file) in front of `server_url`'s server."""

    def __init__(self, directory: Path, server_url: str, pool_size: int) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        self.binary, self.directory, self.port = binary, directory, free_port()
        server = make_url(server_url)
        self.user = server.username or "postgres"
        # an embedded server listens on a unix socket, named by the URL's host query parameter
        host = str(server.query.get("host") or server.host or "127.0.0.1")
        port = server.port or 5432
        self.system_user = unprivileged_user()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "pgbouncer.pid").unlink(missing_ok=True)  # a killed run's: pgbouncer would refuse to start
        (directory / "userlist.txt").write_text(f'"{self.user}" ""\n')
        (directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {directory / 'userlist.txt'}\nadmin_users = {self.user}\n"
            # session mode: a client keeps its server connection until it disconnects
            f"pool_mode = session\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n"
            f"server_reset_query = {SERVER_RESET_QUERY}\n"
            f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
        )
        if self.system_user is not None:
            for path in (directory, *directory.iterdir()):
                shutil.chown(path, self.system_user)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and config file
            [self.binary, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, user=self.system_user,
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.directory / "pgbouncer.log"
                    ending = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log file)"
                    raise RuntimeError(f"pgbouncer did not start; its log ends:\n{ending}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)  # a paused one cannot stop
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered."""
        os.kill(self._running().pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._running().pid, signal.SIGCONT)

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("pgbouncer is not running")
        return self.process

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A command of pgbouncer's admin console (SHOW POOLS, SHOW CLIENTS, ...), its rows as dicts."""
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="pgbouncer", connect_timeout=2
        )
        connection.autocommit = True  # the console takes no transactions
        try:
            with connection.cursor() as cursor:
                cursor.execute(command)
                names = [column.name for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()


@contextlib.contextmanager
def local_pgbouncer(directory: Path, server_url: str, pool_size: int) -> Iterator[LocalPgbouncer]:
    bouncer = LocalPgbouncer(directory, server_url, pool_size)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
