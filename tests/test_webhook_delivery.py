"""Delivering events to webhook endpoints: signed, retried when a retry can help, in order per order, at least once
through a worker killed again and again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from shop.extensions import db
from shop.webhooks import verify
from shop.webhooks.worker import Settings, run_round, serve
from tests.conftest import AuthActions
from tests.helpers import Receiver, make_products, notify, one_line_order, tokens

pytestmark = pytest.mark.commits
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def shop(committing_app: Flask) -> dict[str, Any]:
    auth = AuthActions(committing_app.test_client())
    return {
        "ids": make_products(committing_app, {"LAMP": 1000}),
        "ann": auth.headers("ann@example.com"),
        "staff": auth.headers("staff@example.com", "staff"),
        "client": committing_app.test_client(),
    }


def register(shop: dict[str, Any], url: str, *types: str) -> dict[str, Any]:
    made = shop["client"].post("/api/v1/webhooks", json={"url": url, "event_types": list(types)}, headers=shop["staff"])
    assert made.status_code == 201, made.get_json()
    endpoint: dict[str, Any] = made.get_json()
    return endpoint


def rounds(app: Flask, times: int = 3) -> None:
    with app.app_context():
        settings = Settings.of(app)
        for _ in range(times):
            run_round(settings)


def deliveries(app: Flask) -> list[Any]:
    with app.app_context(), db.engine.connect() as connection:
        return list(connection.execute(
            sa.text("SELECT id, status, attempts, last_status_code, next_attempt_at - now() AS wait"
                    " FROM webhook_deliveries ORDER BY event_position, endpoint_id")
        ))  # fmt: skip


def due_now(app: Flask) -> None:
    """As if the retry delay had passed."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'"))


