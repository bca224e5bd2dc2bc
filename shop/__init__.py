"""shop: an order-processing service for online stores."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Request, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface, SessionInterface, SessionMixin
from werkzeug.middleware.proxy_fix import ProxyFix

from config import load_config
from shop.api.schemas import JSONProvider
from shop.db import init_database
from shop.observability.metrics import register_metrics
from shop.observability.redact import RedactingFilter, RedactingJsonFormatter
from shop.observability.request_log import register_request_log
from shop.observability.sentry import init_sentry
from shop.observability.slow_sql import register_slow_sql_log


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: read the configuration, then wire extensions, blueprints, error handlers and commands.

    `config` overrides settings (tests use it); everything else comes from the environment (see config.py).
    """
    app = ShopFlask(__name__, instance_relative_config=True)
    app.json = JSONProvider(app)
    app.config.from_mapping(load_config(os.environ, config))
    configure_logging(app)
    configure_json(app)
    app.session_interface = NoCookieSessions()
    init_sentry(app)
    trust_proxies(app)
    # first, so every other before_request (auth, rate limits, 415) already has the request id
    register_request_log(app)
    register_metrics(app)
    register_extensions(app)
    init_database(app)
    register_slow_sql_log(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


class ShopFlask(Flask):
    """Flask, remembering which of its functions are coroutines.

    Flask asks, for every hook and view of every request, whether the function is a coroutine (`ensure_sync`, the
    documented place to change how functions are run): about twenty `inspect` calls a request here, 2-3% of an
    order's CPU. The answer never changes for a function, so it is asked once.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        known: dict[Callable[..., Any], Callable[..., Any]] = self.__dict__.setdefault("_shop_sync", {})
        found = known.get(func)
        if found is None:
            found = known[func] = super().ensure_sync(func)
        return found


JSON_HANDLER = "shop-json-lines"


def trust_proxies(app: Flask) -> None:
    """Behind N proxies, the client address, scheme and host are what the N-th proxy from us was told.

    Only as many hops as are configured: a client cannot claim another address by sending X-Forwarded-For itself,
    which matters because rate limits are counted per client address.
    """
    hops = app.config["TRUSTED_PROXIES"]
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def configure_logging(app: Flask) -> None:
    app.logger.setLevel(getattr(logging, app.config["LOG_LEVEL"], logging.INFO))
    # the app's logger is the process's "shop" logger: set it whole each time, whichever format was there before
    app.logger.handlers[:] = [h for h in app.logger.handlers if h.get_name() != JSON_HANDLER]
    app.logger.propagate = True
    if app.config["LOG_FORMAT"] == "json":
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(JSON_HANDLER)
        fields = "{asctime}{levelname}{name}{message}"
        handler.setFormatter(RedactingJsonFormatter(fields, style="{", rename_fields={"levelname": "level"}))
        app.logger.handlers[:] = [handler]
        app.logger.propagate = False  # one line per record, not one more from the root's handlers
    # no personal data in a log line
    for each in app.logger.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in each.filters):
            each.addFilter(RedactingFilter())


STAFF_PATH = "/staff"


class NoCookieSessions(SessionInterface):
    """No cookie sessions outside the staff pages: API callers authenticate with bearer tokens, and nothing there
    reads `flask.session`. The staff pages (shop/staff) sign in with a signed cookie whose path is /staff, so the
    browser never sends it to the API either.

    Flask would otherwise open (verify and decode) a signed session cookie on every request.
    """

    cookies = SecureCookieSessionInterface()

    @staticmethod
    def _staff(asked: Request) -> bool:
        return asked.path == STAFF_PATH or asked.path.startswith(STAFF_PATH + "/")

    def open_session(self, app: Flask, asked: Request) -> SessionMixin | None:
        if self._staff(asked):
            return self.cookies.open_session(app, asked)
        return None  # Flask then hands out its NullSession, which refuses writes

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if has_request_context() and self._staff(request):
            self.cookies.save_session(app, session, response)


def configure_json(app: Flask) -> None:
    # documents keep the order they are written in (problem details read type, title, status, detail)
    app.json.sort_keys = False  # type: ignore[attr-defined]


def register_extensions(app: Flask) -> None:
    from shop import models  # noqa: F401  (registers every table before migrations or queries)
    from shop.catalog.invalidation import register_catalog_invalidation
    from shop.catalog.relay import register_catalog_relay
    from shop.extensions import api, cors, db, limiter, migrate, passwords, redis_client
    from shop.openapi import json_numbers
    from shop.webhooks.notifier import register_notifier

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=os.path.join(os.path.dirname(app.root_path), "migrations"),
        # autogenerate (and the drift test) compare column types and server defaults too
        compare_type=True,
        compare_server_default=True,
    )
    redis_client.init_app(app)
    register_catalog_invalidation()
    register_catalog_relay(app)
    register_notifier(app)
    api.init_app(app)
    api.ma_plugin.converter.add_attribute_function(json_numbers)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    passwords.init_app(app)
    limiter.init_app(app)
    skip_limiter_check_on_unlimited_routes(app, limiter._check_request_limit)
    if app.config["CORS_ORIGINS"]:
        cors.init_app(
            app,
            resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
            # bearer tokens, never cookies: no credentialed CORS at all
            supports_credentials=False,
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match"],
            expose_headers=["ETag", "Link", "Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )


def skip_limiter_check_on_unlimited_routes(app: Flask, check: Callable[[], None]) -> None:
    """Flask-Limiter checks every request in a before_request hook, for application-wide and blueprint limits.

    shop has neither: every limit is declared on its view (login, registration), and those decorators check
    their own limits when the view is called. The hook only resolved "no limits" on every other request, at
    8% of an order's Python time (measured), so it is taken out; tests/test_rate_limits.py shows the limits hold.
    """
    hooks = app.before_request_funcs.get(None, [])
    if check in hooks:
        hooks.remove(check)


def register_blueprints(app: Flask) -> None:
    from shop.api import register_blueprints as register_api_blueprints

    register_api_blueprints(app)
    from shop.staff import blp as staff_pages

    app.register_blueprint(staff_pages)


def register_errorhandlers(app: Flask) -> None:
    from shop.errors import register_errorhandlers as register_problem_handlers
    from shop.security.headers import register_security_headers

    register_problem_handlers(app)
    register_security_headers(app)


def register_commands(app: Flask) -> None:
    from shop.cli import register_commands as register_cli_commands

    register_cli_commands(app)
