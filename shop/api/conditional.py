"""JSON responses for cacheable reads: an ETag, 304 for a matching If-None-Match, and a short public max-age.

Built by hand rather than with werkzeug's add_etag/make_conditional: this is the hot path of the catalog,
and it only ever needs a strong ETag over a body it already has.
"""

from __future__ import annotations

import hashlib

from flask import Response, current_app, request


def cacheable_json(body: str | bytes, *, etag: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """`etag`: the body's hash when the caller already has it (a held list page)."""
    encoded = body.encode() if isinstance(body, str) else body
    if etag is None:
        etag = hashlib.sha1(encoded, usedforsecurity=False).hexdigest()
    response_headers = {"ETag": f'"{etag}"', "Vary": "Authorization"}
    if "Authorization" not in request.headers:
        # a CDN may hold anonymous catalog reads for a few seconds; answers to signed-in callers are no-store
        response_headers["Cache-Control"] = f"public, max-age={current_app.config['CATALOG_MAX_AGE']}"
    if headers:
        response_headers.update(headers)
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=response_headers)
    return Response(encoded, mimetype="application/json", headers=response_headers)