def test_an_order_is_delivered_once_signed_with_its_event_and_delivery_ids(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    with Receiver() as receiver:
        endpoint = register(shop, receiver.url, "order.placed")
        order = shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        rounds(committing_app)

    [(headers, body)] = receiver.requests
    feed = shop["client"].get("/api/v1/events", headers=shop["staff"]).get_json()["items"]
    assert receiver.events() == feed  # the event exactly as the feed has it
    assert receiver.events()[0]["data"] == order.get_json()
    assert headers["Shop-Event-Id"] == feed[0]["id"]
    assert verify(headers["Shop-Signature"], body, [endpoint["secret"]]) > 0
    [delivery] = deliveries(committing_app)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert headers["Shop-Delivery-Id"] == str(delivery.id)


def test_a_500_is_retried_later_with_the_same_ids_and_a_400_is_not(committing_app: Flask, shop: dict[str, Any]) -> None:
    with Receiver(answers=[500, 200]) as flaky, Receiver(answers=[400]) as strict:
        register(shop, flaky.url, "order.placed")
        register(shop, strict.url, "order.placed")
        shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        rounds(committing_app)
        first = {row.last_status_code: row for row in deliveries(committing_app)}
        due_now(committing_app)
        rounds(committing_app)

    assert first[500].status == "pending"
    assert first[500].wait.total_seconds() >= 5  # WEBHOOK_RETRY_BASE_SECONDS (10) halved at most by the jitter
    assert first[400].status == "dead"
    assert [row.status for row in deliveries(committing_app)] == ["delivered", "dead"]
    assert [h["Shop-Event-Id"] for h, _ in flaky.requests] == [flaky.requests[0][0]["Shop-Event-Id"]] * 2
    assert len({h["Shop-Delivery-Id"] for h, _ in flaky.requests}) == 1
    assert len(strict.requests) == 1


def test_one_orders_events_reach_an_endpoint_in_sequence_order(committing_app: Flask, shop: dict[str, Any]) -> None:
    with Receiver(answers=[503]) as receiver:
        register(shop, receiver.url, "order.placed", "order.paid", "order.cancelled")
        order = shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        path = f"/api/v1/orders/{order.get_json()['id']}"
        assert notify(shop["client"], order.get_json()).status_code == 200
        shop["client"].post(f"{path}/cancel", json={}, headers=shop["ann"])
        rounds(committing_app)  # order.placed fails: the two after it wait for it
        assert [(e["type"], e["sequence"]) for e in receiver.events()] == [("order.placed", 1)]
        due_now(committing_app)
        rounds(committing_app, times=4)

    assert [(e["type"], e["sequence"]) for e in receiver.events()] == [
        ("order.placed", 1),
        ("order.placed", 1),
        ("order.paid", 3),  # after payment.captured (2), which this endpoint does not take
        ("order.cancelled", 4),
    ]


def test_an_endpoint_that_fails_too_long_is_turned_off_with_the_reason(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    with Receiver(answers=[500, 500]) as receiver:
        endpoint = register(shop, receiver.url, "order.placed")
        shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        with committing_app.app_context():
            settings = Settings.of(committing_app)
            run_round(settings)
            run_round(settings)
            with db.engine.begin() as connection:  # as if it had failed for three days
                connection.execute(sa.text("UPDATE webhook_endpoints SET failing_since = now() - interval '73 hours'"))
            due_now(committing_app)
            run_round(settings)

    shown = shop["client"].get(f"/api/v1/webhooks/{endpoint['id']}", headers=shop["staff"]).get_json()
    assert shown["is_active"] is False
    assert shown["disabled_reason"].startswith("no delivery succeeded since")


def test_a_url_that_now_reaches_inside_is_not_sent_to(
    committing_app: Flask, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver() as receiver:
        register(shop, receiver.url, "order.placed")
        shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        monkeypatch.setitem(committing_app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)  # production's rule
        rounds(committing_app)

    assert receiver.requests == []
    assert [row.status for row in deliveries(committing_app)] == ["dead"]


EVENTS = 600 + 2400
# 800 more orders' events, in 800 transactions of their own (as placements and transitions would write them), their
# sequences committed in order
OUTBOX_WRITES = sa.text(
    """
    DO $$
    BEGIN
      FOR step IN 1..3 LOOP
        FOR n IN 1..800 LOOP
          INSERT INTO events (type, resource_type, resource_id, sequence, data)
          VALUES ((ARRAY['order.placed', 'order.paid', 'order.shipped'])[step], 'order', 90000000 + n, step, '{}');
          COMMIT;
        END LOOP;
      END LOOP;
    END $$
    """
)


def test_every_event_arrives_through_a_worker_killed_again_and_again(
    committing_app: Flask, server_environ: dict[str, str], unpaid_unlimited: None
) -> None:
    """SIGKILL the worker process while it delivers; restart it. Every event of a few thousand arrives at least once,
    a duplicate carries the same Shop-Event-Id, and each order's events arrive in sequence order. 600 come from real
    orders and payments; 2,400 more, three for each of 800 orders (placed, paid, shipped), are written straight into
    the outbox, as the app would, so that the test does not spend a minute placing orders."""
    ids = make_products(committing_app, {"A": 100_000})
    buyers = tokens(committing_app, 4)
    staff = AuthActions(committing_app.test_client()).headers("staff@example.com", "staff")
    client = committing_app.test_client()
    with Receiver(delay_seconds=0.02) as receiver:
        made = client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url, "event_types": ["order.placed", "order.paid", "order.shipped"]},
            headers=staff,
        )
        assert made.status_code == 201
        for n in range(400):
            order = client.post("/api/v1/orders", json=one_line_order(ids["A"]), headers=buyers[n % 4]).get_json()
            if n % 2 == 0:
                assert notify(client, order).status_code == 200
        with committing_app.app_context(), db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(OUTBOX_WRITES)
        environ = server_environ | {"WEBHOOK_RETRY_BASE_SECONDS": "0.2", "WEBHOOK_TIMEOUT_SECONDS": "2"}
        command = [sys.executable, "-m", "flask", "--app", "shop", "events", "deliver"]
        kills, killed_while_sending = 0, 0
        for life in range(8):  # seven lives cut short while they deliver, then one to the end
            worker = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environ, stdout=subprocess.DEVNULL)
            if life < 7:
                before, started = len(receiver.requests), time.monotonic()
                # kill it once it is delivering (a few requests in, a random moment of a batch), or after 20 s
                wanted = before + random.randint(5, 40)
                while len(receiver.requests) < wanted and time.monotonic() - started < 20:
                    time.sleep(0.005)
                killed_while_sending += len(receiver.requests) >= wanted
                os.kill(worker.pid, signal.SIGKILL)
                kills += 1
            else:
                deadline = time.monotonic() + 60
                while not _all_delivered(committing_app) and time.monotonic() < deadline:
                    time.sleep(0.2)
                os.kill(worker.pid, signal.SIGTERM)
                assert worker.wait(timeout=30) == 0  # SIGTERM: it finishes its round and exits cleanly
            worker.wait(timeout=30)
        received = receiver.events()

    with committing_app.app_context(), db.engine.connect() as connection:
        written = {str(i) for i in connection.scalars(sa.text("SELECT id FROM events WHERE type LIKE 'order.%'"))}
    assert kills == 7
    assert killed_while_sending == 7, "a life ended before it delivered anything"
    assert len(written) == EVENTS
    assert {event["id"] for event in received} == written  # every event, at least once
    by_id: dict[str, set[str]] = defaultdict(set)
    for event in received:
        by_id[event["id"]].add(repr(sorted(event.items())))
    assert all(len(copies) == 1 for copies in by_id.values())  # a duplicate is the same event, with the same id
    per_order: dict[int, list[int]] = defaultdict(list)
    for event in received:
        per_order[event["resource"]["id"]].append(event["sequence"])
    assert all(_in_order(sequences) for sequences in per_order.values())


