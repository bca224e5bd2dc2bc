"""gunicorn with gunicorn.conf.py: JSON access lines with the request id, orders, a graceful SIGTERM, and keep-alive
connections spread evenly over the workers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from flask import Flask

from shop.devservices import gunicorn_server
from shop.extensions import db
from tests.conftest import PROJECT_ROOT, AuthActions
from tests.helpers import ADDRESS, make_products, post_order, stock_invariant_holds, tokens

pytestmark = pytest.mark.commits


def test_gunicorn_serves_logs_json_and_finishes_a_request_in_flight_on_sigterm(
    committing_app: Flask, server_environ: dict[str, str], tmp_path: Path
) -> None:
    product_id = make_products(committing_app, {"LAMP": 5})["LAMP"]
    token = tokens(committing_app, 1)[0]["Authorization"].removeprefix("Bearer ")
    access_log, pid_file = tmp_path / "access.log", tmp_path / "gunicorn.pid"
    environ = server_environ | {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_ACCESS_LOG": str(access_log),
        "GUNICORN_CMD_ARGS": f"--pid {pid_file}",
    }

    with gunicorn_server(environ) as base_url:
        probe = urllib.request.Request(f"{base_url}/healthz", headers={"X-Request-ID": "from-the-proxy-0001"})  # noqa: S310
        with urllib.request.urlopen(probe, timeout=5) as response:  # noqa: S310
            assert response.status == 200
            assert response.headers["X-Request-ID"] == "from-the-proxy-0001"
        assert post_order(base_url, token, product_id)[0] == 201

        # an order that has to wait: this connection holds the product's row lock
        with committing_app.app_context(), db.engine.connect() as holder:
            holder.execute(sa.text("SELECT id FROM products WHERE id = :id FOR UPDATE"), {"id": product_id})
            answers: list[tuple[int, dict[str, Any]]] = []
            in_flight = threading.Thread(target=lambda: answers.append(post_order(base_url, token, product_id)))
            in_flight.start()
            time.sleep(0.5)  # the order is now waiting on the lock inside a worker
            master = int(pid_file.read_text())
            os.kill(master, signal.SIGTERM)
            time.sleep(0.3)
            holder.rollback()  # the lock goes; the worker must still finish the order before it exits
        in_flight.join(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(master) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(master), "gunicorn did not exit after SIGTERM"

    assert answers, "the request in flight got no answer"
    status, order = answers[0]
    assert status == 201, order
    with committing_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM orders")) == 2
        assert connection.scalar(sa.text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}) == 3

    lines = [json.loads(line) for line in access_log.read_text().splitlines() if line.strip()]
    health = next(line for line in lines if line["request_id"] == "from-the-proxy-0001")
    assert health["path"] == "/healthz"
    assert (health["method"], health["status"], health["name"]) == ("GET", 200, "gunicorn.access")
    assert 0 < health["duration_ms"] < 30_000  # measured, in milliseconds
    assert [line["status"] for line in lines if line["path"] == "/api/v1/orders"] == [201, 201]


def _alive(pid: int) -> bool:
    """Still running: a zombie (exited, not yet reaped by gunicorn_server's Popen) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_two_app_servers_share_one_database_and_one_cache(
    committing_app: Flask, server_environ: dict[str, str]
) -> None:
    product_id = make_products(committing_app, {"LAST": 10})["LAST"]
    buyers = [headers["Authorization"].removeprefix("Bearer ") for headers in tokens(committing_app, 40)]
    staff = AuthActions(committing_app.test_client()).headers("staff@example.com", "staff")
    body = json.dumps({"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS})
    environ = server_environ | {"WEB_CONCURRENCY": "2"}

    with gunicorn_server(environ) as first, gunicorn_server(environ) as second:
        # 40 buyers for the last 10 units, half through each server, all at once
        start = f"{time.time() + 2.0:.3f}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.buyer_process", url, start, body, *buyers[n::4]],
                cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
            )
            for n, url in enumerate([first, second, first, second])
        ]  # fmt: skip
        statuses = Counter(status for p in processes for status in json.loads(p.communicate(timeout=120)[0]))

        # a staff change through one server is in the very next read through the other (one cache for both)
        detail = f"/api/v1/products/{product_id}"
        assert _get_json(second + detail)["price"] == "2.50"  # now cached
        changed = _request(first + detail, "PATCH", {"price": "3.75"}, staff)
        assert changed == 200
        assert _get_json(second + detail)["price"] == "3.75"
        assert [item["price"] for item in _get_json(second + "/api/v1/products")["items"]] == ["3.75"]

    assert statuses == {201: 10, 409: 30}
    stock_invariant_holds(committing_app, {product_id: 10})


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own loopback server
        return json.loads(response.read())


