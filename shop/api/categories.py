"""Categories of active products, with how many products each holds."""

from __future__ import annotations

import json

import marshmallow as ma
from flask import Response

from shop.api.conditional import cacheable_json
from shop.api.schemas import Blueprint
from shop.catalog import reads

blp = Blueprint("categories", __name__, url_prefix="/api/v1/categories", description="Catalog")


class CategorySchema(ma.Schema):
    name = ma.fields.String()
    product_count = ma.fields.Integer()


class CategoryListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CategorySchema))


@blp.get("")
@blp.response(200, CategoryListSchema)
def list_categories() -> Response:
    """Every category that has active products, by name."""
    items = [{"name": name, "product_count": count} for name, count in reads.categories()]
    return cacheable_json(json.dumps({"items": items}, separators=(",", ":")))
