"""Staff product management: create, update, deactivate; and every way each can be refused."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from shop.api.products import ProductCreateSchema, ProductPatchSchema, ProductSchema
from shop.catalog.documents import ProductDocument
from shop.models import Product
from shop.services import products as product_service
from tests.conftest import AuthActions
from tests.helpers import add_product

PROBLEM = "application/problem+json"
NEW = {"sku": "CHAIR-1", "name": "Oak chair", "description": "Solid oak", "category": "Home", "price": "120.00",
       "stock": 4}  # fmt: skip


@pytest.fixture
def staff(auth: AuthActions) -> dict[str, str]:
    return auth.headers("staff@example.com", "staff")


def rows(session: Any) -> list[tuple[Any, ...]]:
    statement = sa.select(
        Product.sku, Product.name, Product.category, Product.price, Product.stock, Product.is_active
    ).order_by(Product.id)
    return [tuple(row) for row in session.execute(statement)]


def test_staff_create_a_product(client: FlaskClient, staff: dict[str, str], db_session: Any) -> None:
    response = client.post("/api/v1/products", json=NEW, headers=staff)

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/products/{body['id']}"
    assert {key: body[key] for key in NEW} == NEW
    assert body["in_stock"] is True
    assert body["is_active"] is True
    assert client.get(response.headers["Location"]).get_json() == body
    assert [row[0] for row in rows(db_session)] == ["CHAIR-1"]


def test_description_and_stock_are_optional(client: FlaskClient, staff: dict[str, str]) -> None:
    body = {"sku": "X1", "name": "X", "category": "Misc", "price": "1.50"}

    created = client.post("/api/v1/products", json=body, headers=staff).get_json()

    assert (created["description"], created["stock"], created["in_stock"]) == ("", 0, False)


def test_a_taken_sku_is_a_409(client: FlaskClient, staff: dict[str, str], db_session: Any) -> None:
    client.post("/api/v1/products", json=NEW, headers=staff)

    response = client.post("/api/v1/products", json=NEW | {"name": "Another"}, headers=staff)

    assert response.status_code == 409
    assert response.mimetype == PROBLEM
    assert response.get_json()["type"] == "/problems/sku-taken"
    assert response.get_json()["detail"] == "Another product already has the SKU CHAIR-1."
    assert len(rows(db_session)) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price": "0"}, "price"),
        ({"price": "-5.00"}, "price"),
        ({"price": "1.999"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "10000000000.00"}, "price"),
        ({"stock": -1}, "stock"),
        ({"stock": 2.5}, "stock"),
        ({"stock": "7"}, "stock"),
        ({"sku": ""}, "sku"),
        ({"sku": "has space"}, "sku"),
        ({"name": "   "}, "name"),
        ({"category": ""}, "category"),
        ({"colour": "red"}, "colour"),
        ({"is_active": False}, "is_active"),  # set on PATCH, not at creation
    ],
)
def test_invalid_products_are_a_422_and_nothing_is_written(
    client: FlaskClient, staff: dict[str, str], db_session: Any, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/products", json=NEW | changes, headers=staff)

    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert field in response.get_json()["errors"]
    assert rows(db_session) == []


def test_missing_required_fields_are_named(client: FlaskClient, staff: dict[str, str]) -> None:
    response = client.post("/api/v1/products", json={"description": "only this"}, headers=staff)

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"sku", "name", "category", "price"}


@pytest.mark.parametrize(("method", "path"), [("post", ""), ("patch", "/1"), ("delete", "/1")])
def test_product_management_is_for_staff_only(
    client: FlaskClient, auth: AuthActions, db_session: Any, method: str, path: str
) -> None:
    add_product(db_session, "KEEP")
    customer = auth.headers()
    body = NEW if method == "post" else ({"price": "1.00"} if method == "patch" else None)

    anonymous = getattr(client, method)(f"/api/v1/products{path}", json=body)
    as_customer = getattr(client, method)(f"/api/v1/products{path}", json=body, headers=customer)

    assert anonymous.status_code == 401
    assert as_customer.status_code == 403
    assert rows(db_session) == [("KEEP", "Keep", "Home", pytest.approx(10), 5, True)]


def test_staff_update_some_fields(client: FlaskClient, staff: dict[str, str], db_session: Any) -> None:
    product = add_product(db_session, "MUG", name="Mug", price=8)

    response = client.patch(
        f"/api/v1/products/{product.id}", json={"price": "9.50", "name": " Big mug ", "stock": 0}, headers=staff
    )

    assert response.status_code == 200
    body = response.get_json()
    assert (body["name"], body["price"], body["stock"], body["in_stock"]) == ("Big mug", "9.50", 0, False)
    assert body["sku"] == "MUG"
    assert rows(db_session) == [("MUG", "Big mug", "Home", pytest.approx(9.5), 0, True)]


@pytest.mark.parametrize(
    ("changes", "field"),
    [({}, "_request"), ({"colour": "red"}, "colour"), ({"price": "0.00"}, "price"), ({"stock": -3}, "stock"),
     ({"is_active": "sometimes"}, "is_active"), ({"id": 5}, "id"), ({"created_at": "2020-01-01"}, "created_at")],
)  # fmt: skip
def test_invalid_updates_are_a_422_and_change_nothing(
    client: FlaskClient, staff: dict[str, str], db_session: Any, changes: dict[str, Any], field: str
) -> None:
    product = add_product(db_session, "MUG", price=8)
    before = rows(db_session)

    response = client.patch(f"/api/v1/products/{product.id}", json=changes, headers=staff)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert rows(db_session) == before


def test_updating_to_a_taken_sku_is_a_409(client: FlaskClient, staff: dict[str, str], db_session: Any) -> None:
    add_product(db_session, "A")
    b = add_product(db_session, "B")

    response = client.patch(f"/api/v1/products/{b.id}", json={"sku": "A", "price": "3.00"}, headers=staff)

    assert response.status_code == 409
    assert [(sku, price) for sku, _, _, price, _, _ in rows(db_session)] == [("A", 10), ("B", 10)]


def test_updating_an_unknown_product_is_a_404(client: FlaskClient, staff: dict[str, str]) -> None:
    response = client.patch("/api/v1/products/424242", json={"price": "1.00"}, headers=staff)

    assert response.status_code == 404
    assert response.get_json()["type"] == "/problems/product-not-found"


def test_deactivating_hides_the_product_but_keeps_the_row(
    client: FlaskClient, staff: dict[str, str], db_session: Any
) -> None:
    product = add_product(db_session, "GONE")
    path = f"/api/v1/products/{product.id}"
    assert client.get(path).status_code == 200

    response = client.delete(path, headers=staff)

    assert response.status_code == 204
    assert client.get(path).status_code == 404
    assert client.get("/api/v1/products").get_json()["total"] == 0
    assert client.get(path, headers=staff).get_json()["is_active"] is False
    assert rows(db_session) == [("GONE", "Gone", "Home", pytest.approx(10), 5, False)]
    # again is fine; reactivating is a PATCH
    assert client.delete(path, headers=staff).status_code == 204
    assert client.patch(path, json={"is_active": True}, headers=staff).get_json()["is_active"] is True
    assert client.get(path).status_code == 200


def test_deactivating_an_unknown_product_is_a_404(client: FlaskClient, staff: dict[str, str]) -> None:
    assert client.delete("/api/v1/products/424242", headers=staff).status_code == 404


def test_the_product_fields_are_one_list(db_session: Any) -> None:
    """The response document, its OpenAPI schema, the create and patch schemas and the service's field types name
    the same fields: adding one to a product means adding it everywhere, or this fails."""
    product = add_product(db_session, "FIELDS")
    document = ProductDocument.of(product).as_dict()
    new_product = set(get_type_hints(product_service.NewProduct))

    assert set(ProductSchema().fields) == set(document)
    assert set(ProductCreateSchema().fields) == new_product
    assert set(ProductPatchSchema().fields) == new_product | {"is_active"}
    assert get_type_hints(product_service.ProductChanges) == get_type_hints(product_service.NewProduct) | {
        "is_active": bool
    }
    assert new_product | {"is_active"} <= set(document)
