"""Which URLs a webhook may point at: server-side request forgery is refused at registration, and again at each
delivery (a name can be pointed elsewhere after it was checked).

shop sends requests to whatever URL staff register. Without a check, a URL naming this machine, the private
network behind it or a cloud's metadata service (169.254.169.254, which hands out credentials) would have shop
fetch it on an attacker's behalf. So in production a URL must be https, carry no credentials, and its name must
resolve only to public addresses (`ipaddress`'s is_global: not loopback, private, link-local, carrier-grade NAT,
multicast or reserved; an IPv4 address mapped into IPv6 counts as itself). WEBHOOK_ALLOW_PRIVATE_ADDRESSES and
WEBHOOK_REQUIRE_HTTPS relax this for development and tests, where receivers run on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000
Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """Why a URL may not be a webhook's; the message is for the staff member who typed it."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the addresses the name resolved to, all allowed) and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    path: str = "/"  # with the query, as the request line names it


def resolve(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in found})


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_global
    return address.is_global


def check_url(url: str, *, allow_private: bool, require_https: bool, resolver: Resolver = resolve) -> Target:
    """The URL as a Target, or UnsafeUrl saying what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"Use at most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("Not a URL.") from None
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"Use an {' or '.join(allowed)} URL.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Put no credentials in the URL: deliveries are signed instead.")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(parts.hostname, port)
    if not addresses:
        raise UnsafeUrl(f"The host {parts.hostname} cannot be resolved.")
    if not allow_private:
        refused = [a for a in addresses if not _public(ipaddress.ip_address(a.split("%")[0]))]
        if refused:
            raise UnsafeUrl(
                f"The host {parts.hostname} resolves to {', '.join(refused)}: not a public address (loopback, "
                "private, link-local and metadata addresses are refused)."
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, parts.hostname, port, tuple(addresses), path)
