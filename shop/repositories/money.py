"""The money of orders: notifications, the ledger, refunds and returns, read and written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import (
    LedgerEntry,
    LedgerKind,
    OrderStatusChange,
    PaymentNotification,
    Refund,
    RefundLine,
    RefundStatus,
    Return,
    ReturnLine,
)

# per order line: units refunded, restocked (by refunds and received returns), and asked back by returns
LINE_TALLIES = sa.text(
    """
    SELECT i.id,
           coalesce((SELECT sum(quantity) FROM refund_lines WHERE order_item_id = i.id), 0) AS refunded,
           coalesce((SELECT sum(restocked) FROM refund_lines WHERE order_item_id = i.id), 0)
             + coalesce((SELECT sum(received) FROM return_lines WHERE order_item_id = i.id), 0) AS restocked,
           coalesce((SELECT sum(quantity) FROM return_lines WHERE order_item_id = i.id), 0) AS returned
      FROM order_items i WHERE i.order_id = :order_id
    """
)


class LineTally(NamedTuple):
    """What has become of an order line's units since the order: refunded, back in stock, asked back by returns."""

    refunded: int
    restocked: int
    returned: int


class MoneyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def notification(self, provider: str, reference: str, kind: str) -> PaymentNotification | None:
        return self.session.scalars(
            sa.select(PaymentNotification).filter_by(provider=provider, reference=reference, kind=kind)
        ).one_or_none()

    def add_notification(self, notification: PaymentNotification) -> bool:
        """Keep it, unless a notification with its (provider, reference, kind) is already kept; then False. A
        concurrent twin waits on the unique index until the first one's transaction ends."""
        values = {
            column.name: getattr(notification, column.key)
            for column in PaymentNotification.__table__.columns
            if getattr(notification, column.key) is not None
        }
        inserted = self.session.execute(
            sa.dialects.postgresql.insert(PaymentNotification)
            .values(values)
            .on_conflict_do_nothing(index_elements=["provider", "reference", "kind"])
            .returning(PaymentNotification.id, PaymentNotification.received_at)
        ).one_or_none()
        if inserted is None:
            return False
        notification.id, notification.received_at = inserted
        return True

    def add(self, row: LedgerEntry | Refund | Return | OrderStatusChange) -> None:
        self.session.add(row)
        self.session.flush()

    def entries(self, order_id: int) -> list[LedgerEntry]:
        return list(self.session.scalars(sa.select(LedgerEntry).filter_by(order_id=order_id).order_by(LedgerEntry.id)))

    def received(self, order_id: int) -> Decimal:
        """What was captured or paid by hand for the order."""
        kinds = [LedgerKind.CAPTURE.value, LedgerKind.PAYMENT.value]
        total = self.session.scalar(
            sa.select(sa.func.sum(LedgerEntry.amount)).where(
                LedgerEntry.order_id == order_id, LedgerEntry.kind.in_(kinds)
            )
        )
        return total or Decimal("0.00")

    def refunded_or_pending(self, order_id: int) -> Decimal:
        """What was refunded, or asked of the provider and not yet settled: none of it may be refunded again."""
        total = self.session.scalar(sa.select(sa.func.sum(Refund.amount)).where(Refund.order_id == order_id))
        return total or Decimal("0.00")

    def capture_provider(self, order_id: int) -> str | None:
        """The provider that captured the order's money, if a provider did (else it was paid by hand)."""
        return self.session.scalar(
            sa.select(LedgerEntry.provider)
            .where(LedgerEntry.order_id == order_id, LedgerEntry.kind == LedgerKind.CAPTURE.value)
            .order_by(LedgerEntry.id)
            .limit(1)
        )

    def refunds(self, order_id: int) -> list[Refund]:
        return list(self.session.scalars(sa.select(Refund).filter_by(order_id=order_id).order_by(Refund.id)))

    def refund_lines(self, refund_ids: Sequence[int]) -> list[RefundLine]:
        if not refund_ids:
            return []
        statement = sa.select(RefundLine).where(RefundLine.refund_id.in_(refund_ids))
        return list(self.session.scalars(statement.order_by(RefundLine.refund_id, RefundLine.order_item_id)))

    def pending_refund(self, order_id: int, refund_id: int | None, amount: Decimal) -> Refund | None:
        """The pending refund a provider's `refunded` notification settles: the one it names, or else the oldest
        pending one of the order for exactly that amount. Locked."""
        statement = sa.select(Refund).where(Refund.order_id == order_id, Refund.status == RefundStatus.PENDING.value)
        if refund_id is not None:
            statement = statement.where(Refund.id == refund_id)
        else:
            statement = statement.where(Refund.amount == amount)
        return self.session.scalars(statement.order_by(Refund.id).limit(1).with_for_update()).one_or_none()

    def refund(self, order_id: int, refund_id: int) -> Refund | None:
        return self.session.scalars(sa.select(Refund).filter_by(order_id=order_id, id=refund_id)).one_or_none()

    def line_tallies(self, order_id: int) -> dict[int, LineTally]:
        """Per order line id, what has become of its units."""
        rows = self.session.execute(LINE_TALLIES, {"order_id": order_id})
        return {row.id: LineTally(int(row.refunded), int(row.restocked), int(row.returned)) for row in rows}

    def returns(self, order_id: int) -> list[Return]:
        statement = sa.select(Return).filter_by(order_id=order_id).order_by(Return.id)
        return list(self.session.scalars(statement))

    def return_for_update(self, order_id: int, return_id: int) -> Return | None:
        statement = sa.select(Return).filter_by(order_id=order_id, id=return_id).with_for_update()
        return self.session.scalars(statement).one_or_none()

    def return_lines(self, return_ids: Sequence[int]) -> list[ReturnLine]:
        if not return_ids:
            return []
        statement = sa.select(ReturnLine).where(ReturnLine.return_id.in_(return_ids))
        return list(self.session.scalars(statement.order_by(ReturnLine.return_id, ReturnLine.order_item_id)))

    def flagged(self, *, page: int, per_page: int) -> tuple[list[PaymentNotification], int]:
        flagged = sa.select(PaymentNotification).where(PaymentNotification.outcome == "flagged")
        total = self.session.scalar(sa.select(sa.func.count()).select_from(flagged.subquery())) or 0
        statement = flagged.order_by(PaymentNotification.received_at.desc(), PaymentNotification.id.desc())
        return list(self.session.scalars(statement.limit(per_page).offset((page - 1) * per_page))), total

    def notifications(self, order_id: int) -> list[PaymentNotification]:
        statement = sa.select(PaymentNotification).filter_by(order_id=order_id).order_by(PaymentNotification.id)
        return list(self.session.scalars(statement))
