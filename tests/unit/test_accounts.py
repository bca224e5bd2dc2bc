"""Accounts, on an in-memory unit of work: registration, sign-in, the cap on live tokens, revocation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shop.models import ApiToken, Role
from shop.security.tokens import token_digest
from shop.services.accounts import (
    EmailTaken,
    InvalidCredentials,
    issue_token,
    purge_expired_tokens,
    register_user,
    revoke_token,
)
from tests.unit.memory import MemoryDatabase, MemoryUnitOfWork

Factory = Callable[[], MemoryUnitOfWork]


def test_a_registered_user_signs_in_and_gets_a_token_for_their_account(database: MemoryDatabase, uow: Factory) -> None:
    user = register_user("ann@example.com", "correct horse", "Ann", unit_of_work=uow)

    issued = issue_token("ANN@example.com", "correct horse", unit_of_work=uow)

    assert (issued.user.id, user.role) == (user.id, Role.CUSTOMER.value)
    assert user.password_hash != "correct horse"
    assert user.password_hash.startswith("$argon2")
    [stored] = database.tokens.values()
    assert stored.token_digest == token_digest(issued.token)
    assert stored.user_id == user.id


@pytest.mark.parametrize(("email", "password"), [("ann@example.com", "wrong"), ("nobody@example.com", "correct horse")])
def test_a_wrong_password_and_an_unknown_email_get_the_same_refusal(
    database: MemoryDatabase, uow: Factory, email: str, password: str
) -> None:
    register_user("ann@example.com", "correct horse", "Ann", unit_of_work=uow)

    with pytest.raises(InvalidCredentials) as refused:
        issue_token(email, password, unit_of_work=uow)

    assert str(refused.value) == "The email or password is incorrect."
    assert database.tokens == {}


def test_an_email_is_taken_whatever_its_case(database: MemoryDatabase, uow: Factory) -> None:
    register_user("ann@example.com", "correct horse", "Ann", unit_of_work=uow)

    with pytest.raises(EmailTaken):
        register_user("Ann@Example.com", "another one", "Ann again", unit_of_work=uow)

    assert len(database.users) == 1


def test_a_user_keeps_only_the_newest_tokens(database: MemoryDatabase, uow: Factory) -> None:
    register_user("ann@example.com", "correct horse", "Ann", unit_of_work=uow)

    issued = [issue_token("ann@example.com", "correct horse", unit_of_work=uow) for _ in range(4)]

    kept = {token.token_digest for token in database.tokens.values()}
    assert kept == {token_digest(t.token) for t in issued[-2:]}  # MAX_TOKENS_PER_USER = 2


def test_revoking_and_purging_remove_only_their_tokens(database: MemoryDatabase, uow: Factory) -> None:
    user = register_user("ann@example.com", "correct horse", "Ann", unit_of_work=uow)
    issue_token("ann@example.com", "correct horse", unit_of_work=uow)
    [live] = database.tokens.values()
    expired = ApiToken(
        id=999, user_id=user.id, token_digest="old", created_at=database.now, expires_at=database.now - timedelta(1)
    )
    database.tokens[expired.id] = expired

    assert purge_expired_tokens(unit_of_work=uow) == 1
    assert set(database.tokens) == {live.id}
    revoke_token(live.id, unit_of_work=uow)
    assert database.tokens == {}