def _in_order(sequences: list[int]) -> bool:
    """Each sequence's first arrival comes after every earlier sequence's first arrival (repeats allowed)."""
    firsts = list(dict.fromkeys(sequences))
    return firsts == sorted(firsts)


def _all_delivered(app: Flask) -> bool:
    with app.app_context(), db.engine.connect() as connection:
        return (
            connection.scalar(
                sa.text("SELECT count(*) = :n AND bool_and(status = 'delivered') FROM webhook_deliveries"),
                {"n": EVENTS},
            )
            is True
        )


def test_staff_see_deliveries_with_their_attempts_and_bring_a_dead_one_back(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    with Receiver(answers=[410]) as receiver:
        endpoint = register(shop, receiver.url, "order.placed")
        shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        rounds(committing_app)
        path = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
        dead = shop["client"].get(f"{path}?status=dead", headers=shop["staff"]).get_json()
        [delivery] = dead["items"]
        again = shop["client"].post(f"{path}/{delivery['id']}/redeliver", headers=shop["staff"])
        rounds(committing_app)
        after = shop["client"].get(path, headers=shop["staff"]).get_json()["items"]

    assert dead["total"] == 1
    assert [a["status_code"] for a in delivery["attempts"]] == [410]
    assert again.status_code == 200
    assert again.get_json()["status"] == "pending"
    assert [(d["status"], [a["status_code"] for a in d["attempts"]]) for d in after] == [("delivered", [410, 200])]
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/webhooks/999999/deliveries", 404),
        ("/api/v1/webhooks/{id}/deliveries?status=lost", 422),
        ("/api/v1/webhooks/{id}/deliveries?per_page=1000", 422),
    ],
)
def test_delivery_lists_refuse_bad_requests(shop: dict[str, Any], path: str, status: int) -> None:
    endpoint = register(shop, "http://127.0.0.1:9/hooks", "order.placed")

    assert shop["client"].get(path.format(id=endpoint["id"]), headers=shop["staff"]).status_code == status


