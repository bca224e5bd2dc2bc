"""Sentry, only when SENTRY_DSN is set, and never with personal data.

What is sent: the exception's type, its redacted text and its stack (file, line, function; no local
variables, which held passwords, hashes and addresses), the request's method, URL and headers less
credentials, and breadcrumbs without data. No bodies, cookies, users or SQL parameters.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, cast

import sentry_sdk
from flask import Flask
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.redis import RedisIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

from shop.observability.redact import redact, redact_value

SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "idempotency-key"})


def init_sentry(app: Flask) -> bool:
    """Start Sentry for this process if a DSN is configured; True if it was started."""
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        integrations=[FlaskIntegration(), SqlalchemyIntegration(), RedisIntegration()],
        environment=app.config.get("SENTRY_ENVIRONMENT") or app.config["APP_ENV"],
        release=app.config.get("SENTRY_RELEASE") or git_commit(),
        traces_sample_rate=float(app.config.get("SENTRY_TRACES_SAMPLE_RATE") or 0.0),
        # no send_default_pii=True and no data_collection: the SDK then collects no personal data and runs its own
        # scrubber (sentry-sdk 2.75 deprecates passing send_default_pii=False outright; leaving it out means the same)
        # a frame's local variables are the view's arguments: a registration's password, the new hash, an address
        include_local_variables=False,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )
    return True


def git_commit() -> str | None:
    """The checkout's commit, when there is one (a container image passes SENTRY_RELEASE instead)."""
    try:
        finished = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, read-only
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = finished.stdout.strip()
    return commit if finished.returncode == 0 and commit else None


def scrub_event(event: Event, hint: Hint) -> Event:
    """Drop what can identify a person or act as one, wherever in the event it ended up."""
    request: Any = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)  # bodies hold emails, passwords and addresses
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
    event.pop("user", None)
    for frame in _frames(event):
        frame.pop("vars", None)  # include_local_variables is off; this holds even if it is turned on by mistake
    return cast(Event, redact_value(event))


def _frames(event: Event) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    holders: list[Any] = [
        *(event.get("exception") or {}).get("values", []),
        *(event.get("threads") or {}).get("values", []),
    ]
    for holder in holders:
        stacktrace = holder.get("stacktrace") if isinstance(holder, dict) else None
        if isinstance(stacktrace, dict):
            frames += [frame for frame in stacktrace.get("frames", []) if isinstance(frame, dict)]
    return frames


def scrub_breadcrumb(breadcrumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb:
    """A breadcrumb keeps its category and redacted message; its data (SQL parameters, log arguments) stays here."""
    breadcrumb.pop("data", None)
    if isinstance(breadcrumb.get("message"), str):
        breadcrumb["message"] = redact(breadcrumb["message"])
    return breadcrumb
