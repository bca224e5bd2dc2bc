"""What both delivery paths write the same way: whether an endpoint is failing."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import Connection

from shop.webhooks.sender import Answer
from shop.webhooks.settings import Settings

ANSWERED = sa.text(
    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ANY(:endpoint_ids) AND failing_since IS NOT NULL"
)
# an endpoint with no success since failing_since, for longer than it may, is turned off, with the reason
FAILING = sa.text(
    """
    UPDATE webhook_endpoints
       SET failing_since = coalesce(failing_since, now()),
           is_active = is_active AND coalesce(failing_since, now()) > now() - make_interval(secs => :disable_after),
           disabled_reason = CASE WHEN coalesce(failing_since, now()) > now() - make_interval(secs => :disable_after)
                                  THEN disabled_reason
                                  ELSE 'no delivery succeeded since ' || coalesce(failing_since, now())::text END
     WHERE id = ANY(:endpoint_ids)
    """
)


def record_health(connection: Connection, settings: Settings, answers: Sequence[tuple[int, Answer]]) -> None:
    """An endpoint that delivered anything in the batch is answering; one that delivered nothing and failed is
    failing (since its first such batch), and is turned off once that has lasted WEBHOOK_DISABLE_AFTER_HOURS."""
    answered = {endpoint_id for endpoint_id, answer in answers if answer.delivered}
    failed = {endpoint_id for endpoint_id, answer in answers if not answer.delivered} - answered
    if answered:
        connection.execute(ANSWERED, {"endpoint_ids": sorted(answered)})
    if failed:
        connection.execute(FAILING, {"endpoint_ids": sorted(failed), "disable_after": settings.disable_after_seconds})