def test_redelivering_what_is_not_there_is_a_404(shop: dict[str, Any]) -> None:
    endpoint = register(shop, "http://127.0.0.1:9/hooks", "order.placed")
    other = register(shop, "http://127.0.0.1:9/other", "order.placed")

    assert (
        shop["client"]
        .post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{uuid.uuid4()}/redeliver", headers=shop["staff"])
        .status_code
        == 404
    )
    assert (
        shop["client"]
        .post(f"/api/v1/webhooks/{other['id']}/deliveries/abc/redeliver", headers=shop["staff"])
        .status_code
        == 422
    )


def metric(text: str, line_start: str) -> float:
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_metrics_show_what_waits_what_died_and_how_attempts_went(committing_app: Flask, shop: dict[str, Any]) -> None:
    # one order after another (rounds() sends without threads): the 503 last, since it puts off what follows it
    with Receiver(answers=[200, 404, 503]) as receiver:
        register(shop, receiver.url, "order.placed")
        for _ in range(3):
            shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        rounds(committing_app, times=1)
        text = shop["client"].get("/metrics").get_data(as_text=True)

    assert metric(text, 'shop_webhook_deliveries{status="pending"}') == 1  # the 503, to be tried again
    assert metric(text, 'shop_webhook_deliveries{status="dead"}') == 1  # the 404
    assert metric(text, 'shop_webhook_attempts_last_5m{result="delivered"}') == 1
    assert metric(text, 'shop_webhook_attempts_last_5m{result="retryable"}') == 1
    assert metric(text, 'shop_webhook_attempts_last_5m{result="refused"}') == 1
    assert metric(text, "shop_webhook_oldest_pending_seconds") >= 0
    assert metric(text, "shop_webhook_events_unread") == 0


def test_the_worker_goes_on_after_its_database_connections_are_killed(
    committing_app: Flask, shop: dict[str, Any], make_app: Any, unpaid_unlimited: None
) -> None:
    """Every connection of a running worker (its pool and its LISTEN) killed at once: it carries on delivering."""
    name = "shop-deliver-faults"
    options = dict(committing_app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    options["connect_args"] = dict(options["connect_args"], application_name=name)
    worker_app = make_app(SQLALCHEMY_ENGINE_OPTIONS=options, DB_PING_AFTER_IDLE_SECONDS=60.0)
    stop = threading.Event()
    with Receiver() as receiver:
        register(shop, receiver.url, "order.placed")
        worker = threading.Thread(target=serve, args=(worker_app, stop, 0.2))
        worker.start()
        try:
            place(shop, 5)
            _wait_for(lambda: len(receiver.requests) >= 5)
            _wait_for(lambda: _listening(committing_app, name))  # idle again: it waits on its LISTEN connection
            with committing_app.app_context(), db.engine.begin() as connection:
                killed = connection.scalar(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :n"
                    ),
                    {"n": name},
                )
            place(shop, 5)
            _wait_for(lambda: len(receiver.requests) >= 10)
        finally:
            stop.set()
            worker.join(timeout=30)

    assert killed >= 2  # at least a pooled connection and the LISTEN one
    assert not worker.is_alive()
    assert len({event["id"] for event in receiver.events()}) == 10


def _listening(app: Flask, application_name: str) -> bool:
    with app.app_context(), db.engine.connect() as connection:
        return bool(
            connection.scalar(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n AND query LIKE 'LISTEN%'"),
                {"n": application_name},
            )
        )


def place(shop: dict[str, Any], count: int) -> None:
    for _ in range(count):
        response = shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        assert response.status_code == 201


def _wait_for(condition: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.05)


