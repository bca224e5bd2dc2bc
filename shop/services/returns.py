"""Returns: a customer asks to send lines of a delivered order back, within RETURN_WINDOW_DAYS of its delivery;
staff receive the parcel, counting per line the units fit to sell again (back in stock, once) and the damaged ones
(not). A refund can follow (shop/services/refunds.py, with the return's id).

Each step locks the order, so a line is never asked back, or put back in stock, twice over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from shop.db.transactions import run_transaction
from shop.errors import Conflict, ResourceNotFound, ValidationFailed
from shop.models import EventType, Order, OrderStatus, Return, ReturnLine, ReturnStatus
from shop.repositories.money import LineTally, MoneyRepository
from shop.security.principal import Principal
from shop.services.money_documents import return_document
from shop.services.order_lifecycle import record_step
from shop.services.order_reads import ensure_visible, lock_order
from shop.services.product_events import record_product_events
from shop.services.refunds import LineRequest
from shop.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ReceivedLine:
    product_id: int
    received: int
    damaged: int


class NotReturnable(Conflict):
    slug = "not-returnable"
    title = "The order cannot be returned"


class ReturnNotFound(ResourceNotFound):
    slug = "return-not-found"
    title = "Return not found"


class AlreadyReceived(Conflict):
    slug = "return-already-received"
    title = "The return was already received"


def request_return(
    order_id: int, customer: Principal, lines: Sequence[LineRequest], reason: str | None
) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        ensure_visible(order_id, uow.orders.owner_of(order_id), customer)  # before any lock
        order = lock_order(uow, order_id)
        _ensure_returnable(uow.session, order)
        items = {item.product_id: item for item in order.items}
        tallies = uow.money.line_tallies(order.id)
        errors: dict[str, list[str]] = {}
        for index, line in enumerate(lines):
            item = items.get(line.product_id)
            if item is None:
                errors[f"lines.{index}.product_id"] = ["The order has no line for this product."]
            elif line.quantity > item.quantity - tallies[item.id].returned:
                left = item.quantity - tallies[item.id].returned
                errors[f"lines.{index}.quantity"] = [f"At most {left} of this line may still be returned."]
        if errors:
            raise ValidationFailed(errors)
        returned = Return(order_id=order.id, reason=reason, requested_by=customer.id)
        uow.money.add(returned)
        rows = [
            ReturnLine(return_id=returned.id, order_item_id=items[line.product_id].id, product_id=line.product_id,
                       quantity=line.quantity, received=0, damaged=0)
            for line in lines
        ]  # fmt: skip
        uow.session.add_all(rows)
        uow.session.flush()
        uow.session.refresh(returned)
        document = return_document(returned, rows)
        units = sum(line.quantity for line in lines)
        record_step(
            uow, order, EventType.RETURN_REQUESTED, document, actor_id=customer.id,
            note=f"return {returned.id} of {units} units requested" + (f": {reason}" if reason else ""),
        )  # fmt: skip
        uow.commit()
        return document

    return run_transaction(work, unit_of_work=UnitOfWork)


def receive_return(order_id: int, return_id: int, staff: Principal, lines: Sequence[ReceivedLine]) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        order = lock_order(uow, order_id)
        returned = uow.money.return_for_update(order.id, return_id)
        if returned is None:
            raise ReturnNotFound(f"Order {order_id} has no return {return_id}.")
        if returned.status == ReturnStatus.RECEIVED.value:
            raise AlreadyReceived(f"Return {return_id} was received already; it is received once.")
        rows = {row.product_id: row for row in uow.money.return_lines([returned.id])}
        tallies = uow.money.line_tallies(order.id)
        errors: dict[str, list[str]] = {}
        for index, line in enumerate(lines):
            row = rows.get(line.product_id)
            if row is None:
                errors[f"lines.{index}.product_id"] = ["The return has no line for this product."]
            elif line.received + line.damaged > row.quantity:
                errors[f"lines.{index}"] = [f"{row.quantity} units were asked back; received + damaged is more."]
            elif line.received > _restockable(order, row, tallies):
                errors[f"lines.{index}.received"] = ["More units than are out of stock for this line."]
        if errors:
            raise ValidationFailed(errors)
        counted = {line.product_id: line for line in lines}
        for product_id, row in rows.items():
            given = counted.get(product_id)
            row.received, row.damaged = (given.received, given.damaged) if given else (0, 0)
        restock = {product_id: row.received for product_id, row in rows.items() if row.received}
        products = uow.products.lock_for_update(list(restock)) if restock else []
        back_in_stock = [(EventType.PRODUCT_BACK_IN_STOCK, p.id) for p in products if p.stock == 0]
        for product in products:
            product.stock += restock[product.id]
        returned.status = ReturnStatus.RECEIVED.value
        returned.received_by = staff.id
        returned.received_at = sa.func.now()
        uow.session.flush()
        uow.session.refresh(returned)
        document = return_document(returned, list(rows.values()))
        received = sum(row.received for row in rows.values())
        damaged = sum(row.damaged for row in rows.values())
        record_step(
            uow, order, EventType.RETURN_RECEIVED, document, actor_id=staff.id,
            note=f"return {returned.id} received: {received} units back in stock, {damaged} damaged",
        )  # fmt: skip
        record_product_events(uow, back_in_stock)
        uow.commit()
        return document

    return run_transaction(work, unit_of_work=UnitOfWork)


def _restockable(order: Order, row: ReturnLine, tallies: dict[int, LineTally]) -> int:
    """Units of the line not yet back in stock (a refund with restock may have put some back)."""
    quantity = next(item.quantity for item in order.items if item.id == row.order_item_id)
    return quantity - tallies[row.order_item_id].restocked


def _ensure_returnable(session: Session, order: Order) -> None:
    if order.status != OrderStatus.DELIVERED.value or order.delivered_at is None:
        raise NotReturnable(f"Order {order.id} is {order.status}; only a delivered order can be returned.")
    window = timedelta(days=current_app.config["RETURN_WINDOW_DAYS"])
    now = session.scalar(sa.select(sa.func.now()))
    if now is None or now - order.delivered_at > window:
        raise NotReturnable(
            f"Order {order.id} was delivered on {order.delivered_at.date().isoformat()}; returns close "
            f"{window.days} days after delivery."
        )


def returns_of(session: Session, order_id: int) -> list[dict[str, Any]]:
    money = MoneyRepository(session)
    found = money.returns(order_id)
    lines = money.return_lines([returned.id for returned in found])
    return [return_document(r, [line for line in lines if line.return_id == r.id]) for r in found]
