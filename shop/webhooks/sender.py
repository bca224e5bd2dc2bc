"""One HTTP POST to a webhook endpoint, to the addresses its URL was checked against (no DNS rebinding between the
check and the connection; the first that takes a connection, in the order the name resolved to), with a deadline,
never following a redirect.

Connections are kept open and reused, one set per sending thread: a receiver that keeps them alive is spared a
TCP (and TLS) handshake per delivery, and so is the worker. A reused connection the receiver has meanwhile closed
fails before any answer; that send is tried once more on a new connection at once (the receiver saw nothing).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from shop.webhooks.urls import Target

# a retry may help: the endpoint was busy, slow or briefly broken
RETRY_STATUSES = frozenset({408, 429})
_kept = threading.local()


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


def _connect_any(addresses: tuple[str, ...], port: int, timeout: float | None) -> socket.socket:
    """A connection to the first of the checked addresses that takes one, in the order the name resolved to (as
    socket.create_connection does over a name's addresses): one address down does not fail the delivery."""
    failure: OSError = OSError(f"no address to connect to on port {port}")
    # the deadline is shared out, so that a name whose addresses all hang takes one timeout, not one each
    each = timeout / len(addresses) if timeout is not None and addresses else timeout
    for address in addresses:
        try:
            connected = socket.create_connection((address, port), each)
        except OSError as error:
            failure = error
            continue
        connected.settimeout(timeout)  # the whole deadline again for the request and its answer
        connected.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connected
    raise failure


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._addresses = target.addresses

    def connect(self) -> None:
        self.sock = _connect_any(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = target.addresses

    def connect(self) -> None:
        raw = _connect_any(self._addresses, self.port, self.timeout)
        # the certificate is checked against the name, as if the name had been connected to
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _connection(target: Target, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's open connection to the target's address, or a new one; and whether it was reused."""
    connections: dict[tuple[str, str, int, tuple[str, ...]], http.client.HTTPConnection] = _kept.__dict__.setdefault(
        "c", {}
    )
    key = (target.scheme, target.host, target.port, target.addresses)
    if key in connections:
        return connections[key], True
    made: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout) if target.scheme == "https" else _PinnedHTTPConnection(target, timeout)
    )
    connections[key] = made
    return made, False


def _forget(target: Target) -> None:
    connections: dict[tuple[str, str, int, tuple[str, ...]], http.client.HTTPConnection] = _kept.__dict__.setdefault(
        "c", {}
    )
    dropped = connections.pop((target.scheme, target.host, target.port, target.addresses), None)
    if dropped is not None:
        dropped.close()


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    started = time.perf_counter()
    for _ in range(2):
        connection, reused = _connection(target, timeout)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)  # not kept; read so the connection can carry the next request
            if response.will_close:
                _forget(target)
            return Answer(response.status, None, int((time.perf_counter() - started) * 1000))
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as failure:
            _forget(target)
            if reused:
                continue  # closed by the receiver while idle: nothing was received, try a new connection
            return _failed(failure, started)
        except (OSError, http.client.HTTPException) as failure:
            _forget(target)
            return _failed(failure, started)
    raise AssertionError("unreachable")  # pragma: no cover


def _failed(failure: Exception, started: float) -> Answer:
    return Answer(None, f"{type(failure).__name__}: {failure}"[:500], int((time.perf_counter() - started) * 1000))
