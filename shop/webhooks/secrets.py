"""Signing secrets at rest: encrypted, so a database dump alone does not reveal them.

Each endpoint's signing secret is shown to staff once, when made or rotated, and stored encrypted with Fernet
(AES-128-CBC and HMAC-SHA256, from the `cryptography` package) under WEBHOOK_SECRETS_KEY, which lives in the
environment, not the database. Several keys, comma-separated, are tried in turn (the first encrypts): that is how
the key itself is rotated. With none set, one is derived from SECRET_KEY (config.py).
"""

from __future__ import annotations

import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, so a leaked secret is recognisable (secret scanners)


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys (the key was changed without keeping the old)."""


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _fernet() -> MultiFernet:
    keys = [key.strip() for key in current_app.config["WEBHOOK_SECRETS_KEY"].split(",") if key.strip()]
    return MultiFernet([Fernet(key) for key in keys])


def seal(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("a webhook signing secret cannot be decrypted with WEBHOOK_SECRETS_KEY") from None
