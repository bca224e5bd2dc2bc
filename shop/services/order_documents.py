"""The one JSON shape of an order (docs/api.md), for responses and for idempotent replays."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shop.catalog.documents import money
from shop.models import Order, OrderStatusChange
from shop.repositories.placement import PlacedOrder


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def order_document(order: Order | PlacedOrder, history: Sequence[OrderStatusChange] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "currency": order.currency,
        "items": [
            {
                "product_id": item.product_id,
                "sku": item.sku,
                "name": item.name,
                "quantity": item.quantity,
                "unit_price": money(item.unit_price),
                "line_total": money(item.line_total),
            }
            for item in order.items
        ],
        "total": money(order.total),
        "shipping_address": order.shipping_address,
        "created_at": _when(order.created_at),
        "updated_at": _when(order.updated_at),
        "paid_at": _when(order.paid_at),
        "shipped_at": _when(order.shipped_at),
        "delivered_at": _when(order.delivered_at),
        "cancelled_at": _when(order.cancelled_at),
    }
    if order.dropped_lines:
        document["dropped_lines"] = order.dropped_lines
    if history is not None:
        document["history"] = [
            {
                "from": change.from_status,
                "to": change.to_status,
                "by": change.changed_by,
                "at": _when(change.changed_at),
                "note": change.note,
                "event": change.event,
            }
            for change in history
        ]
    return document
