from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from shop.models import Order


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
