"""The one JSON shape of a product, used by every catalog response and stored as-is in the cache."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shop.models import Product

CENT = Decimal("0.01")


def money(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


def timestamp(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(frozen=True)
class ProductDocument:
    """A product serialized to JSON text, with the row version it was read at."""

    product_id: int
    version: int
    json: str

    @functools.cached_property
    def is_active(self) -> bool:
        # parsed only where it is asked (a detail view), once per document; list pages pass the text through
        return bool(self.as_dict()["is_active"])

    @functools.cached_property
    def etag(self) -> str:
        """A strong validator of the JSON text, computed once however often a held document is served."""
        return hashlib.sha1(self.json.encode(), usedforsecurity=False).hexdigest()

    @classmethod
    def of(cls, product: Product) -> ProductDocument:
        body = {
            "id": product.id,
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "category": product.category,
            "price": money(product.price),
            "stock": product.stock,
            "in_stock": product.stock > 0,
            "is_active": product.is_active,
            "created_at": timestamp(product.created_at),
            "updated_at": timestamp(product.updated_at),
        }
        return cls(product.id, product.version, json.dumps(body, separators=(",", ":")))

    def as_dict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.json)
        return loaded
