from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from shop.models import Order, OrderStatusChange


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        """The order with its lines (loaded in one more query, never lazily per line)."""
        statement = sa.select(Order).where(Order.id == order_id).options(selectinload(Order.items))
        if for_update:
            statement = statement.with_for_update(of=Order)
        return self.session.scalars(statement).one_or_none()

    def add(self, order: Order) -> Order:
        self.session.add(order)
        self.session.flush()
        return order

    def page(self, *, user_id: int | None, status: str | None, page: int, per_page: int) -> tuple[list[Order], int]:
        """Newest first, with their lines in one more query (no N+1), and how many match in all."""
        filtered = sa.select(Order)
        if user_id is not None:
            filtered = filtered.where(Order.user_id == user_id)
        if status is not None:
            filtered = filtered.where(Order.status == status)
        total = self.session.scalar(sa.select(sa.func.count()).select_from(filtered.subquery())) or 0
        statement = (
            filtered.options(selectinload(Order.items))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        return list(self.session.scalars(statement)), total

    def history(self, order_id: int) -> list[OrderStatusChange]:
        statement = sa.select(OrderStatusChange).where(OrderStatusChange.order_id == order_id)
        return list(self.session.scalars(statement.order_by(OrderStatusChange.id)))
