"""The JSON shapes of an order's money (docs/api.md): ledger entries, notifications, refunds, returns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shop.catalog.documents import money
from shop.models import LedgerEntry, PaymentNotification, Refund, RefundLine, Return, ReturnLine


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def ledger_document(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "order_id": entry.order_id,
        "kind": entry.kind,
        "amount": money(entry.amount),
        "currency": entry.currency,
        "occurred_at": _when(entry.occurred_at),
        "provider": entry.provider,
        "reference": entry.reference,
        "recorded_by": entry.recorded_by,
        "refund_id": entry.refund_id,
    }


def notification_document(notification: PaymentNotification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "provider": notification.provider,
        "reference": notification.reference,
        "kind": notification.kind,
        "order_id": notification.order_id,
        "refund_id": notification.refund_id,
        "amount": money(notification.amount),
        "currency": notification.currency,
        "received_at": _when(notification.received_at),
        "outcome": notification.outcome,
        "flag": notification.flag,
        "detail": notification.detail,
    }


def refund_document(refund: Refund, lines: Sequence[RefundLine]) -> dict[str, Any]:
    return {
        "id": refund.id,
        "order_id": refund.order_id,
        "status": refund.status,
        "amount": money(refund.amount),
        "currency": refund.currency,
        "reason": refund.reason,
        "lines": [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "amount": money(line.amount),
                "restocked": line.restocked,
            }
            for line in lines
        ],
        "provider": refund.provider,
        "provider_reference": refund.provider_reference,
        "return_id": refund.return_id,
        "created_by": refund.created_by,
        "created_at": _when(refund.created_at),
        "succeeded_at": _when(refund.succeeded_at),
    }


def return_document(returned: Return, lines: Sequence[ReturnLine]) -> dict[str, Any]:
    return {
        "id": returned.id,
        "order_id": returned.order_id,
        "status": returned.status,
        "reason": returned.reason,
        "lines": [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "received": line.received,
                "damaged": line.damaged,
            }
            for line in lines
        ],
        "requested_by": returned.requested_by,
        "requested_at": _when(returned.requested_at),
        "received_by": returned.received_by,
        "received_at": _when(returned.received_at),
    }