def attempts_made(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT count(*) FROM webhook_attempts")))


def test_an_endpoint_that_fails_is_tried_once_per_batch_and_then_gets_everything(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    """A retryable failure puts off the rest of the endpoint's batch (no attempt each), to be sent with the retries."""
    with Receiver(answers=[503]) as receiver:
        register(shop, receiver.url, "order.placed")
        place(shop, 5)
        rounds(committing_app, times=1)
        after_failure = (len(receiver.requests), attempts_made(committing_app), deliveries(committing_app))
        due_now(committing_app)
        rounds(committing_app)

    requests, attempts, rows = after_failure
    assert (requests, attempts) == (1, 1)
    assert [(row.status, row.attempts) for row in rows] == [("pending", 1)] + [("pending", 0)] * 4
    assert [row.status for row in deliveries(committing_app)] == ["delivered"] * 5
    assert len({event["id"] for event in receiver.events()}) == 5
    assert len(receiver.requests) == 6  # the failed one, then each once


def test_a_receiver_that_hangs_holds_a_round_for_one_timeout(
    committing_app: Flask, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch, unpaid_unlimited: None
) -> None:
    """An endpoint that accepts the connection and never answers (a paused process, say): the first send times out,
    and the batch's other sends are put off instead of each waiting out its own timeout."""
    monkeypatch.setitem(committing_app.config, "WEBHOOK_TIMEOUT_SECONDS", 0.5)
    with Receiver(delay_seconds=5) as receiver:
        register(shop, receiver.url, "order.placed")
        place(shop, 10)
        started = time.monotonic()
        with committing_app.app_context():
            run_round(Settings.of(committing_app))
        took = time.monotonic() - started

    assert took < 3
    assert attempts_made(committing_app) == 1
    assert [row.status for row in deliveries(committing_app)] == ["pending"] * 10


def test_two_workers_at_once_send_each_event_once_and_in_order(committing_app: Flask, shop: dict[str, Any]) -> None:
    """Two workers on a backlog for two endpoints: neither sends what the other sent, nothing is left behind."""
    stop = threading.Event()
    with Receiver() as first, Receiver() as second:
        register(shop, first.url, "order.placed", "order.paid")
        register(shop, second.url, "order.placed", "order.paid")
        for _ in range(60):
            order = shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
            assert notify(shop["client"], order.get_json()).status_code == 200
        workers = [threading.Thread(target=serve, args=(committing_app, stop, 0.1)) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            _wait_for(lambda: len(first.requests) >= 120 and len(second.requests) >= 120)
            time.sleep(0.5)  # time for a duplicate to show
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)

    for receiver in (first, second):
        assert len(receiver.requests) == 120
        assert len({headers["Shop-Delivery-Id"] for headers, _ in receiver.requests}) == 120
        per_order: dict[int, list[int]] = defaultdict(list)
        for event in receiver.events():
            per_order[event["resource"]["id"]].append(event["sequence"])
        assert all(sequences == [1, 3] for sequences in per_order.values())  # placed, paid (2: payment.captured)


def test_an_endpoint_turned_back_on_is_sent_what_happens_from_then_on(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    with Receiver() as receiver:
        endpoint = register(shop, receiver.url, "order.placed")
        path = f"/api/v1/webhooks/{endpoint['id']}"
        assert shop["client"].patch(path, json={"is_active": False}, headers=shop["staff"]).status_code == 200
        while_off = shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        rounds(committing_app)
        assert shop["client"].patch(path, json={"is_active": True}, headers=shop["staff"]).status_code == 200
        back_on = shop["client"].post("/api/v1/orders", json=one_line_order(shop["ids"]["LAMP"]), headers=shop["ann"])
        rounds(committing_app)

    feed = shop["client"].get("/api/v1/events", headers=shop["staff"]).get_json()["items"]
    assert [event["data"]["id"] for event in feed] == [while_off.get_json()["id"], back_on.get_json()["id"]]
    assert [event["data"]["id"] for event in receiver.events()] == [back_on.get_json()["id"]]


def test_a_killed_workers_endpoint_is_taken_over_at_once(
    committing_app: Flask, shop: dict[str, Any], server_environ: dict[str, str]
) -> None:
    """The lease names the worker's database connection: when the worker dies, so does the connection, and the
    next worker need not wait for the lease to run out."""
    with Receiver(delay_seconds=2) as receiver:
        register(shop, receiver.url, "order.placed")
        place(shop, 3)
        command = [sys.executable, "-m", "flask", "--app", "shop", "events", "deliver"]
        worker = subprocess.Popen(command, cwd=PROJECT_ROOT, env=server_environ, stdout=subprocess.DEVNULL)
        try:
            _wait_for(lambda: _lease(committing_app) is not None)
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        holder = _lease(committing_app)
        assert holder is not None
        _wait_for(lambda: not _alive(committing_app, holder[0]))
        with committing_app.app_context():
            taken = run_round(Settings.of(committing_app))

    assert holder[1] > 5  # the dead worker's lease had seconds to run
    assert taken.work == 3  # yet the next round took the endpoint, and sent its three events
    assert len({event["id"] for event in receiver.events()}) == 3


def _lease(app: Flask) -> tuple[int, float] | None:
    """The leaseholder's server process and the seconds left on its lease, while the endpoint is leased."""
    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT leased_by, extract(epoch FROM leased_until - now()) FROM webhook_cursors"
                    " WHERE leased_until > now()")
        ).one_or_none()  # fmt: skip
    return (int(row[0]), float(row[1])) if row is not None else None


def _alive(app: Flask, pid: int) -> bool:
    with app.app_context(), db.engine.connect() as connection:
        return bool(connection.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}))


