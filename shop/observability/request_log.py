"""A request id for every request, and one structured log line when it ends.

The id is the proxy's `X-Request-ID` when it is well formed (so one id follows a request through the proxy's logs
and ours), else a new one; either way it goes back in the response's `X-Request-ID`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from shop.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
log = logging.getLogger("shop.request")


def request_id() -> str:
    return str(g.get("request_id", "-"))


def _start() -> None:
    offered = request.headers.get("X-Request-ID", "")
    g.request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = request_id()
    started = g.get("request_started")
    seconds = time.perf_counter() - started if started else 0.0
    # by route, not by path: one series per endpoint, however many product ids there are
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    HTTP_LATENCY.labels(endpoint, request.method).observe(seconds)
    if not log.isEnabledFor(logging.INFO):
        return response
    user = g.get("current_user")
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "request_id": request_id(),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
            "user_id": getattr(user, "id", None),
            "client": request.remote_addr,
        },
    )
    return response


def register_request_log(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
