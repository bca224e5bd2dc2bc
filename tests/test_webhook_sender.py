"""Sending one delivery: to the addresses the URL was checked against, the first that takes a connection."""

from __future__ import annotations

from urllib.parse import urlsplit

from shop.webhooks.sender import post
from shop.webhooks.urls import Target
from tests.helpers import Receiver


def target(url: str, addresses: tuple[str, ...]) -> Target:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return Target(url, parts.scheme, parts.hostname, parts.port, addresses, parts.path)


def test_an_address_that_refuses_is_passed_over_for_the_next() -> None:
    with Receiver() as receiver:  # listens on 127.0.0.1 only: 127.0.0.2 on its port refuses
        answer = post(target(receiver.url, ("127.0.0.2", "127.0.0.1")), b"{}", {}, timeout=2)

    assert (answer.status, answer.error) == (200, None)
    assert len(receiver.requests) == 1


def test_when_every_address_refuses_the_answer_says_so() -> None:
    with Receiver() as receiver:
        answer = post(target(receiver.url, ("127.0.0.2", "127.0.0.3")), b"{}", {}, timeout=2)

    assert answer.status is None
    assert answer.error is not None
    assert answer.error.startswith("ConnectionRefusedError")
    assert receiver.requests == []
