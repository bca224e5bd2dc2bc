"""Payment providers' notifications are signed: `Shop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC
keyed with the provider's secret over `<t>.<the body's bytes>` (Stripe's scheme, which most providers resemble).

A signature is checked against each of the provider's secrets (two while one is rotated), in constant time, and its
timestamp must be within the tolerance of now either way: an old notification sent again (a replay) is refused even
with a good signature, and a new one is told apart from its replays by the idempotency of (provider, reference, kind).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

from shop.errors import NotAuthenticated

SIGNATURE_HEADER = "Shop-Signature"
_PART = re.compile(r"\s*(t|v1)=([^,\s]+)\s*")


class BadSignature(NotAuthenticated):
    slug = "bad-signature"
    title = "Notification signature refused"
    bearer_challenge = False


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a provider sends (also what tests and scripts/chaos.py sign with)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    header: str | None, body: bytes, secrets: Sequence[str], *, tolerance: int, now: float | None = None
) -> None:
    """Raise BadSignature unless `header` signs `body` with one of `secrets` at a moment within `tolerance`."""
    if not header:
        raise BadSignature(f"The {SIGNATURE_HEADER} header is missing.")
    timestamps: list[str] = []
    digests: list[str] = []
    for part in header.split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise BadSignature(f"The {SIGNATURE_HEADER} header is not t=<seconds>,v1=<hex>.")
        (timestamps if match.group(1) == "t" else digests).append(match.group(2))
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not digests:
        raise BadSignature(f"The {SIGNATURE_HEADER} header needs one t=<unix seconds> and a v1=<hex> signature.")
    timestamp = int(timestamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise BadSignature(
            f"The signature's timestamp is more than {tolerance} seconds from now: a replay, or a clock that is off."
        )
    expected = [sign(secret, body, timestamp).partition(",v1=")[2] for secret in secrets]
    if not any(hmac.compare_digest(want, got) for want in expected for got in digests):
        raise BadSignature("The signature does not match the body with any of the provider's secrets.")
