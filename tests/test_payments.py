"""Payments are confirmed, not claimed: a provider's signed notification or staff's record makes an order paid; a
customer's request never does; a forged, tampered or replayed notification is refused; copies make one capture."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.security.provider_signatures import SIGNATURE_HEADER, sign
from tests.conftest import TEST_PROVIDER, TEST_PROVIDER_SECRET, AuthActions
from tests.helpers import make_products, notify, one_line_order, order_step, run_together

pytestmark = pytest.mark.commits


@pytest.fixture
def shop(committing_app: Flask) -> dict[str, Any]:
    auth = AuthActions(committing_app.test_client())
    ids = make_products(committing_app, {"LAMP": 100})
    client = committing_app.test_client()
    ann = auth.headers("ann@example.com")
    order = client.post("/api/v1/orders", json=one_line_order(ids["LAMP"], 2), headers=ann).get_json()
    return {"ids": ids, "ann": ann, "staff": auth.headers("staff@example.com", "staff"), "client": client,
            "order": order}  # fmt: skip


def money(app: Flask, order_id: int) -> tuple[str, int, int, int]:
    """The order's status, its ledger entries, its notifications, and its events after order.placed."""
    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT o.status, (SELECT count(*) FROM ledger_entries WHERE order_id = o.id),"
                " (SELECT count(*) FROM payment_notifications WHERE order_id = o.id),"
                " (SELECT count(*) FROM events WHERE resource_type = 'order' AND resource_id = o.id AND sequence > 1)"
                " FROM orders o WHERE o.id = :id"
            ),
            {"id": order_id},
        ).one()
    return row[0], row[1], row[2], row[3]


def test_nothing_a_customer_sends_makes_their_order_paid(shop: dict[str, Any], committing_app: Flask) -> None:
    client, order, ann = shop["client"], shop["order"], shop["ann"]
    path = f"/api/v1/orders/{order['id']}"
    answers = [
        client.post(f"{path}/pay", json={"payment_reference": "i-promise"}, headers=ann),
        client.post(f"{path}/payments", json={"reference": "i-promise"}, headers=ann),
        client.post("/api/v1/payments/notifications", json={"provider": TEST_PROVIDER}, headers=ann),
    ]

    assert [a.status_code for a in answers] == [410, 403, 401]
    assert answers[0].get_json()["type"] == "/problems/payments-are-confirmed"
    assert money(committing_app, order["id"]) == ("pending", 0, 0, 0)


