"""One HTTP POST to a webhook endpoint, to the addresses its URL was checked against (no DNS rebinding between the
check and the connection), with a deadline, never following a redirect."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from shop.webhooks.urls import Target

# a retry may help: the endpoint was busy, slow or briefly broken
RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (refused, reset, timed out)
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def worth_retrying(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in RETRY_STATUSES


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.addresses[0]

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.addresses[0]

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        # the certificate is checked against the name, as if the name had been connected to
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    started = time.perf_counter()
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout) if target.scheme == "https" else _PinnedHTTPConnection(target, timeout)
    )
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # the answer's body is not kept; reading a little lets the connection close cleanly
        status, error = response.status, None
    except (OSError, http.client.HTTPException) as failure:
        status, error = None, f"{type(failure).__name__}: {failure}"[:500]
    finally:
        connection.close()
    return Answer(status, error, int((time.perf_counter() - started) * 1000))
