"""shop.webhooks.verify: what a receiver relies on to trust a delivery."""

from __future__ import annotations

import pytest

from shop.webhooks import SignatureError, signature_header, verify

BODY = b'{"id": "5f0c", "type": "order.placed", "data": {"id": 42, "total": "19.99"}}'
SECRET, OLD_SECRET = "whsec_current_0123456789abcdef", "whsec_previous_fedcba9876543210"
NOW = 1_764_669_600


def test_a_delivery_signed_with_the_secret_verifies_and_gives_its_timestamp() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)

    assert header.startswith(f"t={NOW},v1=")
    assert verify(header, BODY, [SECRET], now=NOW + 5) == NOW


@pytest.mark.parametrize(
    ("body", "secrets", "now", "reason"),
    [
        (BODY.replace(b"19.99", b"0.01"), [SECRET], NOW, "no signature matches"),  # tampered body
        (BODY, ["whsec_guessed"], NOW, "no signature matches"),  # wrong secret
        (BODY, [SECRET], NOW + 301, "away from now"),  # replayed later than the tolerance
        (BODY, [SECRET], NOW - 301, "away from now"),  # from the future (a skewed or forged clock)
    ],
)
def test_a_tampered_body_a_wrong_secret_or_an_old_timestamp_fails(
    body: bytes, secrets: list[str], now: int, reason: str
) -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)

    with pytest.raises(SignatureError, match=reason):
        verify(header, body, secrets, now=now)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW).replace(f"t={NOW}", f"t={NOW + 60}")

    with pytest.raises(SignatureError, match="no signature matches"):
        verify(header, BODY, [SECRET], now=NOW + 60)


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={NOW}", "t=soon,v1=abc", "garbage"])
def test_a_malformed_header_fails(header: str) -> None:
    with pytest.raises(SignatureError, match="no timestamp or no v1"):
        verify(header, BODY, [SECRET], now=NOW)


def test_during_rotation_both_secrets_verify_and_each_receiver_side_may_know_either() -> None:
    header = signature_header([SECRET, OLD_SECRET], BODY, timestamp=NOW)

    assert header.count("v1=") == 2
    assert verify(header, BODY, [OLD_SECRET], now=NOW) == NOW  # a receiver not yet told of the new secret
    assert verify(header, BODY, [SECRET], now=NOW) == NOW  # one already switched
    assert verify(header, BODY, [SECRET, OLD_SECRET], now=NOW) == NOW
    with pytest.raises(SignatureError):
        verify(signature_header([SECRET], BODY, timestamp=NOW), BODY, [OLD_SECRET], now=NOW)  # rotation over
