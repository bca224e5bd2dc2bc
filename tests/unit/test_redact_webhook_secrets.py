"""A webhook signing secret, plain or sealed, never leaves in a log line or an error report."""

from __future__ import annotations

from cryptography.fernet import Fernet

from shop.observability.redact import redact
from shop.webhooks.secrets import new_signing_secret


def test_plain_and_sealed_secrets_are_withheld() -> None:
    secret = new_signing_secret()
    sealed = Fernet(Fernet.generate_key()).encrypt(secret.encode()).decode()
    message = f"could not store endpoint 3: secret={secret} sealed={sealed} url=https://hooks.example.com/x"

    cleaned = redact(message)

    assert secret not in cleaned
    assert sealed not in cleaned
    assert cleaned == (
        "could not store endpoint 3: secret=[webhook secret] sealed=[webhook secret] url=https://hooks.example.com/x"
    )
