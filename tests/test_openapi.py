from __future__ import annotations

import json
import re

from flask.testing import FlaskClient
from openapi_spec_validator import validate


def test_openapi_document_is_served_and_describes_the_health_routes(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "shop", "version": "v1"}
    assert {"/healthz", "/readyz"} <= set(document["paths"])
    readyz_responses = document["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(readyz_responses)


def test_openapi_documents_errors_as_problem_details(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()

    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])


def test_the_openapi_document_validates(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()

    validate(document)  # raises on any violation of the OpenAPI 3.1 schema

    text = json.dumps(document)
    assert not re.search(r'"(minimum|maximum|exclusiveMinimum|exclusiveMaximum)": "', text)  # bounds are numbers


def test_browsable_docs_are_served_by_shop_itself_under_a_content_security_policy(client: FlaskClient) -> None:
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "default-src 'none'" in policy
    assert "<script>" not in page  # no inline script: the policy would (rightly) refuse it
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources
    for source in sources:
        assert source.startswith("/api/v1/docs/"), source  # nothing from another origin, no CDN
        with client.get(source) as asset:  # a file response: closed when read
            assert asset.status_code == 200, source
            assert asset.headers["Content-Security-Policy"] == policy
    with client.get("/api/v1/docs/assets/swagger-ui-bundle.js") as bundle:
        assert b"SwaggerUIBundle" in bundle.data
    assert client.get("/api/v1/docs/assets/..%2fLICENSE").status_code == 404
    assert client.get("/api/v1/docs/assets/index.html").status_code == 404


def test_the_catalog_list_documents_its_query_arguments(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()

    operation = document["paths"]["/api/v1/products"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"] if parameter["in"] == "query"}
    assert names == {
        "q", "category", "min_price", "max_price", "in_stock", "sort", "include_inactive", "page", "per_page",
    }  # fmt: skip
    assert {"200", "422"} <= set(operation["responses"])