def _request(url: str, method: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(body).encode(), method=method, headers=headers | {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return int(response.status)


@pytest.mark.parametrize("after_a_worker_was_killed", [False, True])
def test_keep_alive_connections_are_shared_out_evenly_over_the_workers(
    server_environ: dict[str, str], tmp_path: Path, after_a_worker_was_killed: bool
) -> None:
    pid_file = tmp_path / "gunicorn.pid"
    environ = server_environ | {"WEB_CONCURRENCY": "3", "GUNICORN_CMD_ARGS": f"--pid {pid_file}"}
    with gunicorn_server(environ) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        master = int(pid_file.read_text())
        workers = _workers(master, 3)
        if after_a_worker_was_killed:
            # killed outright while holding connections: its count must not linger, and its replacement counts
            held_by_the_dead = _open_keep_alive(port, 6)
            os.kill(workers[0].pid, signal.SIGKILL)
            workers = _workers(master, 3, without=workers[0].pid)
            for connection in held_by_the_dead:
                connection.close()
            time.sleep(0.2)  # the workers notice the closed connections
        # one at a time, as a proxy fills its pool of upstream connections: with plain gthread, whichever
        # worker wakes first takes each one
        opened = _open_keep_alive(port, 12)
        try:
            held = {worker.pid: _established(worker, port) for worker in workers}
        finally:
            for connection in opened:
                connection.close()

    assert sum(held.values()) == 12, held
    assert max(held.values()) - min(held.values()) <= 1, held


def _open_keep_alive(port: int, how_many: int) -> list[http.client.HTTPConnection]:
    opened = []
    for _ in range(how_many):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("Connection", "keep-alive").lower() != "close"
        opened.append(connection)
    return opened


def _workers(master_pid: int, expected: int, without: int | None = None) -> list[psutil.Process]:
    """The master's worker processes (`without` that one), once all of them are running and serving."""
    deadline = time.monotonic() + 20
    while True:
        workers: list[psutil.Process] = [
            child
            for child in psutil.Process(master_pid).children()
            if child.pid != without and child.status() != psutil.STATUS_ZOMBIE
        ]
        if len(workers) == expected or time.monotonic() > deadline:
            time.sleep(0.5)  # a new worker takes a moment to start its loop
            return workers
        time.sleep(0.1)


def _established(process: psutil.Process, port: int) -> int:
    return sum(
        1
        for connection in process.net_connections(kind="tcp")
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_ESTABLISHED
    )


def test_a_stuck_worker_below_its_share_does_not_keep_new_connections_waiting(
    server_environ: dict[str, str], tmp_path: Path
) -> None:
    pid_file = tmp_path / "gunicorn.pid"
    environ = server_environ | {"WEB_CONCURRENCY": "3", "GUNICORN_CMD_ARGS": f"--pid {pid_file}"}
    with gunicorn_server(environ) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        stuck, *serving = _workers(int(pid_file.read_text()), 3)
        stuck.suspend()  # holds no connection, so by the counts every new one is its to take
        opened: list[http.client.HTTPConnection] = []
        try:
            started = time.monotonic()
            opened = _open_keep_alive(port, 6)
            elapsed = time.monotonic() - started
            held = {worker.pid: _established(worker, port) for worker in [*serving, stuck]}
        finally:
            stuck.resume()
            for connection in opened:
                connection.close()

    assert held[stuck.pid] == 0, held
    assert sum(held.values()) == 6, held  # the two that run took them all
    assert elapsed < 3, f"six connections took {elapsed:.1f} s"  # about 50 ms each at most
