"""Page arguments and the list envelope of docs/api.md: {"items", "page", "per_page", "total", "pages"} plus Link."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

import marshmallow as ma
from flask import request

from shop.api.schemas import InputSchema
from shop.errors import ValidationFailed

MAX_PER_PAGE = 100
MAX_PAGE = 10_000  # deeper than anyone pages by hand; keeps OFFSET bounded
MAX_ID = 2**63 - 1  # bigint identity columns


class PageArgsSchema(InputSchema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE))
    per_page = ma.fields.Integer(load_default=20, validate=ma.validate.Range(min=1, max=MAX_PER_PAGE))


def page_schema(name: str, item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """The documented shape of a list envelope of `item_schema` items."""
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema)),
            "page": ma.fields.Integer(),
            "per_page": ma.fields.Integer(),
            "total": ma.fields.Integer(),
            "pages": ma.fields.Integer(),
        },
        name=name,
    )


def parse_id(raw: str, field: str) -> int:
    """A path id: a positive whole number that fits the column, else a 422 naming the parameter."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise ValidationFailed({field: ["Must be a positive whole number."]})
    return int(raw)


def page_count(total: int, per_page: int) -> int:
    return math.ceil(total / per_page)


def envelope_json(item_documents: Sequence[str], page: int, per_page: int, total: int) -> str:
    """The list body, assembled from documents that are already JSON text (cached ones are never re-parsed)."""
    return (
        '{"items":[' + ",".join(item_documents) + "]"
        f',"page":{page},"per_page":{per_page},"total":{total},"pages":{page_count(total, per_page)}}}'
    )


def link_header(page: int, per_page: int, total: int) -> str:
    """RFC 8288 links to the first, previous, next and last pages, keeping the request's other arguments."""
    return _links(request.path, request.query_string, page, per_page, total)


@functools.lru_cache(maxsize=4096)
def _links(path: str, query_string: bytes, page: int, per_page: int, total: int) -> str:
    # a pure function of its arguments, and the same few pages are asked for over and over
    others = [(name, value) for name, value in parse_qsl(query_string.decode()) if name != "page"]
    last = max(page_count(total, per_page), 1)
    targets = {"first": 1, "last": last}
    if page > 1:
        targets["prev"] = min(page - 1, last)
    if page < last:
        targets["next"] = page + 1
    return ", ".join(
        f'<{path}?{urlencode([*others, ("page", str(target))])}>; rel="{relation}"'
        for relation, target in targets.items()
    )
