"""A product's events: out of stock, back in stock, price changed, each carrying the product's document as the
API shows it once the change is made, written in the change's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from shop.catalog.documents import ProductDocument
from shop.models import EventType
from shop.services.unit_of_work import AbstractUnitOfWork


def stock_event(before: int, after: int) -> EventType | None:
    """The event a stock change makes, if it crosses zero (what the `in_stock` filter and a storefront's badge show)."""
    if before > 0 and after == 0:
        return EventType.PRODUCT_OUT_OF_STOCK
    if before == 0 and after > 0:
        return EventType.PRODUCT_BACK_IN_STOCK
    return None


def record_product_events(uow: AbstractUnitOfWork, events: Sequence[tuple[EventType, int]]) -> None:
    """Write these (type, product id) events with each product as this transaction has left it. Only for the rare
    changes that make them: it costs a write of what is pending and a read."""
    if not events:
        return
    uow.flush()
    current = {product.id: product for product in uow.products.current({product_id for _, product_id in events})}
    for type_, product_id in events:
        uow.events.record_for_product(type_, product_id, ProductDocument.of(current[product_id]).json)
