"""shop leans on a few private parts of its libraries, each for a reason docs/design.md gives. These tests fail on
the upgrade that moves them, so the upgrade is looked at instead of silently slowing or breaking shop."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import flask_limiter
from flask import Flask
from gunicorn.workers.gthread import ThreadWorker

from shop.extensions import api, limiter


def test_flask_limiters_request_hook_is_where_shop_takes_it_out(app: Flask) -> None:
    """Flask-Limiter checks every request in a before_request hook, and offers no setting to skip it; shop takes it
    out (its limits are all per route), which saved 8% of an order's Python time."""
    assert version("flask-limiter") == "4.1.1"
    assert callable(limiter._check_request_limit)
    probe = Flask("probe")
    probe.config["RATELIMIT_STORAGE_URI"] = "memory://"
    fresh = flask_limiter.Limiter(key_func=lambda: "x")
    fresh.init_app(probe)
    assert fresh._check_request_limit in probe.before_request_funcs[None]
    assert limiter._check_request_limit not in app.before_request_funcs.get(None, [])


def test_the_gthread_internals_the_balanced_worker_overrides_are_there() -> None:
    """shop.gunicorn_worker.BalancedThreadWorker overrides gthread's accept loop; gunicorn has no hook for it."""
    assert version("gunicorn") == "27.0.1"
    for name in ("accept", "set_accept_enabled", "wait_for_and_dispatch_events", "init_process"):
        assert callable(getattr(ThreadWorker, name)), name
    assert "nr_conns" in inspect.getsource(ThreadWorker)
    assert "worker_connections" in inspect.getsource(ThreadWorker)


def test_the_extension_state_the_test_suite_resets_is_there(app: Flask) -> None:
    """tests/conftest.py puts Flask-Limiter's and flask-smorest's per-app state back after each test (the suite builds
    more than one app; a process in production builds one)."""
    assert version("flask-smorest") == "0.47.0"
    for name in ("_storage", "_limiter", "_storage_dead", "_fallback_storage", "_fallback_limiter"):
        assert hasattr(limiter, name), name
    for name in ("_app", "spec"):
        assert hasattr(api, name), name
