"""The event feed, for staff and for integration accounts (other systems: a warehouse, an e-mail sender)."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import Response

from shop.api.policy import authenticated
from shop.api.schemas import Blueprint, InputSchema
from shop.db.replica import replica_read
from shop.models import EventType, Role
from shop.services.events import START, Cursor, read_feed

blp = Blueprint("events", __name__, url_prefix="/api/v1/events", description="Events")

MAX_LIMIT = 1000


class FeedArgsSchema(InputSchema):
    after = ma.fields.String(
        validate=ma.validate.Length(min=3, max=40),
        metadata={"description": "the `next` of the previous page; absent: from the oldest event kept"},
    )
    type = ma.fields.List(
        ma.fields.Enum(EventType, by_value=True),
        metadata={"description": "only these types (repeat the argument for several)"},
    )
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=MAX_LIMIT))


class EventSchema(ma.Schema):
    """One event (documentation; responses come from shop.services.events)."""

    id = ma.fields.UUID(metadata={"description": "the same on every delivery of this event: drop duplicates by it"})
    type = ma.fields.String(metadata={"enum": [t.value for t in EventType]})
    resource = ma.fields.Dict(metadata={"example": {"type": "order", "id": 42}})
    sequence = ma.fields.Integer(metadata={"description": "1, 2, 3, ... per resource, without gaps"})
    occurred_at = ma.fields.String(metadata={"format": "date-time"})
    data = ma.fields.Dict(metadata={"description": "the resource's document as the API showed it then"})
    cursor = ma.fields.String()


class FeedSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EventSchema))
    next = ma.fields.String(metadata={"description": "pass as `after` to read on; the same when nothing is new"})


@blp.get("")
@authenticated(Role.STAFF, also=Role.INTEGRATION)
@blp.arguments(FeedArgsSchema(), location="query", unknown=ma.RAISE)
@blp.response(200, FeedSchema)
@replica_read
def feed(arguments: dict[str, Any]) -> Response:
    """Events in the order a follower can trust: keep `next` and ask again with it; nothing before it can appear."""
    after = Cursor.decode(arguments["after"]) if "after" in arguments else START
    page = read_feed(after, arguments.get("type", []), arguments["limit"])
    body = {"items": [event.document() for event in page.events], "next": page.next.encode()}
    return Response(json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})
