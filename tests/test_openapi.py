from __future__ import annotations

from flask.testing import FlaskClient


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


def test_browsable_docs_are_served(client: FlaskClient) -> None:
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"swagger-ui" in response.data


def test_the_catalog_list_documents_its_query_arguments(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()

    operation = document["paths"]["/api/v1/products"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"] if parameter["in"] == "query"}
    assert names == {
        "q", "category", "min_price", "max_price", "in_stock", "sort", "include_inactive", "page", "per_page",
    }  # fmt: skip
    assert {"200", "422"} <= set(operation["responses"])
