"""Webhook signatures: how shop signs a delivery, and how a receiver checks one. Standard library only, so a
receiver can use it as it is (or copy it: docs/webhooks.md).

    Shop-Signature: t=1764669600,v1=5257a869...,v1=9f2c...

`t` is the Unix time of the delivery attempt; each `v1` is the hex HMAC-SHA256, under one of the endpoint's
signing secrets, of `<t>.` followed by the exact bytes of the body. While a secret is being rotated there are two
`v1` values, one per secret, and a receiver that knows either accepts. The timestamp is signed too, so an old
delivery replayed later is refused once it is older than the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The delivery cannot be trusted; the message says why (malformed, too old, no matching signature)."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], body: bytes, timestamp: int | None = None) -> str:
    """The `Shop-Signature` value for `body`, signed with every secret given (the current one first)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    moment = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={moment}", *(f"{SCHEME}={_digest(secret, moment, body)}" for secret in secrets)])


def verify(
    header: str,
    body: bytes,
    secrets: Sequence[str],
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a delivery: `header` is its Shop-Signature, `body` its raw bytes (before any JSON parsing), `secrets`
    the endpoint's signing secrets you accept (both of them while rotating). Returns the signed timestamp; raises
    SignatureError when the header is malformed, the timestamp is further than `tolerance_seconds` from now (either
    way), or no signature matches any secret."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("the header has no timestamp or no v1 signature")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"the timestamp is {int(current - timestamp)} s away from now (tolerance {tolerance_seconds} s)"
        )
    expected = [_digest(secret, timestamp, body) for secret in secrets]
    # compare_digest against every pair: no early exit that would tell an attacker how much of a signature matched
    matched = [hmac.compare_digest(given, wanted) for given in signatures for wanted in expected]
    if not any(matched):
        raise SignatureError("no signature matches the secrets given")
    return timestamp
