"""Webhooks: signed deliveries of events to other systems' endpoints.

For receivers: `shop.webhooks.verify(header, body, secrets, tolerance_seconds=300)` (signing.py) checks a
delivery's `Shop-Signature`; docs/webhooks.md has an example receiver.
"""

from shop.webhooks.signing import SignatureError, signature_header, verify

__all__ = ["SignatureError", "signature_header", "verify"]
