"""gunicorn settings, each from the environment with a default (`gunicorn -c gunicorn.conf.py wsgi:app`).

The access log is one JSON object a line (JsonAccessLogger), with the request id the app put in X-Request-ID.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger

from shop.sizing import available_cpus


class JsonAccessLogger(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's logger with the access line as JSON, built with json.dumps (so quotes in a path or user agent
    cannot break a line, as they can in an access_log_format template)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # decided once (and again on SIGHUP, which calls setup): reading gunicorn's settings on every request is slow
        self.access_enabled = bool(cfg.accesslog or cfg.logconfig or cfg.syslog)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "name": "gunicorn.access",
            "request_id": atoms.get("{x-request-id}o", "-"),
            "method": atoms["m"],
            "path": atoms["U"],
            "query": atoms["q"],
            "status": resp.status_code if hasattr(resp, "status_code") else atoms["s"],
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "bytes": atoms["B"],
            "client": atoms["h"],
            "user_agent": atoms["a"],
        }
        try:
            self.access_log.info(json.dumps(line))
        except Exception:  # like gunicorn's own access(): logging never fails a request
            self.error("Failed to log the access line")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# gthread: requests wait on PostgreSQL and Redis, and a worker's threads share one connection pool. CPUs + 1
# workers of 2 threads, and keep-alive connections spread evenly over the workers (shop/gunicorn_worker.py),
# both chosen by measurement: docs/benchmarks.md, "Worker shapes" and "Through nginx".
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "shop.gunicorn_worker.BalancedThreadWorker")
# CPUs + 1, counting the CPUs the container's cgroup allows (a 1-CPU replica on a big host gets 2, not 17)
workers = _int("WEB_CONCURRENCY", available_cpus() + 1)
threads = _int("GUNICORN_THREADS", 2)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# recycle workers now and then so a slow leak cannot grow forever; jitter keeps them from restarting together.
# Rarely: frequent restarts set the p99 (docs/benchmarks.md, "Worker shapes").
max_requests = _int("GUNICORN_MAX_REQUESTS", 50_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 5_000)
# load the app once in the master: a broken configuration fails the start, not every worker
preload_app = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# empty: no access log (the proxy in front may keep one)
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
logger_class = JsonAccessLogger
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn 27's runtime control socket defaults to one path per user (~/.gunicorn); several servers on one
# host (replicas, the benchmark) would fight over it, and nothing here uses it
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "off").lower() in {"off", "0", "false", "no"}


# metrics summed over the workers: each writes its values under this directory, /metrics reads them all. Set before
# the app (and prometheus-client) is loaded, which decides at import; a fresh directory per server start, removed
# when the server exits (on_exit), unless one was given.
_metrics_directory: str | None = None
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _metrics_directory = tempfile.mkdtemp(prefix="shop-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_directory


def on_exit(server: Any) -> None:
    if _metrics_directory is not None:
        shutil.rmtree(_metrics_directory, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """A gone worker's live gauges must not count any more (its counters stay in the totals), nor its connections
    in the spread of new ones (it may have been killed before it could say so itself)."""
    from prometheus_client import multiprocess

    from shop.gunicorn_worker import release_slot

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    release_slot(worker.pid)


def post_fork(server: Any, worker: Any) -> None:
    """Each worker opens its own database connections; none may be inherited from the master.

    Then the objects the worker starts with (the app loaded once in the master) are moved out of the garbage
    collector's sight, since they live as long as the worker: otherwise every full collection walks them all, with
    the worker's GIL held (docs/benchmarks.md, "Garbage collection").
    """
    from shop.extensions import db

    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)
    gc.freeze()
