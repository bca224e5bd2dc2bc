"""Login throttling: brute force stays expensive, and a stranger cannot lock a customer out.

Counted per fixed window (each limit is "N per minute", "N per hour"):

    TOKEN_REQUESTS_PER_ADDRESS       every token request from one client address, successful ones too
                                     (each costs an Argon2 check, 64 MiB, and a token row)
    TOKEN_REQUESTS_PER_ACCOUNT       every token request for one email from one address
    LOGIN_LIMIT_PER_ADDRESS          failed logins from one address, whatever the email
    LOGIN_LIMIT_PER_EMAIL            failed logins for one email from one address
    LOGIN_LIMIT_PER_EMAIL_ANYWHERE   failed logins for one email from every address together; once reached,
                                     an address that has failed for that email in the window is refused,
                                     and an address that has not (the owner at home) may still sign in

A failure is counted before the password is checked, and given back if the password was right: sixteen
wrong passwords at once against a limit of five get five checks, not sixteen. The counters are one Lua
script in Redis (every limit checked and counted atomically); when Redis cannot be reached they live in this
process's memory instead, so limits go on per process rather than vanish.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import TypeVar

import limits
import redis
from flask import current_app, request

from shop.errors import TooManyAttempts
from shop.extensions import redis_client
from shop.redis_client import OUTAGES

Checked = TypeVar("Checked")

RESERVE = files("shop.security").joinpath("lua", "login_reserve.lua").read_text(encoding="utf-8")
RELEASE = files("shop.security").joinpath("lua", "login_release.lua").read_text(encoding="utf-8")

SETTINGS = (
    "TOKEN_REQUESTS_PER_ADDRESS",
    "TOKEN_REQUESTS_PER_ACCOUNT",
    "LOGIN_LIMIT_PER_ADDRESS",
    "LOGIN_LIMIT_PER_EMAIL",
    "LOGIN_LIMIT_PER_EMAIL_ANYWHERE",
)
FAILURE_KEYS = slice(2, 5)


class TooManyLogins(TooManyAttempts):
    def __init__(self, limit: str, retry_after: int) -> None:
        super().__init__(
            f"Too many sign-in attempts ({limit}). Retry after the number of seconds in Retry-After.",
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class Reservation:
    """One login attempt, counted as a failure until `succeeded` says otherwise."""

    keys: tuple[str, ...]
    in_memory: bool

    def succeeded(self) -> None:
        failure_keys = self.keys[FAILURE_KEYS]
        if not self.in_memory:
            try:
                redis_client.breaker.call(lambda: _script(RELEASE)(keys=list(failure_keys)))
                return
            except OUTAGES:
                pass  # counted in Redis, which is gone for now: nothing there to give back until it returns
        _memory().release(failure_keys)


def reserve(email: str) -> Reservation:
    """Count this attempt against every limit before the password is checked; TooManyLogins if one is reached."""
    address = request.remote_addr or "unknown"
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    prefix = current_app.config["CACHE_KEY_PREFIX"] + "login:"
    keys = (
        f"{prefix}requests:{address}",
        f"{prefix}requests:{account}:{address}",
        f"{prefix}failures:{address}",
        f"{prefix}failures:{account}:{address}",
        f"{prefix}failures:{account}",
    )
    items = [limits.parse(current_app.config[name]) for name in SETTINGS]
    arguments = [value for item in items for value in (item.amount, item.get_expiry())]
    refused: tuple[int, int] | None
    in_memory = False
    try:
        refused_at, seconds = redis_client.breaker.call(lambda: _script(RESERVE)(keys=list(keys), args=arguments))
        refused = (int(refused_at), int(seconds)) if int(refused_at) else None
    except OUTAGES:  # Redis down, or the breaker open: count in this process
        in_memory = True
        refused = _memory().reserve(keys, arguments)
    if refused is not None:
        limit, retry_after = refused
        raise TooManyLogins(str(items[limit - 1]), retry_after)
    return Reservation(keys, in_memory)


def attempt(email: str, check: Callable[[], Checked], *, refused: type[Exception]) -> Checked:
    """Run `check` (a password check) as one sign-in attempt for `email`: counted against every limit before it
    runs, kept as a failure if it raises `refused`, given back if it succeeds or fails for another reason (the
    database was down, say: not a wrong password)."""
    reservation = reserve(email)
    try:
        checked = check()
    except refused:
        raise
    except Exception:
        reservation.succeeded()
        raise
    reservation.succeeded()
    return checked


def _script(source: str) -> redis.commands.core.Script:
    scripts: dict[str, redis.commands.core.Script] = current_app.extensions.setdefault("login_scripts", {})
    if source not in scripts:
        scripts[source] = redis_client.client.register_script(source)
    return scripts[source]


class MemoryCounters:
    """The same counting in this process's memory, for when Redis does not answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, window end)

    def _held(self, key: str, now: float) -> tuple[int, float]:
        count, ends = self._counts.get(key, (0, 0.0))
        return (count, ends) if ends > now else (0, 0.0)

    def reserve(self, keys: tuple[str, ...], arguments: list[int]) -> tuple[int, int] | None:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 100_000:  # bounded: forget windows that have ended
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            held = [self._held(key, now) for key in keys]
            for index in range(4):
                if held[index][0] >= arguments[2 * index]:
                    return index + 1, max(int(held[index][1] - now), 1)
            if held[3][0] > 0 and held[4][0] >= arguments[8]:
                return 5, max(int(held[4][1] - now), 1)
            for index, key in enumerate(keys):
                count, ends = held[index]
                self._counts[key] = (count + 1, ends if count else now + arguments[2 * index + 1])
        return None

    def release(self, keys: tuple[str, ...]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                count, ends = self._held(key, now)
                if count > 0:
                    self._counts[key] = (count - 1, ends)


def _memory() -> MemoryCounters:
    counters: MemoryCounters = current_app.extensions.setdefault("login_memory_counters", MemoryCounters())
    return counters
