"""Opaque bearer tokens: 32 random bytes for the client, their SHA-256 digest for the database."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
# longer than any token we issue (43 characters); anything longer is refused without a lookup
MAX_TOKEN_LENGTH = 256


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).hexdigest()
