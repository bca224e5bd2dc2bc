"""Accounts: registration, login (token issue), logout (token revocation) and token lookup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy.exc import DBAPIError, IntegrityError

from shop.errors import Conflict, NotAuthenticated
from shop.extensions import db, passwords
from shop.models import ApiToken, Role, User
from shop.repositories import TokenRepository
from shop.security.principal import Principal
from shop.security.tokens import MAX_TOKEN_LENGTH, new_token, token_digest
from shop.services.unit_of_work import AbstractUnitOfWork, UnitOfWork


class EmailTaken(Conflict):
    slug = "email-taken"
    title = "Email already registered"


class InvalidCredentials(NotAuthenticated):
    slug = "invalid-credentials"
    title = "Invalid credentials"

    def __init__(self) -> None:
        # one message for every bad credential: which part was wrong is not revealed
        super().__init__("The email or password is incorrect.")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: User


def utcnow() -> datetime:
    return datetime.now(UTC)


def register_user(
    email: str,
    password: str,
    name: str,
    role: Role = Role.CUSTOMER,
    *,
    unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork,
) -> User:
    with unit_of_work() as uow:
        if uow.users.get_by_email(email) is not None:
            raise EmailTaken(f"An account with the email {email} already exists.")
        user = User(email=email, name=name, password_hash=passwords.hash(password), role=role.value)
        try:
            uow.users.add(user)
        except IntegrityError as error:
            # a concurrent registration of the same email won the race for the unique index
            if "uq_users_email_lower" in str(error.orig):
                raise EmailTaken(f"An account with the email {email} already exists.") from None
            raise
        uow.commit()
    return user


def issue_token(
    email: str, password: str, *, unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork
) -> IssuedToken:
    """Check the credentials and return a new bearer token; rehash the password if the parameters changed."""
    with unit_of_work() as uow:
        found = uow.users.get_by_email(email)
        user = found if found is not None and found.is_active else None
        if user is None:
            passwords.verify(None, password)  # as slow as a real check: timing tells nothing
            raise InvalidCredentials()
        if not passwords.verify(user.password_hash, password):
            raise InvalidCredentials()
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash(password)
        token = new_token()
        now = utcnow()
        expires_at = now + timedelta(seconds=current_app.config["TOKEN_TTL_SECONDS"])
        uow.tokens.add(
            ApiToken(user_id=user.id, token_digest=token_digest(token), created_at=now, expires_at=expires_at)
        )
        # bounded: a user's expired tokens go, and the oldest beyond the cap (each login makes a row)
        uow.tokens.keep_newest(user.id, current_app.config["MAX_TOKENS_PER_USER"], now)
        uow.commit()
    return IssuedToken(token=token, expires_at=expires_at, user=user)


def find_token_owner(token: str) -> Principal | None:
    """Whom a live token of an active account speaks for, or None. Read on the request's session: no commit here.

    Every authenticated request starts here, so a pooled connection that died while idle (a database restart,
    a killed backend) is met here first: the read is tried once more on a new connection. It writes nothing,
    so trying it again is always safe.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest, now = token_digest(token), utcnow()
    session = db.session()
    try:
        return TokenRepository(session).find_live(digest, now)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        session.rollback()  # lets go of the dead connection; the next statement checks out another
        return TokenRepository(session).find_live(digest, now)


def revoke_token(token_id: int, *, unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork) -> None:
    with unit_of_work() as uow:
        uow.tokens.delete(token_id)
        uow.commit()


def purge_expired_tokens(*, unit_of_work: Callable[[], AbstractUnitOfWork] = UnitOfWork) -> int:
    with unit_of_work() as uow:
        purged = uow.tokens.delete_expired(utcnow())
        uow.commit()
    return purged
