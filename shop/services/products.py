"""Staff product management. Every commit here retires the cached documents and listings it changed."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from sqlalchemy.exc import IntegrityError

from shop.errors import Conflict, ResourceNotFound
from shop.models import EventType, Product
from shop.services.product_events import record_product_events, stock_event
from shop.services.unit_of_work import UnitOfWork


class SkuTaken(Conflict):
    slug = "sku-taken"
    title = "SKU already in use"


class ProductNotFound(ResourceNotFound):
    slug = "product-not-found"
    title = "Product not found"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"There is no product {product_id}.")


class NewProduct(TypedDict):
    sku: str
    name: str
    description: str
    category: str
    price: Decimal
    stock: int


class ProductChanges(TypedDict, total=False):
    """Any of a NewProduct's fields (the names and types are NewProduct's: a test holds them together), and
    is_active."""

    sku: str
    name: str
    description: str
    category: str
    price: Decimal
    stock: int
    is_active: bool


def _sku_taken(error: IntegrityError, sku: str | None) -> SkuTaken | None:
    if "uq_products_sku" in str(error.orig):
        return SkuTaken(f"Another product already has the SKU {sku}.")
    return None


def create_product(fields: NewProduct) -> Product:
    with UnitOfWork() as uow:
        if uow.products.get_by_sku(fields["sku"]) is not None:
            raise SkuTaken(f"Another product already has the SKU {fields['sku']}.")
        product = Product(**fields)
        try:
            uow.products.add(product)
        except IntegrityError as error:
            raise (_sku_taken(error, fields["sku"]) or error) from None
        uow.commit()
    return product


def update_product(product_id: int, changes: ProductChanges) -> Product:
    with UnitOfWork() as uow:
        # locked: an order decrementing stock at the same moment waits for us, and we for it
        locked = uow.products.lock_for_update([product_id])
        if not locked:
            raise ProductNotFound(product_id)
        product = locked[0]
        events = _events_of(product, changes)
        for name, value in changes.items():
            setattr(product, name, value)
        try:
            uow.products.save()
        except IntegrityError as error:
            raise (_sku_taken(error, changes.get("sku")) or error) from None
        record_product_events(uow, events)
        uow.commit()
    return product


def _events_of(product: Product, changes: ProductChanges) -> list[tuple[EventType, int]]:
    events = []
    if "price" in changes and changes["price"] != product.price:
        events.append((EventType.PRODUCT_PRICE_CHANGED, product.id))
    stock = stock_event(product.stock, changes["stock"]) if "stock" in changes else None
    if stock is not None:
        events.append((stock, product.id))
    return events


def deactivate_product(product_id: int) -> None:
    """Products are never deleted: orders keep pointing at them. Deactivating twice is fine."""
    update_product(product_id, {"is_active": False})