def test_the_wait_between_tries_grows(committing_app: Flask, shop: dict[str, Any]) -> None:
    waits = []
    with Receiver(answers=[500, 500, 500, 500]) as receiver:
        register(shop, receiver.url, "order.placed")
        place(shop, 1)
        for _ in range(4):
            rounds(committing_app, times=1)
            [row] = deliveries(committing_app)
            waits.append(row.wait.total_seconds())
            due_now(committing_app)

    assert len(receiver.requests) == 4
    # WEBHOOK_RETRY_BASE_SECONDS 10, doubling: each wait within (ceiling / 2, ceiling] of 10, 20, 40, 80 s
    for wait, ceiling in zip(waits, [10, 20, 40, 80], strict=True):
        assert ceiling / 2 - 1 <= wait <= ceiling


PRICE_EVENT = sa.text(
    "INSERT INTO events (type, resource_type, resource_id, sequence, data)"
    " VALUES ('product.price_changed', 'product', :product, :sequence, '{}')"
)


def test_a_resources_events_arrive_in_sequence_order_when_the_feed_has_them_the_other_way(
    committing_app: Flask, shop: dict[str, Any]
) -> None:
    """Transactions get their ids before they lock: the one holding a product's later event can have the lower id,
    and the feed (in transaction order) release it first. The worker holds it back until the earlier one is sent."""
    product = shop["ids"]["LAMP"]
    with Receiver() as receiver, committing_app.app_context():
        register(shop, receiver.url, "product.price_changed")
        later, middle, earlier = (db.engine.connect() for _ in range(3))
        for connection in (later, middle, earlier):  # ids in this order: later < middle < earlier
            connection.execute(sa.text("SELECT pg_current_xact_id()"))
        earlier.execute(PRICE_EVENT, {"product": product, "sequence": 1})
        earlier.commit()  # committed first, as the holder of the product's lock would
        later.execute(PRICE_EVENT, {"product": product, "sequence": 2})
        later.commit()
        rounds(committing_app)  # `middle` still runs: sequence 2 is released, sequence 1 not yet
        while_held = [event["sequence"] for event in receiver.events()]
        middle.rollback()
        rounds(committing_app)
        for connection in (later, middle, earlier):
            connection.close()

    assert while_held == []
    assert [event["sequence"] for event in receiver.events()] == [1, 2]
    assert [row.status for row in deliveries(committing_app)] == ["delivered", "delivered"]
