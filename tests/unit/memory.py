"""An in-memory unit of work: the repositories of shop/repositories/protocols.py over dicts, no database.

It keeps what the use cases rely on and nothing more: ids handed out in order, the database clock (`now`),
the stock CHECK (NotEnoughStock), a unique email, and a transaction: what a unit of work changed is undone
unless it commits. The rules of ordering, the lifecycle and accounts can then be tested in milliseconds;
what only PostgreSQL can show (locks, concurrency, constraints) stays in the database tests beside this folder.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa

from shop.models import (
    ApiToken,
    Event,
    EventType,
    Order,
    OrderItem,
    OrderStatusChange,
    Product,
    ResourceType,
    Role,
    User,
)
from shop.repositories.placement import (
    ClaimedKey,
    KeyAnswer,
    KeyClaim,
    Locked,
    LockedProduct,
    NotEnoughStock,
    PlacedOrder,
    StockChanges,
    Unpaid,
)
from shop.security.principal import Principal


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in sa.inspect(type(row)).column_attrs}


@dataclass
class MemoryDatabase:
    """What would be in PostgreSQL. `now` is its clock; tests move it."""

    products: dict[int, Product] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    history: list[OrderStatusChange] = field(default_factory=list)
    users: dict[int, User] = field(default_factory=dict)
    tokens: dict[int, ApiToken] = field(default_factory=dict)
    keys: dict[tuple[int, str], ClaimedKey] = field(default_factory=dict)
    # users.unpaid_orders and unpaid_units, by customer
    unpaid: dict[int, tuple[int, int]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    commits: int = 0

    def next_id(self) -> int:
        return next(self.ids)

    def add_unpaid(self, customer_id: int, orders: int, units: int) -> tuple[int, int]:
        held_orders, held_units = self.unpaid.get(customer_id, (0, 0))
        self.unpaid[customer_id] = (held_orders + orders, held_units + units)
        return self.unpaid[customer_id]

    def add_product(self, sku: str, *, price: str = "10.00", stock: int = 5, **fields: Any) -> Product:
        values = {"name": sku.title(), "description": "", "category": "Home", "is_active": True} | fields
        product = Product(
            id=self.next_id(), sku=sku, price=Decimal(price), stock=stock, version=1, event_sequence=0,
            created_at=self.now, updated_at=self.now, **values,
        )  # fmt: skip
        self.products[product.id] = product
        return product

    def snapshot(self) -> dict[str, Any]:
        rows = [*self.products.values(), *self.orders.values(), *self.users.values(), *self.tokens.values()]
        rows += [item for order in self.orders.values() for item in order.items]
        return {
            "events": list(self.events),
            "containers": {
                name: dict(getattr(self, name)) for name in ("products", "orders", "users", "tokens", "keys", "unpaid")
            },
            "history": list(self.history),
            "rows": [(row, _columns(row)) for row in rows],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name, contents in snapshot["containers"].items():
            setattr(self, name, contents)
        self.history = snapshot["history"]
        self.events = snapshot["events"]
        for row, columns in snapshot["rows"]:
            for key, value in columns.items():
                setattr(row, key, value)


class MemoryProducts:
    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database

    def get(self, product_id: int) -> Product | None:
        return self.db.products.get(product_id)

    def get_by_sku(self, sku: str) -> Product | None:
        return next((p for p in self.db.products.values() if p.sku == sku), None)

    def lock_for_update(self, product_ids: Collection[int]) -> Sequence[Product]:
        return [self.db.products[i] for i in sorted(set(product_ids)) if i in self.db.products]

    def current(self, product_ids: Collection[int]) -> Sequence[Product]:
        return self.lock_for_update(product_ids)

    def add(self, product: Product) -> Product:
        product.id = product.id or self.db.next_id()
        self.db.products[product.id] = product
        return product

    def add_all(self, products: Sequence[Product]) -> None:
        for product in products:
            self.add(product)

    def save(self) -> None:
        for product in self.db.products.values():
            if product.stock < 0:
                raise NotEnoughStock

    def count(self) -> int:
        return len(self.db.products)


class MemoryOrders:
    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        return self.db.orders.get(order_id)

    def owner_of(self, order_id: int) -> int | None:
        order = self.db.orders.get(order_id)
        return order.user_id if order is not None else None

    def lock_customer_of(self, order_id: int) -> None:
        return None  # one thread, no one to wait for

    def save_transition(self, order: Order, change: OrderStatusChange, *, stamped: str) -> None:
        setattr(order, stamped, self.db.now)
        order.updated_at = self.db.now
        change.id, change.changed_at = self.db.next_id(), self.db.now
        self.db.history.append(change)

    def recount(self, order: Order, *, counted: bool) -> None:
        for item in order.items:
            item.counted = counted

    def release_unpaid(self, order: Order) -> None:
        self.db.add_unpaid(order.user_id, -1, -order.units)

    def add_change(self, change: OrderStatusChange) -> None:
        change.id, change.changed_at = self.db.next_id(), self.db.now
        self.db.history.append(change)

    def has_refunds(self, order_id: int) -> bool:
        return False  # refunds are PostgreSQL's alone (tests/test_refunds.py)

    def read_back(self, order: Order, attributes: list[str]) -> None:
        return None  # set in place already

    def history(self, order_id: int) -> list[OrderStatusChange]:
        return [change for change in self.db.history if change.order_id == order_id]


class MemoryPlacement:
    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database
        self.catalog_changes: StockChanges | None = None

    def claim_and_lock(
        self, customer_id: int, product_ids: Sequence[int], units: int, claim: KeyClaim | None
    ) -> Locked | None:
        record = None
        if claim is not None:
            slot = (claim.user_id, claim.key)
            if slot not in self.db.keys:
                self.db.keys[slot] = ClaimedKey(self.db.next_id(), claim.fingerprint, None, None)
            record = self.db.keys[slot]
        found = [self.db.products[i] for i in sorted(set(product_ids)) if i in self.db.products]
        if not found:
            return None
        products = {
            p.id: LockedProduct(p.id, p.sku, p.name, p.price, p.stock, p.is_active, p.version, p.category)
            for p in found
        }
        unpaid = Unpaid(*self.db.add_unpaid(customer_id, 1, units))
        return Locked(products, order_id=self.db.next_id(), placed_at=self.db.now, key_record=record, unpaid=unpaid)

    def take_stock(self, products: Mapping[int, LockedProduct], quantities: Mapping[int, int]) -> None:
        if any(self.db.products[i].stock < q for i, q in quantities.items()):
            raise NotEnoughStock  # the stock CHECK: nothing of this step is done
        for product_id, quantity in quantities.items():
            product = self.db.products[product_id]
            product.stock -= quantity
            product.version += 1
        changes = self.catalog_changes or StockChanges({}, listings=False)
        changes.product_versions.update({i: self.db.products[i].version for i in quantities})
        self.catalog_changes = changes

    def write(
        self,
        order: PlacedOrder,
        document: str,
        *,
        take_from: Mapping[int, LockedProduct] | None,
        answer: KeyAnswer | None,
    ) -> None:
        if take_from is not None:
            self.take_stock(take_from, {line.product_id: line.quantity for line in order.items})
        items = [
            OrderItem(
                id=self.db.next_id(), order_id=order.id, product_id=line.product_id, sku=line.sku, name=line.name,
                quantity=line.quantity, unit_price=line.unit_price, line_total=line.line_total,
                category=line.category, first_in_category=line.first_in_category, counted=False,
                placed_at=order.created_at,
            )
            for line in order.items
        ]  # fmt: skip
        self.db.orders[order.id] = Order(
            id=order.id, user_id=order.user_id, status="pending", currency=order.currency, total=order.total,
            units=order.units, shipping_address=order.shipping_address, dropped_lines=order.dropped_lines,
            created_at=order.created_at, updated_at=order.created_at, items=items,
        )  # fmt: skip
        self.db.history.append(
            OrderStatusChange(
                id=self.db.next_id(), order_id=order.id, from_status=None, to_status="pending",
                changed_by=order.user_id, changed_at=order.created_at, event="order.placed",
            )
        )  # fmt: skip
        self.db.orders[order.id].event_sequence = 1
        self.db.events.append(
            Event(type=EventType.ORDER_PLACED.value, resource_type=ResourceType.ORDER.value, resource_id=order.id,
                  sequence=1, data=json.loads(document))
        )  # fmt: skip
        if answer is not None:
            self._answer(answer)

    def release_unpaid(self, customer_id: int, *, orders: int, units: int) -> None:
        self.db.add_unpaid(customer_id, -orders, -units)

    def record_refusal(self, answer: KeyAnswer, *, user_id: int, keep: int) -> None:
        self._answer(answer)
        refused = sorted(
            (
                slot
                for slot, record in self.db.keys.items()
                if slot[0] == user_id and (record.response_status or 0) >= 400
            ),
            key=lambda slot: self.db.keys[slot].id,
            reverse=True,
        )
        for slot in refused[keep:]:
            del self.db.keys[slot]

    def purge_keys(self, older_than_hours: int) -> int:
        return 0  # records keep no creation time here; tests/test_cli.py covers the purge on PostgreSQL

    def _answer(self, answer: KeyAnswer) -> None:
        slot = next(slot for slot, record in self.db.keys.items() if record.id == answer.record_id)
        self.db.keys[slot] = replace(self.db.keys[slot], response_status=answer.status, response_body=answer.body)


class MemoryEvents:
    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database

    def record(
        self, type_: EventType, resource_type: ResourceType, resource_id: int, sequence: int, data: dict[str, Any]
    ) -> None:
        self.db.events.append(
            Event(type=type_.value, resource_type=resource_type.value, resource_id=resource_id, sequence=sequence,
                  data=json.loads(json.dumps(data)))
        )  # fmt: skip

    def record_for_product(self, type_: EventType, product_id: int, data: str) -> None:
        product = self.db.products[product_id]
        product.event_sequence += 1
        self.db.events.append(
            Event(type=type_.value, resource_type=ResourceType.PRODUCT.value, resource_id=product_id,
                  sequence=product.event_sequence, data=json.loads(data))
        )  # fmt: skip


class MemoryUsers:
    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database

    def get_by_email(self, email: str) -> User | None:
        return next((u for u in self.db.users.values() if u.email.lower() == email.lower()), None)

    def add(self, user: User) -> User:
        user.id = self.db.next_id()
        user.is_active = True if user.is_active is None else user.is_active
        self.db.users[user.id] = user
        return user


class MemoryTokens:
    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database

    def add(self, token: ApiToken) -> ApiToken:
        token.id = self.db.next_id()
        self.db.tokens[token.id] = token
        return token

    def keep_newest(self, user_id: int, keep: int, now: datetime) -> None:
        mine = sorted((t for t in self.db.tokens.values() if t.user_id == user_id), key=lambda t: t.id, reverse=True)
        for index, token in enumerate(mine):
            if index >= keep or token.expires_at <= now:
                del self.db.tokens[token.id]

    def delete(self, token_id: int) -> None:
        self.db.tokens.pop(token_id, None)

    def delete_expired(self, now: datetime) -> int:
        expired = [t.id for t in self.db.tokens.values() if t.expires_at <= now]
        for token_id in expired:
            del self.db.tokens[token_id]
        return len(expired)


class MemoryUnitOfWork:
    """One transaction over a MemoryDatabase: undone on exit unless `commit()` was called."""

    def __init__(self, database: MemoryDatabase) -> None:
        self.db = database
        self.waits: tuple[int, int] | None = None

    def __enter__(self) -> Self:
        self._before = self.db.snapshot()
        self._committed = False
        self.users = MemoryUsers(self.db)
        self.products = MemoryProducts(self.db)
        self.orders = MemoryOrders(self.db)
        self.tokens = MemoryTokens(self.db)
        self.placement = MemoryPlacement(self.db)
        self.events = MemoryEvents(self.db)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self._committed:
            self.db.restore(self._before)

    def bound_waits(self, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
        self.waits = (lock_timeout_ms, statement_timeout_ms)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        before = self.db.snapshot()
        try:
            yield
        except BaseException:
            self.db.restore(before)
            raise

    def flush(self) -> None:
        return None  # every write is in place already

    def commit(self) -> None:
        self._committed = True
        self.db.commits += 1
        self._before = self.db.snapshot()  # a later failure in this unit of work undoes only what came after

    def rollback(self) -> None:
        self.db.restore(self._before)


def principal(user_id: int, role: Role = Role.CUSTOMER) -> Principal:
    """Whom a request speaks for, as the token lookup would return it."""
    return Principal(
        token_id=1000 + user_id,
        id=user_id,
        email=f"user{user_id}@example.com",
        name=f"User {user_id}",
        role=role.value,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
