"""Page arguments and the list envelope of API.md: {"items", "page", "per_page", "total", "pages"} plus Link."""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import urlencode

import marshmallow as ma
from flask import request

MAX_PER_PAGE = 100
MAX_PAGE = 10_000  # deeper than anyone pages by hand; keeps OFFSET bounded


class PageArgsSchema(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE))
    per_page = ma.fields.Integer(load_default=20, validate=ma.validate.Range(min=1, max=MAX_PER_PAGE))


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
    last = max(page_count(total, per_page), 1)
    targets = {"first": 1, "last": last}
    if page > 1:
        targets["prev"] = min(page - 1, last)
    if page < last:
        targets["next"] = page + 1
    links = []
    for relation, target in targets.items():
        arguments = [(name, value) for name, value in request.args.items(multi=True) if name != "page"]
        arguments.append(("page", str(target)))
        links.append(f'<{request.path}?{urlencode(arguments)}>; rel="{relation}"')
    return ", ".join(links)
