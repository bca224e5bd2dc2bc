"""The catalog: anyone browses active products; staff see inactive ones and manage them."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any, cast
from urllib.parse import parse_qsl

import marshmallow as ma
from flask import Response, request, url_for

from shop.api.conditional import cacheable_json
from shop.api.pagination import PageArgsSchema, envelope_json, link_header, page_schema, parse_id
from shop.api.policy import authenticated, is_at_least, optional_user, require_at_least
from shop.api.schemas import Blueprint, InputSchema
from shop.catalog import reads
from shop.catalog.documents import ProductDocument
from shop.catalog.queries import ProductFilters, ProductSort
from shop.errors import ValidationFailed, flatten_messages
from shop.models import Role
from shop.services import products as product_service

blp = Blueprint("products", __name__, url_prefix="/api/v1/products", description="Catalog")

MAX_PRICE = Decimal("9999999999.99")  # numeric(12, 2)
MAX_STOCK = 2**31 - 1
SKU = ma.validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", error="Use 1 to 64 letters, digits, dots, _ and -.")


def _two_places(value: Decimal) -> None:
    # normalized first: 10.500 has two places; 1E-20000 has twenty thousand (and overflows PostgreSQL's numeric)
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -2:
        raise ma.ValidationError("Use at most two decimal places.")


def price_field(**kwargs: Any) -> ma.fields.Decimal:
    return ma.fields.Decimal(
        allow_nan=False,
        as_string=True,
        validate=[
            ma.validate.Range(min=Decimal("0.01"), max=MAX_PRICE, error="Must be between 0.01 and {max}."),
            _two_places,
        ],
        metadata={"type": "string", "example": "19.99"},
        **kwargs,
    )


class ProductSchema(ma.Schema):
    """What every catalog response holds for a product (documentation; responses come from ProductDocument)."""

    id = ma.fields.Integer()
    sku = ma.fields.String()
    name = ma.fields.String()
    description = ma.fields.String()
    category = ma.fields.String()
    price = ma.fields.String(metadata={"example": "19.99"})
    stock = ma.fields.Integer()
    in_stock = ma.fields.Boolean()
    is_active = ma.fields.Boolean()
    created_at = ma.fields.String(metadata={"format": "date-time"})
    updated_at = ma.fields.String(metadata={"format": "date-time"})


ProductPageSchema = page_schema("ProductPage", ProductSchema)


class ProductQuerySchema(PageArgsSchema):
    q = ma.fields.String(validate=ma.validate.Length(min=1, max=200), metadata={"description": "full-text search"})
    category = ma.fields.String(validate=ma.validate.Length(min=1, max=100))
    min_price = ma.fields.Decimal(allow_nan=False, validate=[ma.validate.Range(min=0, max=MAX_PRICE), _two_places])
    max_price = ma.fields.Decimal(allow_nan=False, validate=[ma.validate.Range(min=0, max=MAX_PRICE), _two_places])
    in_stock = ma.fields.Boolean()
    sort = ma.fields.Enum(ProductSort, by_value=True)
    include_inactive = ma.fields.Boolean(load_default=False, metadata={"description": "staff only"})

    @ma.validates_schema
    def price_range_is_ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ma.ValidationError("Must not be greater than max_price.", field_name="min_price")


class ProductCreateSchema(InputSchema):
    sku = ma.fields.String(required=True, validate=SKU)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    description = ma.fields.String(load_default="", validate=ma.validate.Length(max=10_000))
    category = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    price = price_field(required=True)
    stock = ma.fields.Integer(load_default=0, strict=True, validate=ma.validate.Range(min=0, max=MAX_STOCK))

    @ma.post_load
    def strip_text(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for name in ("name", "category"):
            if name in data:
                data[name] = data[name].strip()
                if not data[name]:
                    raise ma.ValidationError("Must not be blank.", field_name=name)
        return data


class ProductPatchSchema(ProductCreateSchema):
    """The fields of a new product, each optional (loaded with partial=True: no defaults, nothing required), and
    is_active."""

    is_active = ma.fields.Boolean()

    @ma.validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Send at least one field to change.", field_name="_request")


def parse_product_id(raw: str) -> int:
    return parse_id(raw, "product_id")


def _document_response(document: ProductDocument, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(document.json, status=status, mimetype="application/json", headers=headers)


PRODUCT_QUERY = ProductQuerySchema()


@functools.lru_cache(maxsize=4096)
def _filters_for(query_string: bytes) -> ProductFilters:
    """Parse and validate a listing's query string: a pure function, and storefronts repeat the same few.

    Strict: a misspelt filter (?categroy=Books) is a 422, not a silently unfiltered list. A repeated
    argument counts once, by its first value.
    """
    arguments: dict[str, str] = {}
    for name, value in parse_qsl(query_string.decode(errors="replace"), keep_blank_values=True):
        arguments.setdefault(name, value)
    try:
        return ProductFilters(**PRODUCT_QUERY.load(arguments))
    except ma.ValidationError as invalid:
        raise ValidationFailed(flatten_messages(invalid.messages)) from None


@blp.get("")
@blp.doc(parameters=[{"in": "query", "schema": ProductQuerySchema}])
@blp.response(200, ProductPageSchema, description="A page of products, with a Link header")
@blp.alt_response(422, description="An unknown or invalid argument")
def list_products() -> Response:
    """Active products, searched, filtered, sorted and paginated; staff may ask for inactive ones too."""
    filters = _filters_for(request.query_string)
    user = optional_user()
    if filters.include_inactive:
        require_at_least(user, Role.STAFF, "include_inactive")

    def render(documents: list[ProductDocument], total: int) -> str:
        return envelope_json([d.json for d in documents], filters.page, filters.per_page, total)

    page = reads.product_page(filters, render)
    return cacheable_json(
        page.body, etag=page.etag, headers={"Link": link_header(filters.page, filters.per_page, page.total)}
    )


@blp.get("/<product_id>")
@blp.response(200, ProductSchema)
@blp.alt_response(404, description="No such product, or an inactive one asked for by a non-staff caller")
def get_product(product_id: str) -> Response:
    """One product. Inactive products exist only for staff."""
    user = optional_user()
    document = reads.product(parse_product_id(product_id))
    if document is None or (not document.is_active and not is_at_least(user, Role.STAFF)):
        raise product_service.ProductNotFound(int(product_id))
    return cacheable_json(document.json, etag=document.etag)


@blp.post("")
@authenticated(Role.STAFF)
@blp.arguments(ProductCreateSchema())
@blp.response(201, ProductSchema)
@blp.alt_response(409, description="SKU already in use")
def create_product(fields: dict[str, Any]) -> Response:
    """Add a product to the catalog."""
    product = product_service.create_product(cast(product_service.NewProduct, fields))
    location = url_for("products.get_product", product_id=product.id)
    return _document_response(ProductDocument.of(product), 201, {"Location": location})


@blp.patch("/<product_id>")
@authenticated(Role.STAFF)
@blp.arguments(ProductPatchSchema(partial=True))
@blp.response(200, ProductSchema)
@blp.alt_response(404, description="No such product")
@blp.alt_response(409, description="SKU already in use")
def update_product(changes: dict[str, Any], product_id: str) -> Response:
    """Change some fields of a product; unknown fields are refused, never ignored."""
    product = product_service.update_product(
        parse_product_id(product_id), cast(product_service.ProductChanges, changes)
    )
    return _document_response(ProductDocument.of(product))


@blp.delete("/<product_id>")
@authenticated(Role.STAFF)
@blp.response(204)
@blp.alt_response(404, description="No such product")
def deactivate_product(product_id: str) -> None:
    """Deactivate a product: it leaves the catalog, and orders keep pointing at it."""
    product_service.deactivate_product(parse_product_id(product_id))
