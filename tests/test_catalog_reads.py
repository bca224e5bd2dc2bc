"""Browsing the catalog: search, filters, sorting, pagination, visibility, conditional requests, bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from flask.testing import FlaskClient

from shop.models import Product
from tests.conftest import AuthActions
from tests.helpers import add_product

PROBLEM = "application/problem+json"


@pytest.fixture
def catalog(db_session: Any) -> dict[str, Product]:
    """Eight products; one inactive, two out of stock, three categories."""
    specs = [
        ("LAMP", {"name": "Brass desk lamp", "description": "A warm reading light", "price": Decimal("49.99")}),
        ("KETTLE", {"name": "Electric kettle", "description": "Boils water fast", "price": Decimal("29.50")}),
        ("MUG", {"name": "Stoneware mug", "description": "Holds hot drinks", "price": Decimal("8.00"), "stock": 0}),
        ("NOVEL", {"name": "A quiet novel", "description": "Lamps and letters", "category": "Books",
                   "price": Decimal("14.99")}),
        ("ATLAS", {"name": "World atlas", "description": "Maps of every country", "category": "Books",
                   "price": Decimal("35.00"), "stock": 0}),
        ("BALL", {"name": "Football", "description": "Size five ball", "category": "Sports",
                  "price": Decimal("19.99")}),
        ("RACKET", {"name": "Tennis racket", "description": "Light carbon frame", "category": "Sports",
                    "price": Decimal("89.00")}),
        ("OLDLAMP", {"name": "Retired lamp", "description": "No longer sold", "price": Decimal("5.00"),
                     "is_active": False}),
    ]  # fmt: skip
    return {sku: add_product(db_session, sku, **fields) for sku, fields in specs}


def skus(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["sku"] for item in response.get_json()["items"]]


def test_the_list_shows_active_products_newest_first_in_the_documented_shape(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get("/api/v1/products")

    body = response.get_json()
    assert body["total"] == 7
    assert body["page"] == 1
    assert body["per_page"] == 20
    assert body["pages"] == 1
    # created in one transaction, so equal created_at: the id breaks the tie, newest (highest) first
    assert [item["sku"] for item in body["items"]] == ["RACKET", "BALL", "ATLAS", "NOVEL", "MUG", "KETTLE", "LAMP"]
    lamp = body["items"][-1]
    assert lamp == {
        "id": catalog["LAMP"].id,
        "sku": "LAMP",
        "name": "Brass desk lamp",
        "description": "A warm reading light",
        "category": "Home",
        "price": "49.99",
        "stock": 5,
        "in_stock": True,
        "is_active": True,
        "created_at": lamp["created_at"],
        "updated_at": lamp["updated_at"],
    }
    assert lamp["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=lamp", ["LAMP", "NOVEL"]),  # the name ranks above the description ("Lamps and letters")
        ("q=kettles", ["KETTLE"]),  # stemming
        ("q=hot+drinks", ["MUG"]),
        ('q="every+country"', ["ATLAS"]),
        ("q=lamp+-brass", ["NOVEL"]),
        ("q=nothing+like+this", []),
        ("category=Books&sort=name", ["NOVEL", "ATLAS"]),
        ("category=books", []),  # exact category names, as /categories lists them
        ("min_price=20&max_price=50&sort=price", ["KETTLE", "ATLAS", "LAMP"]),
        ("min_price=89", ["RACKET"]),
        ("max_price=8", ["MUG"]),
        ("in_stock=true&category=Books", ["NOVEL"]),
        ("in_stock=false&sort=name", ["MUG", "ATLAS"]),
        ("q=lamp&category=Home", ["LAMP"]),
    ],
)
def test_search_and_filters_return_exactly_the_matching_products(
    client: FlaskClient, catalog: dict[str, Product], query: str, expected: list[str]
) -> None:
    assert skus(client.get(f"/api/v1/products?{query}")) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["NOVEL", "LAMP", "KETTLE", "BALL", "MUG", "RACKET", "ATLAS"]),
        ("-name", ["ATLAS", "RACKET", "MUG", "BALL", "KETTLE", "LAMP", "NOVEL"]),
        ("price", ["MUG", "NOVEL", "BALL", "KETTLE", "ATLAS", "LAMP", "RACKET"]),
        ("-price", ["RACKET", "LAMP", "ATLAS", "KETTLE", "BALL", "NOVEL", "MUG"]),
        ("newest", ["RACKET", "BALL", "ATLAS", "NOVEL", "MUG", "KETTLE", "LAMP"]),
    ],
)
def test_sorting(client: FlaskClient, catalog: dict[str, Product], sort: str, expected: list[str]) -> None:
    assert skus(client.get(f"/api/v1/products?sort={sort}")) == expected


def test_pages_have_totals_and_link_headers_that_keep_the_other_arguments(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    pages = [client.get(f"/api/v1/products?sort=price&per_page=3&page={n}") for n in (1, 2, 3, 4)]

    assert [skus(page) for page in pages] == [["MUG", "NOVEL", "BALL"], ["KETTLE", "ATLAS", "LAMP"], ["RACKET"], []]
    for page in pages:
        body = page.get_json()
        assert (body["total"], body["pages"], body["per_page"]) == (7, 3, 3)

    def links(response: Any) -> dict[str, dict[str, list[str]]]:
        found = {}
        for part in response.headers["Link"].split(", "):
            target, relation = part.split("; ")
            url = urlparse(target.strip("<>"))
            assert url.path == "/api/v1/products"
            found[relation.removeprefix('rel="').removesuffix('"')] = parse_qs(url.query)
        return found

    first, second, last = links(pages[0]), links(pages[1]), links(pages[2])
    assert set(first) == {"first", "next", "last"}
    assert first["next"] == {"sort": ["price"], "per_page": ["3"], "page": ["2"]}
    assert first["last"]["page"] == ["3"]
    assert set(second) == {"first", "prev", "next", "last"}
    assert (second["prev"]["page"], second["next"]["page"]) == (["1"], ["3"])
    assert set(last) == {"first", "prev", "last"}


def test_an_empty_result_has_zero_pages(client: FlaskClient, catalog: dict[str, Product]) -> None:
    body = client.get("/api/v1/products?q=zeppelin").get_json()

    assert body == {"items": [], "page": 1, "per_page": 20, "total": 0, "pages": 0}


def test_staff_can_include_inactive_products(
    client: FlaskClient, auth: AuthActions, catalog: dict[str, Product]
) -> None:
    headers = auth.headers("staff@example.com", "staff")

    response = client.get("/api/v1/products?include_inactive=true&sort=price", headers=headers)

    assert skus(response)[0] == "OLDLAMP"
    assert response.get_json()["total"] == 8
    assert response.get_json()["items"][0]["is_active"] is False


def test_include_inactive_is_refused_to_customers_and_anonymous_callers(
    client: FlaskClient, auth: AuthActions, catalog: dict[str, Product]
) -> None:
    anonymous = client.get("/api/v1/products?include_inactive=true")
    customer = client.get("/api/v1/products?include_inactive=true", headers=auth.headers())

    assert anonymous.status_code == 401
    assert customer.status_code == 403
    assert customer.get_json()["detail"] == "include_inactive is for staff accounts; yours is customer."


def test_a_bad_token_on_a_public_route_is_still_a_401(client: FlaskClient, catalog: dict[str, Product]) -> None:
    response = client.get("/api/v1/products", headers={"Authorization": "Bearer expired-or-made-up"})

    assert response.status_code == 401


def test_product_detail(client: FlaskClient, catalog: dict[str, Product]) -> None:
    response = client.get(f"/api/v1/products/{catalog['KETTLE'].id}")

    assert response.status_code == 200
    assert response.get_json()["sku"] == "KETTLE"
    assert response.get_json()["price"] == "29.50"


def test_an_inactive_product_exists_only_for_staff(
    client: FlaskClient, auth: AuthActions, catalog: dict[str, Product]
) -> None:
    path = f"/api/v1/products/{catalog['OLDLAMP'].id}"

    assert client.get(path).status_code == 404
    assert client.get(path, headers=auth.headers()).status_code == 404
    staff = client.get(path, headers=auth.headers("staff@example.com", "staff"))
    assert staff.status_code == 200
    assert staff.get_json()["is_active"] is False


def test_an_unknown_product_is_a_404_problem(client: FlaskClient, catalog: dict[str, Product]) -> None:
    response = client.get("/api/v1/products/987654321")

    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert response.get_json()["detail"] == "There is no product 987654321."


@pytest.mark.parametrize("raw_id", ["abc", "0", "-3", "1.5", "99999999999999999999", "١٢"])
def test_a_malformed_product_id_is_a_422(client: FlaskClient, raw_id: str) -> None:
    response = client.get(f"/api/v1/products/{raw_id}")

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert response.get_json()["errors"] == {"product_id": ["Must be a positive whole number."]}


def test_categories_count_active_products(client: FlaskClient, catalog: dict[str, Product]) -> None:
    response = client.get("/api/v1/categories")

    assert response.status_code == 200
    assert response.get_json() == {
        "items": [
            {"name": "Books", "product_count": 2},
            {"name": "Home", "product_count": 3},  # the inactive lamp does not count
            {"name": "Sports", "product_count": 2},
        ]
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=cheapest", "sort"),
        ("min_price=-1", "min_price"),
        ("max_price=-0.01", "max_price"),
        ("min_price=50&max_price=10", "min_price"),
        ("min_price=NaN", "min_price"),
        ("min_price=abc", "min_price"),
        ("per_page=101", "per_page"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("in_stock=maybe", "in_stock"),
        ("q=", "q"),
        ("colour=red", "colour"),
    ],
)
def test_bad_list_arguments_are_a_422_naming_the_argument(client: FlaskClient, query: str, field: str) -> None:
    response = client.get(f"/api/v1/products?{query}")

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert list(response.get_json()["errors"]) == [field]


@pytest.mark.parametrize("path", ["/api/v1/products?sort=price", "/api/v1/categories", "PRODUCT"])
def test_catalog_reads_carry_an_etag_and_answer_304_to_a_match(
    client: FlaskClient, catalog: dict[str, Product], path: str
) -> None:
    if path == "PRODUCT":
        path = f"/api/v1/products/{catalog['LAMP'].id}"
    first = client.get(path)
    etag = first.headers["ETag"]

    again = client.get(path, headers={"If-None-Match": etag})
    other = client.get(path, headers={"If-None-Match": '"something-else"'})

    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert other.status_code == 200
    assert other.data == first.data


def test_anonymous_reads_may_sit_in_a_cdn_briefly_signed_in_ones_never(
    client: FlaskClient, auth: AuthActions, catalog: dict[str, Product]
) -> None:
    anonymous = client.get("/api/v1/products")
    signed_in = client.get("/api/v1/products", headers=auth.headers())

    assert anonymous.headers["Cache-Control"] == "public, max-age=5"
    assert "Authorization" in anonymous.headers["Vary"]
    assert signed_in.headers["Cache-Control"] == "no-store"


def test_the_etag_changes_when_the_product_does(
    client: FlaskClient, auth: AuthActions, catalog: dict[str, Product]
) -> None:
    path = f"/api/v1/products/{catalog['LAMP'].id}"
    etag = client.get(path).headers["ETag"]
    staff = auth.headers("staff@example.com", "staff")
    client.patch(path, json={"price": "44.00"}, headers=staff)

    response = client.get(path, headers={"If-None-Match": etag})

    assert response.status_code == 200
    assert response.get_json()["price"] == "44.00"
