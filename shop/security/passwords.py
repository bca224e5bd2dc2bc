"""Argon2id password hashing with parameters from the configuration.

When the configured parameters change, hashes made with the old ones still verify, and are replaced
at the user's next successful login (`needs_rehash`).

Each hash or check takes ARGON2_MEMORY_COST (64 MiB by default) while it runs; at most ARGON2_MAX_CONCURRENT
run at once in a process (the others wait their turn), so a process's memory is bounded whatever the number
of simultaneous logins: workers x (the app + ARGON2_MAX_CONCURRENT x 64 MiB).
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import hash_secret
from flask import Flask, current_app

# verified against when the email is unknown, so both failures take the same time (no user enumeration)
_UNKNOWN_USER_PASSWORD = "no account has this password"  # noqa: S105 - not a credential


class Passwords:
    def init_app(self, app: Flask) -> None:
        hasher = PasswordHasher(
            time_cost=app.config["ARGON2_TIME_COST"],
            memory_cost=app.config["ARGON2_MEMORY_COST"],
            parallelism=app.config["ARGON2_PARALLELISM"],
            type=Type.ID,
        )
        app.extensions["password_hasher"] = hasher
        app.extensions["password_decoy_hash"] = hasher.hash(_UNKNOWN_USER_PASSWORD)
        app.extensions["password_turns"] = threading.BoundedSemaphore(app.config["ARGON2_MAX_CONCURRENT"])

    @property
    def _hasher(self) -> PasswordHasher:
        hasher: PasswordHasher = current_app.extensions["password_hasher"]
        return hasher

    def _turn(self) -> threading.BoundedSemaphore:
        turns: threading.BoundedSemaphore = current_app.extensions["password_turns"]
        return turns

    def hash(self, password: str) -> str:
        with self._turn():
            return self._hasher.hash(password)

    def fixture_hash(self, password: str, salt: bytes) -> str:
        """A hash with a chosen salt, so seeded demo accounts are the same row every time. Fixtures only."""
        hasher = self._hasher
        encoded: bytes = hash_secret(
            password.encode(),
            salt,
            time_cost=hasher.time_cost,
            memory_cost=hasher.memory_cost,
            parallelism=hasher.parallelism,
            hash_len=hasher.hash_len,
            type=Type.ID,
        )
        return encoded.decode()

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; with no hash (unknown user), spend the same time and say False.

        A stored value that is not an Argon2 hash (a seeded account without a password) matches nothing,
        after the same time as a wrong password.
        """
        try:
            with self._turn():
                if password_hash is None or not password_hash.startswith("$argon2"):
                    self._hasher.verify(current_app.extensions["password_decoy_hash"], password)
                    return False
                return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