def test_a_capture_makes_the_order_paid_with_its_ledger_entry_events_and_history(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    answer = notify(shop["client"], shop["order"], reference="ch_1")

    assert answer.status_code == 200
    assert answer.get_json()["status"] == "processed"
    assert answer.get_json()["notification"]["outcome"] == "applied"
    assert money(committing_app, shop["order"]["id"]) == ("paid", 1, 1, 2)
    payments = shop["client"].get(f"/api/v1/orders/{shop['order']['id']}/payments", headers=shop["staff"]).get_json()
    assert [(e["kind"], e["amount"], e["provider"], e["reference"]) for e in payments["ledger"]] == [
        ("capture", shop["order"]["total"], TEST_PROVIDER, "ch_1")
    ]
    history = shop["client"].get(f"/api/v1/orders/{shop['order']['id']}", headers=shop["staff"]).get_json()["history"]
    assert [h["event"] for h in history] == ["order.placed", "payment.captured", "order.paid"]


def signed(body: dict[str, Any], *, secret: str = TEST_PROVIDER_SECRET, at: int | None = None) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    return {"data": raw, "headers": {"Content-Type": "application/json",
                                     SIGNATURE_HEADER: sign(secret, raw, at or int(time.time()))}}  # fmt: skip


def test_forged_tampered_replayed_and_unsigned_notifications_are_refused(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    order = shop["order"]
    body = {"provider": TEST_PROVIDER, "reference": "ch_x", "kind": "captured", "order_id": order["id"],
            "amount": order["total"], "currency": order["currency"]}  # fmt: skip
    good = signed(body)
    tampered = dict(good, data=good["data"].replace(b'"ch_x"', b'"ch_y"'))
    url = "/api/v1/payments/notifications"
    client = shop["client"]
    answers = {
        "forged": client.post(url, **signed(body, secret="not-the-secret")),
        "tampered": client.post(url, **tampered),
        "replayed": client.post(url, **signed(body, at=int(time.time()) - 301)),  # the tolerance is 300 s
        "from the future": client.post(url, **signed(body, at=int(time.time()) + 301)),
        "unsigned": client.post(url, data=good["data"], headers={"Content-Type": "application/json"}),
        "garbled": client.post(url, data=good["data"], headers={**good["headers"], SIGNATURE_HEADER: "v1=abc"}),
        "unknown provider": client.post(url, **signed(body | {"provider": "elsewhere"})),
    }

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 401)
    assert all(a.get_json()["type"] == "/problems/bad-signature" for a in answers.values())
    assert "WWW-Authenticate" not in answers["forged"].headers
    assert money(committing_app, order["id"]) == ("pending", 0, 0, 0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "settled"}, "kind"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": 12}, "amount"),
        ({"currency": "usd"}, "currency"),
        ({"order_id": "1"}, "order_id"),
        ({"reference": ""}, "reference"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_signed_notification_with_bad_fields_is_a_422_that_changes_nothing(
    shop: dict[str, Any], committing_app: Flask, change: dict[str, Any], field: str
) -> None:
    order = shop["order"]
    body = {"provider": TEST_PROVIDER, "reference": "ch_1", "kind": "captured", "order_id": order["id"],
            "amount": order["total"], "currency": order["currency"]} | change  # fmt: skip

    answer = shop["client"].post("/api/v1/payments/notifications", **signed(body))

    assert answer.status_code == 422
    assert field in answer.get_json()["errors"]
    assert money(committing_app, order["id"]) == ("pending", 0, 0, 0)


def test_twenty_concurrent_copies_of_one_notification_make_one_capture(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    def send(n: int) -> str:
        answer = notify(committing_app.test_client(), shop["order"], reference="ch_twenty")
        assert answer.status_code == 200, answer.get_json()
        return str(answer.get_json()["status"])

    statuses = Counter(run_together(20, send))

    assert statuses == {"processed": 1, "already processed": 19}
    assert money(committing_app, shop["order"]["id"]) == ("paid", 1, 1, 2)


@pytest.mark.parametrize(
    ("change", "flag"),
    [({"amount": "0.01"}, "amount_mismatch"), ({"currency": "EUR"}, "currency_mismatch")],
)
def test_a_notification_that_does_not_fit_the_order_is_flagged_and_leaves_it_unpaid(
    shop: dict[str, Any], committing_app: Flask, change: dict[str, str], flag: str
) -> None:
    answer = notify(shop["client"], shop["order"], amount=change.get("amount"), currency=change.get("currency"))

    assert answer.status_code == 200
    assert (answer.get_json()["notification"]["outcome"], answer.get_json()["notification"]["flag"]) == (
        "flagged", flag,
    )  # fmt: skip
    assert money(committing_app, shop["order"]["id"]) == ("pending", 0, 1, 0)
    flagged = shop["client"].get("/api/v1/payments/flagged", headers=shop["staff"]).get_json()
    assert [(n["order_id"], n["flag"]) for n in flagged["items"]] == [(shop["order"]["id"], flag)]
    assert shop["client"].get("/api/v1/payments/flagged", headers=shop["ann"]).status_code == 403


def test_a_capture_after_the_order_was_cancelled_is_kept_in_the_ledger_and_flagged(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    assert order_step(shop["client"], shop["order"]["id"], "cancel", shop["ann"]).status_code == 200

    answer = notify(shop["client"], shop["order"], reference="ch_late")

    assert answer.get_json()["notification"]["flag"] == "order_not_pending"
    assert money(committing_app, shop["order"]["id"]) == ("cancelled", 1, 1, 1)  # the capture is not lost


def test_a_failed_payment_is_recorded_with_its_event_and_the_order_can_still_be_paid(
    shop: dict[str, Any], committing_app: Flask
) -> None:
    failed = notify(shop["client"], shop["order"], "failed", reference="ch_declined")
    authorized = notify(shop["client"], shop["order"], "authorized", reference="ch_ok")
    captured = notify(shop["client"], shop["order"], "captured", reference="ch_ok")

    assert [a.get_json()["notification"]["outcome"] for a in (failed, authorized, captured)] == [
        "recorded", "recorded", "applied",
    ]  # fmt: skip
    with committing_app.app_context(), db.engine.connect() as connection:
        types = connection.scalars(
            sa.text("SELECT type FROM events WHERE resource_type = 'order' AND resource_id = :id ORDER BY sequence"),
            {"id": shop["order"]["id"]},
        ).all()
    assert types == ["order.placed", "payment.failed", "payment.captured", "order.paid"]


def test_an_unknown_order_is_flagged(shop: dict[str, Any]) -> None:
    answer = notify(shop["client"], shop["order"] | {"id": 987654321})

    assert answer.get_json()["notification"]["flag"] == "unknown_order"


def test_staff_record_a_payment_by_hand_once(shop: dict[str, Any], committing_app: Flask) -> None:
    path = f"/api/v1/orders/{shop['order']['id']}/payments"
    client, staff = shop["client"], shop["staff"]

    wrong = client.post(path, json={"reference": "cash-1", "amount": "0.01"}, headers=staff)
    empty = client.post(path, json={}, headers=staff)
    paid = client.post(path, json={"reference": "cash-1", "amount": shop["order"]["total"]}, headers=staff)
    again = client.post(path, json={"reference": "cash-2"}, headers=staff)
    missing = client.post("/api/v1/orders/987654321/payments", json={"reference": "x"}, headers=staff)

    assert [a.status_code for a in (wrong, empty, paid, again, missing)] == [422, 422, 200, 409, 404]
    assert wrong.get_json()["type"] == "/problems/payment-amount-mismatch"
    assert paid.get_json()["history"][-1]["by"] is not None
    ledger = client.get(path, headers=staff).get_json()["ledger"]
    assert [(e["kind"], e["reference"], e["recorded_by"] is not None) for e in ledger] == [("payment", "cash-1", True)]
    assert money(committing_app, shop["order"]["id"]) == ("paid", 1, 0, 2)


def test_the_ledger_cannot_be_changed_or_deleted(shop: dict[str, Any], committing_app: Flask) -> None:
    notify(shop["client"], shop["order"])
    with committing_app.app_context(), db.engine.connect() as connection:
        for statement in ("UPDATE ledger_entries SET amount = 1", "DELETE FROM ledger_entries"):
            with pytest.raises(sa.exc.DBAPIError, match="never changed or deleted"):
                connection.execute(sa.text(statement))
            connection.rollback()


def test_flagged_notifications_and_pending_refunds_are_on_metrics(shop: dict[str, Any]) -> None:
    notify(shop["client"], shop["order"], amount="0.01", reference="ch_short")
    notify(shop["client"], shop["order"], reference="ch_ok")
    refund = shop["client"].post(
        f"/api/v1/orders/{shop['order']['id']}/refunds", json={"amount": "1.00", "reason": "x"},
        headers=shop["staff"] | {"Idempotency-Key": "m1"},
    )  # fmt: skip
    assert refund.get_json()["status"] == "pending"

    text = shop["client"].get("/metrics").get_data(as_text=True)

    def metric(line_start: str) -> float:
        return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))

    assert metric('shop_payment_notifications_flagged_last_24h{flag="amount_mismatch"}') == 1
    assert metric('shop_payment_notifications_flagged_last_24h{flag="unknown_order"}') == 0
    assert metric("shop_refunds_pending ") == 1
    assert metric("shop_refunds_oldest_pending_seconds") >= 0
