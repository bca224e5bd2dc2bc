"""The browsable API docs at /api/v1/docs: Swagger UI served by shop itself, never from a CDN.

Swagger UI comes from the pinned swagger-ui-bundle-v2 package (Swagger UI 5.31.0, Apache-2.0, its licence in
the package), so the page works offline, loads nothing from elsewhere, and runs under a Content-Security-Policy
that allows scripts from this origin only: the start-up script is a file too, not an inline script.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("api_docs", __name__, url_prefix="/api/v1/docs")

ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSET_MAX_AGE = 86_400  # the files change only with the pinned package

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>shop API</title>
  <link rel="icon" href="{assets}favicon-32x32.png">
  <link rel="stylesheet" href="{assets}swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec}"></div>
  <script src="{assets}swagger-ui-bundle.js"></script>
  <script src="{assets}swagger-ui-standalone-preset.js"></script>
  <script src="{start}"></script>
</body>
</html>
"""

START = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  });
});
"""


def _with_policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@blp.get("")
def page() -> Response:
    assets = url_for("api_docs.asset", name="x")[:-1]
    html = PAGE.format(assets=assets, spec=url_for("api-docs.openapi_json"), start=url_for("api_docs.start"))
    return _with_policy(Response(html, mimetype="text/html"))


@blp.get("/start.js")
def start() -> Response:
    return _with_policy(Response(START, mimetype="text/javascript"))


@blp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    return _with_policy(send_from_directory(str(swagger_ui_path), name, max_age=ASSET_MAX_AGE))
