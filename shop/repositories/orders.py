from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from shop.models import Order, OrderItem, OrderStatus, OrderStatusChange

# A new order, its lines and its first history entry in one statement (order placement's hot path).
# Lines are inserted in the order given, so their ids keep the order's line order.
INSERT_PLACED_ORDER = sa.text(
    """
    WITH new_order AS (
        INSERT INTO orders (user_id, status, currency, total, units, shipping_address, dropped_lines)
        VALUES (:user_id, :status, :currency, :total, :units, CAST(:shipping_address AS jsonb),
                CAST(:dropped_lines AS jsonb))
        RETURNING id, created_at, updated_at
    ), new_lines AS (
        INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total)
        SELECT new_order.id, line.product_id, line.sku, line.name, line.quantity, line.unit_price, line.line_total
          FROM new_order,
               unnest(CAST(:product_ids AS bigint[]), CAST(:skus AS text[]), CAST(:names AS text[]),
                      CAST(:quantities AS integer[]), CAST(:unit_prices AS numeric[]), CAST(:line_totals AS numeric[]))
                 WITH ORDINALITY AS line (product_id, sku, name, quantity, unit_price, line_total, position)
         ORDER BY line.position
    ), first_change AS (
        INSERT INTO order_status_changes (order_id, from_status, to_status, changed_by)
        SELECT id, NULL, :status, :user_id FROM new_order
    )
    SELECT id, created_at, updated_at FROM new_order
    """
)


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        """The order with its lines (loaded in one more query, never lazily per line)."""
        statement = sa.select(Order).where(Order.id == order_id).options(selectinload(Order.items))
        if for_update:
            statement = statement.with_for_update(of=Order)
        return self.session.scalars(statement).one_or_none()

    def insert_placed(self, order: Order) -> Order:
        """Write a new pending order built in memory (lines in `order.items`) in one statement.

        The order is not added to the session: it comes back with its id and timestamps set, for its answer.
        """
        items: Sequence[OrderItem] = order.items
        order.status = OrderStatus.PENDING.value
        parameters: dict[str, Any] = {
            "user_id": order.user_id,
            "status": order.status,
            "currency": order.currency,
            "total": order.total,
            "units": order.units,
            "shipping_address": json.dumps(order.shipping_address),
            "dropped_lines": json.dumps(order.dropped_lines),
            "product_ids": [item.product_id for item in items],
            "skus": [item.sku for item in items],
            "names": [item.name for item in items],
            "quantities": [item.quantity for item in items],
            "unit_prices": [item.unit_price for item in items],
            "line_totals": [item.line_total for item in items],
        }
        row = self.session.execute(INSERT_PLACED_ORDER, parameters).one()
        order.id, order.created_at, order.updated_at = row.id, row.created_at, row.updated_at
        return order

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
