"""The embedded servers behind `make run` / `make test`: started when needed, reused, stopped."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import redis

from shop.devservices import dev_services, embedded_postgres, embedded_redis
from tests.conftest import PROJECT_ROOT


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.ConnectionError:
        return False


def test_configured_servers_are_used_and_nothing_is_started(tmp_path: Path) -> None:
    environ = {"DATABASE_URL": "postgresql://db.example/shop", "REDIS_URL": "redis://cache.example:6379/3"}

    with dev_services(tmp_path, environ) as urls:
        assert urls == environ

    assert list(tmp_path.iterdir()) == []


def test_embedded_redis_starts_on_a_socket_and_stops_afterwards(tmp_path: Path) -> None:
    with embedded_redis(tmp_path / "redis") as url:
        assert url == f"unix://{tmp_path}/redis/redis.sock"
        assert redis_answers(url)
        # a second user joins the running server instead of starting another
        with embedded_redis(tmp_path / "redis") as joined:
            assert joined == url
        assert redis_answers(url), "the joiner must not stop a server it did not start"

    assert not redis_answers(url)


def test_embedded_postgres_keeps_its_data_for_the_next_run(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    with embedded_postgres(pgdata, "shop") as url, closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        connection.cursor().execute("CREATE TABLE remembered (note text); INSERT INTO remembered VALUES ('still here')")

    with embedded_postgres(pgdata, "shop") as url, closing(psycopg2.connect(url)) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT note FROM remembered")
        assert cursor.fetchall() == [("still here",)]


def test_the_runner_passes_urls_to_the_command_and_returns_its_status(tmp_path: Path) -> None:
    script = "import os, sys; print(os.environ['REDIS_URL']); sys.exit(3)"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shop.devservices",
            "--instance",
            str(tmp_path),
            "--",
            sys.executable,
            "-c",
            script,
        ],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://unused/shop"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 3
    assert result.stdout.strip() == f"unix://{tmp_path}/redis/redis.sock"
    assert not redis_answers(result.stdout.strip())


def test_a_relative_instance_path_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    with dev_services(Path("relative-instance"), {"DATABASE_URL": "postgresql://unused/shop"}) as urls:
        assert urls["REDIS_URL"] == f"unix://{tmp_path}/relative-instance/redis/redis.sock"
        assert redis_answers(urls["REDIS_URL"])


def test_sigterm_stops_the_command_and_then_the_embedded_servers(tmp_path: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "shop.devservices", "--instance", str(tmp_path), "--", "sleep", "60"],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://unused/shop"},
        stderr=subprocess.DEVNULL,
    )
    url = f"unix://{tmp_path}/redis/redis.sock"
    for _ in range(200):
        if redis_answers(url):
            break
        time.sleep(0.05)
    assert redis_answers(url), "the embedded redis never started"

    runner.terminate()  # what `timeout`, systemd and `docker stop` send

    assert runner.wait(timeout=30) != 0
    assert not redis_answers(url), "SIGTERM left the embedded redis running"


def test_a_user_killed_outright_does_not_keep_the_server_alive(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    starts_and_hangs = (
        "import sys, time; from pathlib import Path; from shop.devservices import embedded_postgres;"
        "held = embedded_postgres(Path(sys.argv[1]), 'shop'); held.__enter__(); print('up', flush=True);"
        "time.sleep(60)"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", starts_and_hangs, str(pgdata)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == "up"
    victim.kill()  # SIGKILL: it never gets to say it has left
    victim.wait()
    victim.stdout.close()

    with embedded_postgres(pgdata, "shop") as url, closing(psycopg2.connect(url)) as connection:
        assert connection.closed == 0

    # the last live user has left, so the server stopped (pg_ctl removes its pid file)
    assert not (pgdata / "postmaster.pid").exists()
