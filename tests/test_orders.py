"""Placing and reading orders: the answers, the failures, and the database after each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shop.catalog import cache as catalog_cache
from shop.models import Order, OrderItem, OrderStatusChange, Product
from tests.conftest import AuthActions, statements_sent
from tests.helpers import ADDRESS, add_product, order_body, stock_levels

PROBLEM = "application/problem+json"


@pytest.fixture
def stock(db_session: Any) -> dict[str, Product]:
    return {
        "LAMP": add_product(db_session, "LAMP", name="Desk lamp", price=Decimal("19.99"), stock=5),
        "MUG": add_product(db_session, "MUG", name="Mug", price=Decimal("0.10"), stock=3),
        "BOOK": add_product(db_session, "BOOK", name="Book", price=Decimal("12.50"), stock=0),
        "OLD": add_product(db_session, "OLD", name="Old", price=Decimal("1.00"), stock=9, is_active=False),
    }


@pytest.fixture
def customer(auth: AuthActions) -> dict[str, str]:
    return auth.headers("ann@example.com")


def order_count(session: Any) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(Order)) or 0)


def test_placing_an_order(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any
) -> None:
    response = client.post("/api/v1/orders", json=order_body((stock["LAMP"], 2), (stock["MUG"], 3)), headers=customer)

    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert response.headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert order["status"] == "pending"
    assert order["currency"] == "USD"
    assert order["items"] == [
        {"product_id": stock["LAMP"].id, "sku": "LAMP", "name": "Desk lamp", "quantity": 2, "unit_price": "19.99",
         "line_total": "39.98"},
        {"product_id": stock["MUG"].id, "sku": "MUG", "name": "Mug", "quantity": 3, "unit_price": "0.10",
         "line_total": "0.30"},
    ]  # fmt: skip
    assert order["total"] == "40.28"  # exact: 39.98 + 0.30, never 40.279999
    assert order["shipping_address"] == ADDRESS | {"line2": ""}
    assert order["paid_at"] is None
    assert order["cancelled_at"] is None
    assert stock_levels(db_session) == {"LAMP": 3, "MUG": 0, "BOOK": 0, "OLD": 9}
    history = db_session.execute(sa.select(OrderStatusChange.from_status, OrderStatusChange.to_status)).all()
    assert history == [(None, "pending")]


def test_out_of_stock_is_a_409_listing_each_short_line_and_writes_nothing(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any
) -> None:
    body = order_body((stock["LAMP"], 2), (stock["MUG"], 4), (stock["BOOK"], 1))

    response = client.post("/api/v1/orders", json=body, headers=customer)

    assert response.status_code == 409
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/out-of-stock"
    assert problem["lines"] == [
        {"product_id": stock["MUG"].id, "requested": 4, "available": 3},
        {"product_id": stock["BOOK"].id, "requested": 1, "available": 0},
    ]
    assert stock_levels(db_session) == {"LAMP": 5, "MUG": 3, "BOOK": 0, "OLD": 9}
    assert order_count(db_session) == 0


def test_allow_partial_keeps_what_can_be_filled_and_says_what_was_dropped(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any
) -> None:
    body = order_body((stock["LAMP"], 2), (stock["MUG"], 4), (stock["BOOK"], 1), allow_partial=True)

    response = client.post("/api/v1/orders", json=body, headers=customer)

    assert response.status_code == 201
    order = response.get_json()
    assert [item["sku"] for item in order["items"]] == ["LAMP"]
    assert order["total"] == "39.98"
    assert order["dropped_lines"] == [
        {"product_id": stock["MUG"].id, "requested": 4, "available": 3},
        {"product_id": stock["BOOK"].id, "requested": 1, "available": 0},
    ]
    assert stock_levels(db_session) == {"LAMP": 3, "MUG": 3, "BOOK": 0, "OLD": 9}


def test_allow_partial_with_nothing_to_fill_is_a_409(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any
) -> None:
    body = order_body((stock["MUG"], 4), (stock["BOOK"], 1), allow_partial=True)

    response = client.post("/api/v1/orders", json=body, headers=customer)

    assert response.status_code == 409
    assert order_count(db_session) == 0
    assert stock_levels(db_session)["MUG"] == 3


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b, s: b | {"items": []}, "items"),
        (lambda b, s: b | {"items": [{"product_id": s["LAMP"].id, "quantity": 1}] * 51}, "items"),
        (lambda b, s: b | {"items": [{"product_id": s["LAMP"].id, "quantity": 0}]}, "items.0.quantity"),
        (lambda b, s: b | {"items": [{"product_id": s["LAMP"].id, "quantity": 1001}]}, "items.0.quantity"),
        (lambda b, s: b | {"items": [{"product_id": s["LAMP"].id, "quantity": "2"}]}, "items.0.quantity"),
        (lambda b, s: b | {"items": [{"product_id": s["LAMP"].id, "quantity": 1}] * 2}, "items"),
        (lambda b, s: b | {"items": [{"product_id": 987654, "quantity": 1}]}, "items.0.product_id"),
        (lambda b, s: b | {"items": [{"product_id": s["OLD"].id, "quantity": 1}]}, "items.0.product_id"),
        (lambda b, s: b | {"items": [{"product_id": -1, "quantity": 1}]}, "items.0.product_id"),
        (lambda b, s: b | {"shipping_address": ADDRESS | {"country": "usa"}}, "shipping_address.country"),
        (lambda b, s: {k: v for k, v in b.items() if k != "shipping_address"}, "shipping_address"),
        (lambda b, s: b | {"shipping_address": ADDRESS | {"city": ""}}, "shipping_address.city"),
        (lambda b, s: b | {"coupon": "FREE"}, "coupon"),
    ],
)
def test_invalid_orders_are_a_422_and_write_nothing(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any, mutate: Any, field: str
) -> None:
    body = mutate(order_body((stock["LAMP"], 1)), stock)

    response = client.post("/api/v1/orders", json=body, headers=customer)

    assert response.status_code == 422, response.get_json()
    assert response.mimetype == PROBLEM
    assert field in response.get_json()["errors"]
    assert order_count(db_session) == 0
    assert stock_levels(db_session)["LAMP"] == 5


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey", "ünïcode"])
def test_a_malformed_idempotency_key_is_a_422(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any, key: str
) -> None:
    headers = customer | {"Idempotency-Key": key}

    response = client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=headers)

    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["Idempotency-Key"]
    assert order_count(db_session) == 0


def test_placing_an_order_needs_a_token(client: FlaskClient, stock: dict[str, Product], db_session: Any) -> None:
    assert client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1))).status_code == 401
    assert order_count(db_session) == 0


# --- idempotency --------------------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_gets_the_first_answer_and_no_second_order(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any
) -> None:
    headers = customer | {"Idempotency-Key": "order-2026-11-22-0001"}
    body = order_body((stock["LAMP"], 2))

    first = client.post("/api/v1/orders", json=body, headers=headers)
    again = client.post("/api/v1/orders", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert order_count(db_session) == 1
    assert stock_levels(db_session)["LAMP"] == 3


def test_the_same_key_with_a_different_body_is_a_422(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], db_session: Any
) -> None:
    headers = customer | {"Idempotency-Key": "k-1"}
    client.post("/api/v1/orders", json=order_body((stock["LAMP"], 2)), headers=headers)

    response = client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=headers)

    assert response.status_code == 422
    assert response.get_json()["type"] == "/problems/idempotency-key-reused"
    assert order_count(db_session) == 1


def test_an_out_of_stock_answer_is_replayed_too(
    client: FlaskClient, customer: dict[str, str], auth: AuthActions, stock: dict[str, Product], db_session: Any
) -> None:
    headers = customer | {"Idempotency-Key": "k-oos"}
    first = client.post("/api/v1/orders", json=order_body((stock["MUG"], 4)), headers=headers)
    db_session.execute(sa.update(Product).where(Product.sku == "MUG").values(stock=10))

    again = client.post("/api/v1/orders", json=order_body((stock["MUG"], 4)), headers=headers)

    assert first.status_code == again.status_code == 409
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert order_count(db_session) == 0


def test_keys_belong_to_one_user(
    client: FlaskClient, customer: dict[str, str], auth: AuthActions, stock: dict[str, Product], db_session: Any
) -> None:
    other = auth.headers("bob@example.com")
    body = order_body((stock["LAMP"], 1))

    mine = client.post("/api/v1/orders", json=body, headers=customer | {"Idempotency-Key": "same"})
    theirs = client.post("/api/v1/orders", json=body, headers=other | {"Idempotency-Key": "same"})

    assert mine.status_code == theirs.status_code == 201
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert order_count(db_session) == 2


# --- reading orders -----------------------------------------------------------------------------------------


def test_owner_and_staff_read_an_order_others_get_404(
    client: FlaskClient, customer: dict[str, str], auth: AuthActions, stock: dict[str, Product]
) -> None:
    order = client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=customer).get_json()
    path = f"/api/v1/orders/{order['id']}"

    mine = client.get(path, headers=customer)
    someone_else = client.get(path, headers=auth.headers("bob@example.com"))
    staff = client.get(path, headers=auth.headers("staff@example.com", "staff"))

    assert mine.status_code == 200
    assert mine.get_json() == order
    assert "history" not in mine.get_json()
    assert someone_else.status_code == 404
    # the same answer as for an order that does not exist: nothing is revealed
    assert someone_else.get_json() == {
        "type": "/problems/order-not-found",
        "title": "Order not found",
        "status": 404,
        "detail": f"There is no order {order['id']}.",
    }
    assert staff.status_code == 200
    assert [(h["from"], h["to"]) for h in staff.get_json()["history"]] == [(None, "pending")]
    assert client.get(path).status_code == 401
    assert client.get("/api/v1/orders/abc", headers=customer).status_code == 422


def test_customers_list_their_own_orders_newest_first_staff_list_all(
    client: FlaskClient, auth: AuthActions, stock: dict[str, Product], db_session: Any
) -> None:
    ann, bob = auth.headers("ann@example.com"), auth.headers("bob@example.com")
    staff = auth.headers("staff@example.com", "staff")
    ann_orders = [client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=ann).get_json()["id"]
                  for _ in range(3)]  # fmt: skip
    bob_order = client.post("/api/v1/orders", json=order_body((stock["MUG"], 1)), headers=bob).get_json()["id"]

    bob_id = client.get("/api/v1/users/me", headers=bob).get_json()["id"]

    mine = client.get("/api/v1/orders?per_page=2", headers=ann).get_json()
    everyone = client.get("/api/v1/orders", headers=staff).get_json()
    bobs = client.get(f"/api/v1/orders?user_id={bob_id}", headers=staff)

    assert [o["id"] for o in mine["items"]] == ann_orders[::-1][:2]
    assert (mine["total"], mine["pages"]) == (3, 2)
    assert [o["id"] for o in everyone["items"]] == [bob_order, *ann_orders[::-1]]
    assert [o["id"] for o in bobs.get_json()["items"]] == [bob_order]
    assert client.get("/api/v1/orders?status=paid", headers=staff).get_json()["total"] == 0
    assert client.get("/api/v1/orders?status=pending", headers=staff).get_json()["total"] == 4


def test_order_list_failures(client: FlaskClient, customer: dict[str, str]) -> None:
    assert client.get("/api/v1/orders").status_code == 401
    assert client.get("/api/v1/orders?user_id=1", headers=customer).status_code == 403
    assert client.get("/api/v1/orders?status=lost", headers=customer).status_code == 422
    assert client.get("/api/v1/orders?per_page=101", headers=customer).status_code == 422


# --- the catalog sees what orders do ------------------------------------------------------------------------


def test_an_order_that_takes_the_last_units_is_in_the_very_next_catalog_read(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product]
) -> None:
    mug = stock["MUG"]
    in_stock = "/api/v1/products?in_stock=true&sort=name"
    assert client.get(f"/api/v1/products/{mug.id}").get_json()["stock"] == 3
    assert "MUG" in [p["sku"] for p in client.get(in_stock).get_json()["items"]]

    client.post("/api/v1/orders", json=order_body((mug, 3)), headers=customer)

    detail = client.get(f"/api/v1/products/{mug.id}").get_json()
    assert (detail["stock"], detail["in_stock"]) == (0, False)
    assert "MUG" not in [p["sku"] for p in client.get(in_stock).get_json()["items"]]


def test_order_line_snapshots_survive_product_changes(
    client: FlaskClient, customer: dict[str, str], auth: AuthActions, stock: dict[str, Product], db_session: Any
) -> None:
    order = client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=customer).get_json()
    staff = auth.headers("staff@example.com", "staff")
    client.patch(f"/api/v1/products/{stock['LAMP'].id}", json={"name": "Renamed", "price": "99.00"}, headers=staff)

    again = client.get(f"/api/v1/orders/{order['id']}", headers=customer).get_json()

    assert again["items"] == order["items"]
    assert db_session.scalar(sa.select(OrderItem.name)) == "Desk lamp"


def test_the_order_list_costs_the_same_few_queries_for_one_order_or_twenty(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], app: Flask, db_session: Any
) -> None:
    def queries_for_listing() -> int:
        with statements_sent(app) as statements:
            response = client.get("/api/v1/orders?per_page=50", headers=customer)
        assert response.status_code == 200
        return len([s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))])

    client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=customer)
    one = queries_for_listing()
    db_session.execute(sa.update(Product).values(stock=100))
    for _ in range(19):
        client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1), (stock["MUG"], 1)), headers=customer)
    twenty = queries_for_listing()

    assert one == twenty == 4  # the token, the count, the orders, all their lines


def test_an_order_retires_exactly_the_products_it_touched(
    client: FlaskClient, customer: dict[str, str], stock: dict[str, Product], app: Flask
) -> None:
    for product in stock.values():
        client.get(f"/api/v1/products/{product.id}")
    with app.app_context():
        generation_before = catalog_cache.generation()

    client.post("/api/v1/orders", json=order_body((stock["LAMP"], 1)), headers=customer)

    with app.app_context():
        cached = catalog_cache.get_products([p.id for p in stock.values()])
        assert sorted(p.sku for p in stock.values() if p.id not in cached) == ["LAMP"]
        # stock went from 5 to 4: no listing changed, so the list pages stay cached
        assert catalog_cache.generation() == generation_before


def test_refused_orders_keep_only_the_newest_answers_per_customer(
    make_app: Any, db_session: Any, stock: dict[str, Product]
) -> None:
    """Each refusal keeps its key's answer for replays, but a customer refused again and again keeps only the
    newest IDEMPOTENCY_REFUSALS_PER_USER of them: refused orders cannot grow the table without bound."""
    client = make_app(IDEMPOTENCY_REFUSALS_PER_USER=3).test_client()
    customer = AuthActions(client).headers("ann@example.com")
    body = order_body((stock["BOOK"], 1))  # none in stock
    for n in range(5):
        response = client.post("/api/v1/orders", json=body, headers=customer | {"Idempotency-Key": f"refused-{n}"})
        assert response.status_code == 409

    kept = db_session.execute(sa.text("SELECT key FROM idempotency_records ORDER BY id")).scalars().all()
    assert kept == ["refused-2", "refused-3", "refused-4"]
    replay = client.post("/api/v1/orders", json=body, headers=customer | {"Idempotency-Key": "refused-4"})
    assert replay.status_code == 409
    assert replay.headers["Idempotent-Replayed"] == "true"
