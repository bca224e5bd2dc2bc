"""Sending a batch of deliveries: signed, in parallel across resources, in order within one, never past the batch's
time, and sparing an endpoint that has just failed.

A batch is a list of chains: one resource's events to one endpoint, oldest first. Chains go out at once (SENDERS
threads: each send mostly waits on its endpoint); a chain's events go one after another in sequence order, and a
chain stops at an event that was not delivered but may be later, or that must wait for one outside the batch (the
ones after it must not overtake it). Once an endpoint fails
retryably in a batch, its events not yet sent are put off rather than each waiting out its own timeout; sends not
started within the settings' budget are put off too. Whatever is put off is recorded as pending, to be sent by the
retry path in order.
"""

from __future__ import annotations

import enum
import json
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shop.services.events import FeedEvent
from shop.webhooks.secrets import unseal
from shop.webhooks.sender import Answer, post
from shop.webhooks.settings import Settings
from shop.webhooks.signing import signature_header
from shop.webhooks.urls import Target, UnsafeUrl, check_url

SENDERS = 16  # sends at once
USER_AGENT = "shop-webhooks/1"
REFUSED = "refused: "


class PutOff(enum.Enum):
    """Why an event was not sent in this batch (it is recorded pending, attempts unchanged)."""

    BEHIND = "the event of its resource before it is still to be delivered"
    ENDPOINT_FAILING = "its endpoint failed earlier in the batch"
    OUT_OF_TIME = "the batch ran out of time"


Result = Answer | PutOff


@dataclass(frozen=True)
class Outgoing:
    """An event for an endpoint, with what signing and sending it needs."""

    delivery_id: uuid.UUID
    endpoint_id: int
    event: FeedEvent
    url: str
    secret: str  # sealed
    previous_secret: str | None  # sealed; only while a rotation lasts
    # the resource's event before this one is out of the way (or is ahead of it in its chain): it may go
    ready: bool = True

    @property
    def resource(self) -> tuple[int, str, int]:
        return (self.endpoint_id, self.event.resource_type, self.event.resource_id)


@dataclass(frozen=True)
class Prepared:
    """A delivery ready to go: where, what and how signed; or why it may not go (`refusal`)."""

    outgoing: Outgoing
    target: Target | None
    body: bytes
    headers: dict[str, str]
    refusal: str | None = None


class Preparer:
    """Prepares a batch, working out once per endpoint rather than once per delivery its checked URL and its
    secrets. Everything that needs the app (its configuration, the secrets' key) happens here, before the sends."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._targets: dict[str, Target | str] = {}
        self._secrets: dict[tuple[str, str | None], list[str]] = {}

    def _target(self, url: str) -> Target | str:
        """The checked target, or why the URL is refused (the SSRF check again: a name may resolve elsewhere now)."""
        if url not in self._targets:
            settings = self._settings
            try:
                self._targets[url] = check_url(
                    url, allow_private=settings.allow_private, require_https=settings.require_https
                )
            except UnsafeUrl as unsafe:
                self._targets[url] = f"{REFUSED}{unsafe}"
        return self._targets[url]

    def _unsealed(self, sealed: str, previous: str | None) -> list[str]:
        if (sealed, previous) not in self._secrets:
            self._secrets[sealed, previous] = [unseal(sealed), *([unseal(previous)] if previous else [])]
        return self._secrets[sealed, previous]

    def prepare(self, outgoing: Outgoing) -> Prepared:
        body = json.dumps(outgoing.event.document()).encode()
        target = self._target(outgoing.url)
        if isinstance(target, str):
            return Prepared(outgoing, None, body, {}, refusal=target)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Shop-Event-Id": str(outgoing.event.id),
            "Shop-Delivery-Id": str(outgoing.delivery_id),
            "Shop-Signature": signature_header(self._unsealed(outgoing.secret, outgoing.previous_secret), body),
        }
        return Prepared(outgoing, target, body, headers)


def chains(batch: Sequence[Outgoing]) -> list[list[Outgoing]]:
    """The batch as one chain per resource and endpoint, each in sequence order (the feed's order, by transaction,
    can differ)."""
    by_resource: dict[tuple[int, str, int], list[Outgoing]] = {}
    for outgoing in batch:
        by_resource.setdefault(outgoing.resource, []).append(outgoing)
    return [sorted(chain, key=lambda outgoing: outgoing.event.sequence) for chain in by_resource.values()]


def _post(prepared: Prepared, timeout_seconds: float) -> Answer:
    if prepared.target is None:
        return Answer(status=None, error=prepared.refusal, duration_ms=0)
    return post(prepared.target, prepared.body, prepared.headers, timeout_seconds)


def is_refusal(answer: Answer) -> bool:
    return answer.error is not None and answer.error.startswith(REFUSED)


def may_succeed_later(answer: Answer) -> bool:
    """Not delivered, but trying again may help (a 5xx, 408, 429, no answer); a refusal or another 4xx will not."""
    return not answer.delivered and answer.worth_retrying and not is_refusal(answer)


class _Run:
    """One batch's sending: the endpoints that failed in it, and its deadline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.failing: set[int] = set()
        self.deadline = time.monotonic() + settings.send_budget_seconds
        self.lock = threading.Lock()

    def chain(self, chain: list[Prepared]) -> list[Result]:
        results: list[Result] = []
        for prepared in chain:
            endpoint_id = prepared.outgoing.endpoint_id
            previous_undone = bool(results) and (isinstance(results[-1], PutOff) or may_succeed_later(results[-1]))
            if previous_undone or not prepared.outgoing.ready:
                results.append(PutOff.BEHIND)
            elif endpoint_id in self.failing:
                results.append(PutOff.ENDPOINT_FAILING)
            elif time.monotonic() > self.deadline:
                results.append(PutOff.OUT_OF_TIME)
            else:
                answer = _post(prepared, self.settings.timeout_seconds)
                if may_succeed_later(answer):
                    with self.lock:
                        self.failing.add(endpoint_id)
                results.append(answer)
        return results


def send_chains(
    batch: Sequence[list[Outgoing]], settings: Settings, senders: ThreadPoolExecutor | None
) -> dict[uuid.UUID, Result]:
    """Each delivery's answer, or why it was put off. `senders` runs the chains in parallel (None: one by one)."""
    preparer = Preparer(settings)
    prepared = [[preparer.prepare(outgoing) for outgoing in chain] for chain in batch]
    run = _Run(settings)
    done = senders.map(run.chain, prepared) if senders is not None else map(run.chain, prepared)
    results: dict[uuid.UUID, Result] = {}
    for chain, chain_results in zip(prepared, done, strict=True):
        for one, result in zip(chain, chain_results, strict=True):
            results[one.outgoing.delivery_id] = result
    return results
