"""Reading orders: one order, a page of orders, an order's status history.

Who may see an order is decided here, once (`ensure_visible`, on `Principal.may_see_order_of`): its owner and
staff; to anyone else it does not exist, the same 404 as for no order, so an id tells a stranger nothing. The
transitions (shop/services/order_lifecycle.py) ask the same question before they lock anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from shop.errors import ResourceNotFound
from shop.extensions import db
from shop.models import Order, OrderStatusChange, Role
from shop.repositories import OrderRepository
from shop.security.principal import Principal
from shop.services.unit_of_work import AbstractUnitOfWork


class OrderNotFound(ResourceNotFound):
    slug = "order-not-found"
    title = "Order not found"

    def __init__(self, order_id: int) -> None:
        super().__init__(f"There is no order {order_id}.")


def ensure_visible(order_id: int, owner_id: int | None, viewer: Principal) -> None:
    """Raise OrderNotFound unless the order exists (`owner_id` is its customer's id) and `viewer` may see it."""
    if owner_id is None or not viewer.may_see_order_of(owner_id):
        raise OrderNotFound(order_id)


@dataclass(frozen=True)
class OrderView:
    """An order as `viewer` may see it: with its status history for staff, without it for its customer."""

    order: Order
    history: list[OrderStatusChange] | None


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    total: int


def _orders() -> OrderRepository:
    # reads run on the request's session, outside any unit of work: they write nothing
    return OrderRepository(db.session())


def lock_order(uow: AbstractUnitOfWork, order_id: int) -> Order:
    """The order with its lines, locked (FOR UPDATE) in the unit of work's transaction, or OrderNotFound."""
    order = uow.orders.get(order_id, for_update=True)
    if order is None:
        raise OrderNotFound(order_id)
    return order


def read_order(order_id: int, viewer: Principal) -> OrderView:
    orders = _orders()
    order = orders.get(order_id)
    if order is None:
        raise OrderNotFound(order_id)
    ensure_visible(order_id, order.user_id, viewer)
    return OrderView(order, orders.history(order.id) if viewer.is_at_least(Role.STAFF) else None)


def read_order_page(
    viewer: Principal, *, customer_id: int | None, status: str | None, page: int, per_page: int
) -> OrderPage:
    """Newest first. A customer sees their own orders whatever `customer_id` says; staff see everyone's, or one
    customer's."""
    owner = customer_id if viewer.is_at_least(Role.STAFF) else viewer.id
    orders, total = _orders().page(user_id=owner, status=status, page=page, per_page=per_page)
    return OrderPage(orders, total)
