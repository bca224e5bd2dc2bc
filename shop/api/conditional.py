"""JSON responses for cacheable reads: an ETag, 304 for a matching If-None-Match, and a short public max-age."""

from __future__ import annotations

from flask import Response, current_app, request


def cacheable_json(body: str, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=status, mimetype="application/json", headers=headers)
    response.add_etag()
    if "Authorization" not in request.headers:
        # a CDN may hold anonymous catalog reads for a few seconds; answers to signed-in callers are no-store
        response.headers["Cache-Control"] = f"public, max-age={current_app.config['CATALOG_MAX_AGE']}"
    response.vary.add("Authorization")
    response.make_conditional(request)
    return response
