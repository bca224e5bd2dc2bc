"""Sentry, only when SENTRY_DSN is set, and never with personal data: no emails, no tokens, no request bodies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, cast

import sentry_sdk
from flask import Flask
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.redis import RedisIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.types import Event, Hint

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
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
        before_send=scrub_event,
        before_send_transaction=scrub_event,
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
    return cast(Event, _scrub(event))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return EMAIL.sub("[email]", BEARER.sub("Bearer [token]", value))
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value
