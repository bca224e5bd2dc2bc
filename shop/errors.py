"""Every error becomes one application/problem+json document (RFC 9457); the one place domain errors meet HTTP.

Domain errors raised by services, webargs validation errors, werkzeug's HTTP errors and unexpected
exceptions all leave through `problem()`. An unexpected exception is logged with its traceback, the
session is rolled back and the client gets a 500 that reveals nothing of the internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from flask import Flask, Response, current_app, got_request_exception, json, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, NotFound

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "/problems/"


class DomainError(Exception):
    """A use case refused. Subclasses name the problem (`slug`, `title`) and carry its facts; which HTTP status
    and headers it is answered with is decided here (`STATUS`, `headers_of`), and nowhere else."""

    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Gone(DomainError):
    """What was asked for was here once and is not any more, on purpose (a retired route)."""

    slug = "gone"
    title = "Gone"


class ResourceNotFound(DomainError):
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    slug = "conflict"
    title = "Conflict"


class Unprocessable(DomainError):
    """Well-formed, but not something that can be done (a rule about the request itself)."""

    slug = "unprocessable"
    title = "Unprocessable request"


class ValidationFailed(Unprocessable):
    """Input the schemas could not check on their own (a path parameter, a rule across fields)."""

    slug = "validation-failed"
    title = "Validation failed"

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("The request has invalid fields; see errors.", errors=dict(errors))


class NotAuthenticated(DomainError):
    """No credential, or one that speaks for nobody. `reason`: RFC 6750's error code, when one applies."""

    slug = "unauthenticated"
    title = "Authentication required"
    # a bearer token is what is wanted (RFC 6750's challenge); not so for a provider's signed notification
    bearer_challenge: ClassVar[bool] = True

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason


class NotPermitted(DomainError):
    slug = "forbidden"
    title = "Forbidden"


class TooManyAttempts(DomainError):
    slug = "rate-limited"
    title = "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceBusy(DomainError):
    """The request could not get its locks or its database in time; the client may retry."""

    slug = "service-busy"
    title = "Service busy"

    def __init__(self, detail: str, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


# each kind of refusal's HTTP status; a subclass answers as its nearest listed ancestor
STATUS: dict[type[DomainError], int] = {
    NotAuthenticated: 401,
    NotPermitted: 403,
    ResourceNotFound: 404,
    Conflict: 409,
    Gone: 410,
    Unprocessable: 422,
    TooManyAttempts: 429,
    ServiceBusy: 503,
    DomainError: 400,
}


def status_of(error: DomainError) -> int:
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def headers_of(error: DomainError) -> dict[str, str]:
    if isinstance(error, NotAuthenticated) and error.bearer_challenge:
        # RFC 6750: say what kind of credential is wanted, and why the one sent was refused
        challenge = 'Bearer realm="shop"' + (f', error="{error.reason}"' if error.reason else "")
        return {"WWW-Authenticate": challenge}
    if isinstance(error, TooManyAttempts | ServiceBusy):
        return {"Retry-After": str(error.retry_after)}
    return {}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = dict(errors)
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into {"items.0.quantity": ["..."]}."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_messages(value, name))
        return flat
    if isinstance(messages, list | tuple) and all(isinstance(item, str) for item in messages):
        return {prefix or "_request": list(messages)}
    return {prefix or "_request": [str(messages)]}


def _validation_errors(error: HTTPException) -> dict[str, list[str]]:
    data = getattr(error, "data", None) or {}
    messages = data.get("errors") or data.get("messages") or {}
    # webargs keys messages by location first ({"json": {...}, "query": {...}}); clients think in field names
    by_field: dict[str, list[str]] = {}
    for location_messages in messages.values():
        by_field.update(flatten_messages(location_messages))
    return by_field


def handle_domain_error(error: DomainError) -> Response:
    return problem(
        status_of(error),
        error.title,
        error.detail,
        type_=PROBLEM_TYPE_PREFIX + error.slug,
        headers=headers_of(error),
        **error.extra,
    )


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    data = getattr(error, "data", None) or {}
    headers.update(data.get("headers") or {})
    if status == 422:
        return problem(
            422,
            "Validation failed",
            "The request has invalid fields; see errors.",
            type_=PROBLEM_TYPE_PREFIX + "validation-failed",
            errors=_validation_errors(error),
            headers=headers,
        )
    if status == 429:
        return problem(
            429,
            "Too Many Requests",
            f"Too many requests ({error.description}). Retry after the number of seconds in Retry-After.",
            type_=PROBLEM_TYPE_PREFIX + "rate-limited",
            headers=headers,
        )
    if status == 400 and data.get("messages"):
        # webargs could not parse the body, typically malformed JSON
        return problem(400, "Bad request", "The request body is not valid JSON.", headers=headers)
    detail = error.description or error.name
    if isinstance(error, NotFound) and request.url_rule is None:
        detail = f"No resource at {request.path}."
    return problem(status, error.name, detail, headers=headers)


def database_unavailable(error: Exception) -> bool:
    """PostgreSQL could not be reached or went away: refused, restarting, shut down, a connection lost mid-use,
    or no pooled connection free in time. A client may retry these; they are not shop's bugs."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    sqlstate = getattr(error.orig, "pgcode", None) or ""
    # class 08: connection exceptions; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now
    return (
        error.connection_invalidated
        or (isinstance(error, OperationalError) and sqlstate in ("", *UNAVAILABLE_SQLSTATES))
        or sqlstate.startswith("08")
    )


UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")
DATABASE_RETRY_AFTER_SECONDS = 2


def handle_unexpected_exception(error: Exception) -> Response:
    if database_unavailable(error):
        _roll_back_quietly()
        # no traceback and no error report: an outage is reported by /readyz and the database's own monitoring
        reason = getattr(error, "orig", None) or error
        current_app.logger.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
        return handle_domain_error(
            ServiceBusy(
                "The database is unavailable right now; please retry shortly.", retry_after=DATABASE_RETRY_AFTER_SECONDS
            )
        )
    current_app.logger.exception("unhandled exception on %s %s", request.method, request.path)
    # error reporters (Sentry's Flask integration) listen for this signal, which Flask sends only for
    # exceptions no handler took
    got_request_exception.send(current_app._get_current_object(), exception=error)  # type: ignore[attr-defined]
    _roll_back_quietly()
    return problem(500, "Internal Server Error", "An unexpected error occurred. It has been logged.")


def _roll_back_quietly() -> None:
    # imported here: extensions import the models, and the app must be able to import errors first
    from shop.extensions import db

    try:
        db.session.rollback()
    except Exception:  # the connection itself may be what failed
        current_app.logger.warning("rollback after an error failed", exc_info=True)


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected_exception)
