"""The provider signature check on its own: each secret, several signatures, the replay window, malformed headers."""

from __future__ import annotations

import pytest

from shop.security.provider_signatures import BadSignature, sign, verify

BODY = b'{"provider": "p", "kind": "captured"}'
NOW = 1_800_000_000


def test_a_signature_by_any_of_the_providers_secrets_passes() -> None:
    header = sign("new", BODY, NOW)
    verify(header, BODY, ["old", "new"], tolerance=300, now=NOW)
    # a provider signing with both while it rotates: one good v1 is enough
    both = f"{sign('other', BODY, NOW)},v1={sign('old', BODY, NOW).partition(',v1=')[2]}"
    verify(both, BODY, ["old"], tolerance=300, now=NOW)


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, BODY, NOW, "missing"),
        ("", BODY, NOW, "missing"),
        ("garbage", BODY, NOW, "not t=<seconds>"),
        ("t=1,t=2,v1=ab", BODY, NOW, "needs one t="),
        (f"t={NOW}", BODY, NOW, "needs one t="),
        ("t=abc,v1=ab", BODY, NOW, "needs one t="),
        (sign("s", BODY, NOW), BODY + b" ", NOW, "does not match"),
        (sign("wrong", BODY, NOW), BODY, NOW, "does not match"),
        (sign("s", BODY, NOW - 301), BODY, NOW, "more than 300 seconds"),
        (sign("s", BODY, NOW + 301), BODY, NOW, "more than 300 seconds"),
    ],
)
def test_what_is_refused(header: str | None, body: bytes, now: int, message: str) -> None:
    with pytest.raises(BadSignature, match=message):
        verify(header, body, ["s"], tolerance=300, now=now)


def test_the_edge_of_the_window_passes() -> None:
    verify(sign("s", BODY, NOW - 300), BODY, ["s"], tolerance=300, now=NOW)
