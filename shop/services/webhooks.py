"""Staff manage webhook endpoints: where events of some types are delivered, each signed with the endpoint's secret.

A secret is shown once, when the endpoint is made or its secret rotated, and kept sealed (shop/webhooks/secrets.py).
Rotating keeps the previous secret signing beside the new one for WEBHOOK_ROTATION_HOURS, so a receiver can switch
without refusing a delivery. A URL is checked against server-side request forgery here, and again at each delivery
(shop/webhooks/urls.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import sqlalchemy as sa
from flask import current_app

from shop.errors import ResourceNotFound, ValidationFailed
from shop.extensions import db
from shop.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from shop.repositories.webhooks import WebhookRepository
from shop.services.unit_of_work import UnitOfWork
from shop.webhooks.notifier import events_committed
from shop.webhooks.secrets import new_signing_secret, seal
from shop.webhooks.urls import UnsafeUrl, check_url


class WebhookNotFound(ResourceNotFound):
    slug = "webhook-not-found"
    title = "Webhook not found"

    def __init__(self, endpoint_id: int) -> None:
        super().__init__(f"There is no webhook {endpoint_id}.")


class WebhookChanges(TypedDict, total=False):
    url: str
    event_types: list[EventType]
    is_active: bool


@dataclass(frozen=True)
class WebhookView:
    """An endpoint, and its signing secret in the clear when it was just made (never again after that answer)."""

    endpoint: WebhookEndpoint
    secret: str | None = None


def checked_url(url: str) -> str:
    config = current_app.config
    try:
        check_url(
            url,
            allow_private=config["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"],
            require_https=config["WEBHOOK_REQUIRE_HTTPS"],
        )
    except UnsafeUrl as unsafe:
        raise ValidationFailed({"url": [str(unsafe)]}) from None
    return url


def _types(event_types: Sequence[EventType]) -> list[str]:
    return sorted({event_type.value for event_type in event_types})


def create_webhook(url: str, event_types: Sequence[EventType], *, is_active: bool, created_by: int) -> WebhookView:
    secret = new_signing_secret()
    endpoint = WebhookEndpoint(
        url=checked_url(url), event_types=_types(event_types), is_active=is_active, secret=seal(secret),
        created_by=created_by,
    )  # fmt: skip
    with UnitOfWork() as uow:
        WebhookRepository(uow.session).add(endpoint)
        uow.commit()
    return WebhookView(endpoint, secret)


def list_webhooks() -> Sequence[WebhookEndpoint]:
    # reads run on the request's session, outside any unit of work: they write nothing
    return WebhookRepository(db.session()).all()


def get_webhook(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookRepository(db.session()).get(endpoint_id)
    if endpoint is None:
        raise WebhookNotFound(endpoint_id)
    return endpoint


def update_webhook(endpoint_id: int, changes: WebhookChanges) -> WebhookEndpoint:
    with UnitOfWork() as uow:
        webhooks = WebhookRepository(uow.session)
        endpoint = webhooks.get(endpoint_id, for_update=True)
        if endpoint is None:
            raise WebhookNotFound(endpoint_id)
        if "url" in changes:
            endpoint.url = checked_url(changes["url"])
        if "event_types" in changes:
            endpoint.event_types = _types(changes["event_types"])
        if "is_active" in changes:
            if changes["is_active"] and not endpoint.is_active:
                endpoint.disabled_reason = None  # staff turned it back on: whatever disabled it is theirs to judge
                endpoint.failing_since = None
                webhooks.follow_from_now(endpoint)  # what happened while it was off is in the feed, not sent
            endpoint.is_active = changes["is_active"]
        webhooks.save()
        uow.commit()
    return endpoint


def delete_webhook(endpoint_id: int) -> None:
    with UnitOfWork() as uow:
        webhooks = WebhookRepository(uow.session)
        endpoint = webhooks.get(endpoint_id, for_update=True)
        if endpoint is None:
            raise WebhookNotFound(endpoint_id)
        webhooks.delete(endpoint)
        uow.commit()


def rotate_secret(endpoint_id: int) -> WebhookView:
    """A new secret signs from now on; the current one signs beside it for WEBHOOK_ROTATION_HOURS more."""
    secret = new_signing_secret()
    until = datetime.now(UTC) + timedelta(hours=current_app.config["WEBHOOK_ROTATION_HOURS"])
    with UnitOfWork() as uow:
        webhooks = WebhookRepository(uow.session)
        endpoint = webhooks.get(endpoint_id, for_update=True)
        if endpoint is None:
            raise WebhookNotFound(endpoint_id)
        endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, until
        endpoint.secret = seal(secret)
        webhooks.save()
        uow.commit()
    return WebhookView(endpoint, secret)


class DeliveryNotFound(ResourceNotFound):
    slug = "delivery-not-found"
    title = "Delivery not found"

    def __init__(self, delivery_id: uuid.UUID) -> None:
        super().__init__(f"This webhook has no delivery {delivery_id}.")


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryView]
    total: int


def list_deliveries(endpoint_id: int, *, status: str | None, page: int, per_page: int) -> DeliveryPage:
    """Newest first, each with its attempts (one more query for the page, not one per delivery)."""
    get_webhook(endpoint_id)
    session = db.session()
    filtered = sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        filtered = filtered.where(WebhookDelivery.status == status)
    total = session.scalar(sa.select(sa.func.count()).select_from(filtered.subquery())) or 0
    newest_first = filtered.order_by(WebhookDelivery.event_position.desc())
    found = list(session.scalars(newest_first.limit(per_page).offset((page - 1) * per_page)))
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {delivery.id: [] for delivery in found}
    if found:
        for attempt in session.scalars(
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(attempts))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return DeliveryPage([DeliveryView(delivery, attempts[delivery.id]) for delivery in found], total)


def redeliver(endpoint_id: int, delivery_id: uuid.UUID) -> DeliveryView:
    """Send it again, whatever became of it: due now, with another day of retries (a dead one comes back)."""
    hours = float(current_app.config["WEBHOOK_RETRY_HOURS"])
    with UnitOfWork() as uow:
        delivery = uow.session.scalars(
            sa.select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id)
            .with_for_update()
        ).one_or_none()
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        delivery.status = "pending"
        delivery.next_attempt_at = sa.func.now()
        delivery.give_up_at = sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, hours * 3600)
        delivery.claimed_until = None
        uow.session.flush()
        uow.session.refresh(delivery)
        of_delivery = sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
        attempts = list(uow.session.scalars(of_delivery.order_by(WebhookAttempt.number)))
        uow.commit()
    events_committed()  # the workers look now
    return DeliveryView(delivery, attempts)
