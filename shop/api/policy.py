"""Who may call what: the one place where authentication and roles are enforced.

@blp.get("/me")
@authenticated()                 # any signed-in user
def me(): ...

@authenticated(Role.STAFF)       # staff and admin
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar, cast

from flask import g, request

from shop.errors import NotAuthenticated, NotPermitted
from shop.models import Role
from shop.security.principal import Principal
from shop.services.accounts import find_token_owner

View = TypeVar("View", bound=Callable[..., Any])


def current_user() -> Principal:
    user: Principal = g.current_user
    return user


def authenticate_request() -> Principal:
    header = request.headers.get("Authorization")
    if header is None:
        raise NotAuthenticated("This route needs a bearer token: send 'Authorization: Bearer <token>'.")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("The Authorization header must be 'Bearer <token>'.", reason="invalid_request")
    found = find_token_owner(token.strip())
    if found is None:
        raise NotAuthenticated("The token is invalid, expired or revoked.", reason="invalid_token")
    return found


def optional_user() -> Principal | None:
    """For public routes that show more to staff: no header is anonymous, a bad one is still a 401."""
    if "Authorization" not in request.headers:
        return None
    user = authenticate_request()
    g.current_user = user
    return user


def is_at_least(user: Principal | None, role: Role) -> bool:
    return user is not None and user.is_at_least(role)


def require_at_least(user: Principal | None, role: Role, what: str) -> None:
    """The same 401/403 as `authenticated`, for a privilege a public route grants only to some."""
    if user is None:
        raise NotAuthenticated(f"{what} needs a {role.value} account's bearer token.")
    if not is_at_least(user, role):
        raise NotPermitted(f"{what} is for {role.value} accounts; yours is {user.role}.")


def authenticated(minimum_role: Role = Role.CUSTOMER, *, also: Role | None = None) -> Callable[[View], View]:
    """Require a live bearer token whose user has at least `minimum_role` (or is exactly `also`: an integration on
    the routes made for it); 401 without one, 403 otherwise."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = authenticate_request()
            if not is_at_least(user, minimum_role) and (also is None or user.role != also.value):
                allowed = minimum_role.value + (f" or {also.value}" if also is not None else "")
                raise NotPermitted(f"This route is for {allowed} accounts; yours is {user.role}.")
            g.current_user = user
            return view(*args, **kwargs)

        _document(guarded, minimum_role)
        return cast(View, guarded)

    return decorator


def _document(view: Any, minimum_role: Role) -> None:
    """Mark the route as needing a bearer token in the OpenAPI document (flask-smorest's _apidoc)."""
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = [{"bearerAuth": []}]
    responses = manual.setdefault("responses", {})
    responses["401"] = {"description": "Missing, invalid, expired or revoked token"}
    if minimum_role is not Role.CUSTOMER:
        responses["403"] = {"description": f"Needs a {minimum_role.value} account"}
    view._apidoc = apidoc
