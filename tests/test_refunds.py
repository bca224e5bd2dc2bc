"""Refunds: by lines and/or an amount, never more than was paid less what was refunded, once per Idempotency-Key,
even when fifty arrive at once; a refund of a provider's capture waits for that provider's `refunded` notification."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from tests.conftest import AuthActions
from tests.helpers import ADDRESS, make_products, notify, order_step, run_together, stock_invariant_holds

pytestmark = pytest.mark.commits


@pytest.fixture
def shop(committing_app: Flask) -> dict[str, Any]:
    """An order of 2 LAMP and 1 MUG (2.50 each: 7.50), paid by hand."""
    auth = AuthActions(committing_app.test_client())
    ids = make_products(committing_app, {"LAMP": 10, "MUG": 10})
    client = committing_app.test_client()
    ann, staff = auth.headers("ann@example.com"), auth.headers("staff@example.com", "staff")
    lines = [{"product_id": ids["LAMP"], "quantity": 2}, {"product_id": ids["MUG"], "quantity": 1}]
    body = {"items": lines, "shipping_address": ADDRESS}
    order = client.post("/api/v1/orders", json=body, headers=ann).get_json()
    return {"ids": ids, "ann": ann, "staff": staff, "client": client, "order": order}


def refund(shop: dict[str, Any], body: dict[str, Any], key: str | None = "k1", client: Any = None) -> Any:
    headers = shop["staff"] | ({"Idempotency-Key": key} if key else {})
    return (client or shop["client"]).post(f"/api/v1/orders/{shop['order']['id']}/refunds", json=body, headers=headers)


def figures(app: Flask, order_id: int) -> tuple[int, int, str, int]:
    """Refunds, refund ledger entries, the refunded total, and refund events of the order."""
    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM refunds WHERE order_id = :id),"
                " (SELECT count(*) FROM ledger_entries WHERE order_id = :id AND kind = 'refund'),"
                " (SELECT coalesce(sum(amount), 0.00)::text FROM ledger_entries"
                "   WHERE order_id = :id AND kind = 'refund'),"
                " (SELECT count(*) FROM events WHERE resource_id = :id AND resource_type = 'order'"
                "   AND type LIKE 'refund.%')"
            ),
            {"id": order_id},
        ).one()
    return row[0], row[1], row[2], row[3]


def stock(app: Flask) -> dict[int, int]:
    with app.app_context(), db.engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT id, stock FROM products")).all())


def paid(shop: dict[str, Any]) -> None:
    assert order_step(shop["client"], shop["order"]["id"], "pay", shop["staff"]).status_code == 200


def test_a_refund_of_lines_paid_by_hand_is_paid_out_at_once_and_restocks_if_asked(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    paid(shop)
    lamp = shop["ids"]["LAMP"]
    before = stock(committing_app)

    answer = refund(shop, {"lines": [{"product_id": lamp, "quantity": 1}], "reason": "broken", "restock": True})

    assert answer.status_code == 201, answer.get_json()
    made = answer.get_json()
    assert (made["status"], made["amount"], made["reason"]) == ("succeeded", "2.50", "broken")
    assert made["lines"] == [{"product_id": lamp, "quantity": 1, "amount": "2.50", "restocked": 1}]
    assert answer.headers["Location"].endswith(f"/orders/{shop['order']['id']}/refunds")
    assert figures(committing_app, shop["order"]["id"]) == (1, 1, "2.50", 1)
    assert stock(committing_app)[lamp] == before[lamp] + 1
    listed = shop["client"].get(f"/api/v1/orders/{shop['order']['id']}/refunds", headers=shop["ann"]).get_json()
    assert [r["id"] for r in listed["items"]] == [made["id"]]
    history = shop["client"].get(f"/api/v1/orders/{shop['order']['id']}", headers=shop["staff"]).get_json()["history"]
    assert (history[-1]["event"], history[-1]["from"], history[-1]["to"]) == ("refund.created", "paid", "paid")
    stock_invariant_holds(committing_app, {lamp: 10, shop["ids"]["MUG"]: 10})


def test_lines_with_a_smaller_amount_share_it_to_the_cent(shop: dict[str, Any]) -> None:
    paid(shop)
    lines = [{"product_id": shop["ids"]["LAMP"], "quantity": 2}, {"product_id": shop["ids"]["MUG"], "quantity": 1}]

    made = refund(shop, {"lines": lines, "amount": "1.00", "reason": "partial"}).get_json()

    assert [line["amount"] for line in made["lines"]] == ["0.66", "0.34"]  # 5.00 and 2.50 of 7.50: 0.666.., rest
    assert made["amount"] == "1.00"


@pytest.mark.parametrize(
    ("body", "key", "status", "problem"),
    [
        ({"amount": "7.51", "reason": "too much"}, "k", 422, "over-refund"),
        ({"lines": [{"product_id": 999999, "quantity": 1}], "reason": "x"}, "k", 422, "validation-failed"),
        ({"lines": [{"product_id": "LAMP", "quantity": 3}], "reason": "x"}, "k", 422, "validation-failed"),
        (
            {"lines": [{"product_id": "LAMP", "quantity": 1}], "amount": "2.51", "reason": "x"},
            "k",
            422,
            "validation-failed",
        ),
        ({"reason": "nothing named"}, "k", 422, "validation-failed"),
        ({"amount": "0.00", "reason": "zero"}, "k", 422, "validation-failed"),
        ({"amount": "1.00"}, "k", 422, "validation-failed"),
        ({"amount": "1.00", "reason": "x", "restock": True}, "k", 422, "validation-failed"),
        ({"amount": "1.00", "reason": "x"}, None, 400, "idempotency-key-required"),
        ({"amount": "1.00", "reason": "x", "return_id": 99999}, "k", 422, "validation-failed"),
    ],
)
def test_a_refused_refund_is_a_clear_4xx_and_writes_nothing(
    shop: dict[str, Any], committing_app: Flask, body: dict[str, Any], key: str | None, status: int, problem: str
) -> None:
    paid(shop)
    for line in body.get("lines", []):
        if line["product_id"] == "LAMP":
            line["product_id"] = shop["ids"]["LAMP"]
    before = stock(committing_app)

    answer = refund(shop, body, key)

    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["type"] == f"/problems/{problem}"
    assert figures(committing_app, shop["order"]["id"]) == (0, 0, "0.00", 0)
    assert stock(committing_app) == before
    if key is not None:  # the key was not kept: the same key with a good request refunds
        assert refund(shop, {"amount": "1.00", "reason": "fine"}, key).status_code == 201


def test_who_and_when_refunds_are_refused(shop: dict[str, Any], committing_app: Flask) -> None:
    unpaid = refund(shop, {"amount": "1.00", "reason": "x"})
    by_customer = shop["client"].post(
        f"/api/v1/orders/{shop['order']['id']}/refunds", json={"amount": "1.00", "reason": "x"},
        headers=shop["ann"] | {"Idempotency-Key": "c"},
    )  # fmt: skip
    missing = shop["client"].post(
        "/api/v1/orders/987654321/refunds", json={"amount": "1.00", "reason": "x"},
        headers=shop["staff"] | {"Idempotency-Key": "m"},
    )  # fmt: skip

    assert (unpaid.status_code, unpaid.get_json()["type"]) == (409, "/problems/nothing-paid")
    assert by_customer.status_code == 403
    assert missing.status_code == 404
    assert figures(committing_app, shop["order"]["id"]) == (0, 0, "0.00", 0)


def test_fifty_identical_refunds_with_one_key_make_one(shop: dict[str, Any], committing_app: Flask) -> None:
    paid(shop)
    body = {"lines": [{"product_id": shop["ids"]["MUG"], "quantity": 1}], "reason": "dented", "restock": True}
    before = stock(committing_app)

    def send(n: int) -> tuple[int, bytes, str | None]:
        answer = refund(shop, body, "same-key", client=committing_app.test_client())
        return answer.status_code, answer.data, answer.headers.get("Idempotent-Replayed")

    answers = run_together(50, send)

    assert {status for status, _, _ in answers} == {201}
    assert len({data for _, data, _ in answers}) == 1
    assert Counter(replayed for _, _, replayed in answers) == {None: 1, "true": 49}
    assert figures(committing_app, shop["order"]["id"]) == (1, 1, "2.50", 1)
    assert stock(committing_app)[shop["ids"]["MUG"]] == before[shop["ids"]["MUG"]] + 1
    reused = refund(shop, body | {"reason": "other"}, "same-key")
    assert (reused.status_code, reused.get_json()["type"]) == (422, "/problems/idempotency-key-reused")


def test_fifty_refunds_with_different_keys_never_give_back_more_than_was_paid(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    paid(shop)  # 7.50

    def send(n: int) -> int:
        answer = refund(shop, {"amount": "0.70", "reason": f"r{n}"}, f"key-{n}", client=committing_app.test_client())
        return int(answer.status_code)

    statuses = Counter(run_together(50, send))

    assert statuses == {201: 10, 422: 40}  # 10 x 0.70 = 7.00; an eleventh would make 7.70
    assert figures(committing_app, shop["order"]["id"]) == (10, 10, "7.00", 10)


def test_a_refund_of_a_providers_capture_waits_for_its_refunded_notification(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    assert notify(shop["client"], shop["order"], reference="ch_1").get_json()["notification"]["outcome"] == "applied"

    made = refund(shop, {"amount": "3.00", "reason": "late"}).get_json()
    assert (made["status"], made["provider"]) == ("pending", "testpay")
    assert figures(committing_app, shop["order"]["id"]) == (1, 0, "0.00", 1)  # asked, not paid out yet
    over = refund(shop, {"amount": "4.51", "reason": "the pending one counts"}, "k2")
    assert over.status_code == 422

    stray = notify(shop["client"], shop["order"], "refunded", reference="re_stray", amount="1.00")
    settled = notify(shop["client"], shop["order"], "refunded", reference="re_1", amount="3.00", refund_id=made["id"])
    again = notify(shop["client"], shop["order"], "refunded", reference="re_1", amount="3.00", refund_id=made["id"])

    assert stray.get_json()["notification"]["flag"] == "no_matching_refund"
    assert settled.get_json()["notification"]["outcome"] == "applied"
    assert again.get_json()["status"] == "already processed"
    assert figures(committing_app, shop["order"]["id"]) == (1, 1, "3.00", 2)  # refund.created, refund.succeeded
    listed = shop["client"].get(f"/api/v1/orders/{shop['order']['id']}/refunds", headers=shop["staff"]).get_json()
    assert [(r["status"], r["provider_reference"]) for r in listed["items"]] == [("succeeded", "re_1")]


def test_a_paid_order_with_refunds_cannot_be_cancelled(shop: dict[str, Any], committing_app: Flask) -> None:
    paid(shop)
    assert refund(shop, {"amount": "1.00", "reason": "x"}).status_code == 201

    answer = order_step(shop["client"], shop["order"]["id"], "cancel", shop["staff"])

    assert (answer.status_code, answer.get_json()["type"]) == (409, "/problems/order-has-refunds")
    assert figures(committing_app, shop["order"]["id"])[2] == "1.00"


def test_a_refund_after_a_late_capture_is_money_back_not_revenue(shop: dict[str, Any], committing_app: Flask) -> None:
    assert order_step(shop["client"], shop["order"]["id"], "cancel", shop["ann"]).status_code == 200
    assert notify(shop["client"], shop["order"]).get_json()["notification"]["flag"] == "order_not_pending"

    restocked = refund(shop, {"lines": [{"product_id": shop["ids"]["MUG"], "quantity": 1}], "reason": "x",
                              "restock": True})  # fmt: skip
    money_back = refund(shop, {"amount": shop["order"]["total"], "reason": "captured after expiry"}, "k2")

    assert restocked.status_code == 422  # its units came back when it was cancelled
    assert money_back.status_code == 201
    made = money_back.get_json()
    assert made["status"] == "pending"  # the provider took it: the provider gives it back
    settled = notify(shop["client"], shop["order"], "refunded", reference="re_late", refund_id=made["id"])
    assert settled.get_json()["notification"]["outcome"] == "applied"
    with committing_app.app_context(), db.engine.connect() as connection:
        in_revenue = connection.scalar(sa.text("SELECT bool_or(in_revenue) FROM ledger_entries WHERE kind = 'refund'"))
    assert in_revenue is False
    assert Decimal(money_back.get_json()["amount"]) == Decimal(shop["order"]["total"])


def test_cancelling_a_paid_order_refunds_it_in_full_outside_the_revenue(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    paid(shop)

    cancelled = order_step(shop["client"], shop["order"]["id"], "cancel", shop["ann"], {"reason": "changed my mind"})

    assert cancelled.status_code == 200
    assert figures(committing_app, shop["order"]["id"]) == (1, 1, "7.50", 1)
    listed = shop["client"].get(f"/api/v1/orders/{shop['order']['id']}/refunds", headers=shop["ann"]).get_json()
    assert [(r["status"], r["amount"], r["reason"]) for r in listed["items"]] == [
        ("succeeded", "7.50", "order cancelled")
    ]
    with committing_app.app_context(), db.engine.connect() as connection:
        in_revenue = connection.scalar(sa.text("SELECT in_revenue FROM ledger_entries WHERE kind = 'refund'"))
        types = connection.scalars(
            sa.text("SELECT type FROM events WHERE resource_type = 'order' AND resource_id = :id ORDER BY sequence"),
            {"id": shop["order"]["id"]},
        ).all()
    assert in_revenue is False  # the order left the revenue with its cancel: its refund is not revenue's to lower
    assert types[-2:] == ["order.cancelled", "refund.created"]
    stock_invariant_holds(committing_app, {shop["ids"]["LAMP"]: 10, shop["ids"]["MUG"]: 10})


def test_cancelling_an_order_a_provider_was_paid_for_asks_the_provider_and_a_pending_one_gives_nothing_back(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    assert notify(shop["client"], shop["order"]).get_json()["notification"]["outcome"] == "applied"
    other = shop["client"].post(
        "/api/v1/orders", json={"items": [{"product_id": shop["ids"]["MUG"], "quantity": 1}],
                                "shipping_address": ADDRESS}, headers=shop["ann"],
    ).get_json()  # fmt: skip

    assert order_step(shop["client"], shop["order"]["id"], "cancel", shop["staff"]).status_code == 200
    assert order_step(shop["client"], other["id"], "cancel", shop["ann"]).status_code == 200

    assert figures(committing_app, shop["order"]["id"]) == (1, 0, "0.00", 1)  # asked of the provider, not paid out
    assert figures(committing_app, other["id"]) == (0, 0, "0.00", 0)
    refund_id = (
        shop["client"]
        .get(f"/api/v1/orders/{shop['order']['id']}/refunds", headers=shop["staff"])
        .get_json()["items"][0]["id"]
    )
    settled = notify(shop["client"], shop["order"], "refunded", reference="re_cancel", refund_id=refund_id)
    assert settled.get_json()["notification"]["outcome"] == "applied"
    assert figures(committing_app, shop["order"]["id"]) == (1, 1, "7.50", 2)
