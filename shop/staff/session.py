"""The staff pages' browser session: a signed, HttpOnly cookie (Flask's session, SESSION_COOKIE_* in config.py)
holding a bearer token issued at sign-in, so expiry and revocation work as for the API, and a CSRF token that every
form posts back.

Signing in goes through the API's login limits (shop/security/login_throttle.py); signing out revokes the token.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import abort, request, session

from shop.models import Role, User
from shop.security import login_throttle
from shop.security.principal import Principal
from shop.services import accounts

TOKEN, CSRF = "token", "csrf"
CSRF_FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's CSRF token, made on first use (the sign-in form has one before anyone signs in)."""
    if CSRF not in session:
        session[CSRF] = secrets.token_urlsafe(32)
    return str(session[CSRF])


def check_csrf() -> None:
    """A state-changing request must post back the session's token: a page on another site cannot read it."""
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get(CSRF)
    if not expected or not hmac.compare_digest(sent.encode(), str(expected).encode()):
        abort(400, "The form is missing its security token or it has expired; reload the page and try again.")


def signed_in() -> Principal | None:
    """Whom the session's token speaks for, if it is still live."""
    token = session.get(TOKEN)
    return accounts.find_token_owner(token) if isinstance(token, str) else None


def sign_in(email: str, password: str) -> User:
    """Check the credentials under the API's login limits (TooManyLogins, InvalidCredentials) and start a session
    holding a new token; a fresh CSRF token too, so one planted before sign-in is worth nothing after it. Answers
    the account signed in."""
    issued = login_throttle.attempt(
        email, lambda: accounts.issue_token(email, password), refused=accounts.InvalidCredentials
    )
    session.clear()
    session[TOKEN] = issued.token
    session[CSRF] = secrets.token_urlsafe(32)
    return issued.user


def sign_out() -> None:
    principal = signed_in()
    if principal is not None:
        accounts.revoke_token(principal.token_id)
    session.clear()


def is_staff(account: Principal | User | None) -> bool:
    return account is not None and account.is_at_least(Role.STAFF)


def safe_next(target: str | None) -> str | None:
    """Where to go after signing in: a path of the staff pages only, never another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/staff/") or "\\" in target:
        return None
    return target
