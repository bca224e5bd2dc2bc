"""The example receiver in docs/webhooks.md runs, and refuses what it should."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shop.webhooks import signature_header

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_example_0123456789"


def receiver() -> Any:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert code is not None, "docs/webhooks.md lost its example"
    namespace: dict[str, Any] = {"__name__": "__main__"}  # as when run as a script
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - the project's own documentation
    namespace["SECRETS"][:] = [SECRET]
    return namespace["app"].test_client()


def test_the_documented_receiver_accepts_a_signed_delivery_once_and_refuses_a_forged_one() -> None:
    client = receiver()
    body = json.dumps({"id": "0b6f3c1e", "type": "order.paid", "resource": {"type": "order", "id": 42}}).encode()
    signed = {"Shop-Signature": signature_header([SECRET], body), "Content-Type": "application/json"}
    forged = {"Shop-Signature": signature_header(["whsec_guess"], body), "Content-Type": "application/json"}

    assert client.post("/shop-events", data=body, headers=signed).status_code == 200
    assert client.post("/shop-events", data=body, headers=signed).status_code == 200  # a duplicate, dropped
    assert client.post("/shop-events", data=body, headers=forged).status_code == 400
    assert client.post("/shop-events", data=body.replace(b"42", b"43"), headers=signed).status_code == 400
