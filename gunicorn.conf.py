"""gunicorn settings, each from the environment with a default (`gunicorn -c gunicorn.conf.py wsgi:app`).

A first version: issue 8 measures the worker class and adds JSON access logs and metrics.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# gthread: requests spend most of their time waiting on PostgreSQL and Redis, and threads share one
# connection pool per worker process
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# recycle workers now and then so a slow leak cannot grow forever; jitter keeps them from restarting together
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# load the app once in the master: a broken configuration fails the start, not every worker
preload_app = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn 27's runtime control socket defaults to one path per user (~/.gunicorn); several servers on one
# host (replicas, the benchmark) would fight over it, and nothing here uses it
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "off").lower() in {"off", "0", "false", "no"}


def post_fork(server: Any, worker: Any) -> None:
    """Each worker opens its own database connections; none may be inherited from the master."""
    from shop.extensions import db

    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)
