"""Invalidate the catalog cache after the commit that changed products, never before, for every writer.

After each flush the changed products are noted against the innermost transaction. A rollback (of a
savepoint or of everything) drops the notes of that transaction and of the savepoints inside it; the
outermost commit applies what is left to Redis. SQLAlchemy also fires after_commit when a savepoint is
released, which is ignored: the outer transaction may still roll back.

Writers that change products with Core statements instead of ORM objects must bump `version` themselves;
their unit of work calls `note_product_changes` with what they changed (shop/services/unit_of_work.py).

Before the outermost commit, what is left is also written to `catalog_changes`, in the same transaction
(`before_commit`), so that the relay (shop/catalog/relay.py) can tell Redis again if the telling after the
commit fails or never happens. A unit of work whose COMMIT rides in its last round trip (order placement)
sends that row with it, from `record_statement`, and the hook then writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from shop.catalog import cache as catalog_cache
from shop.catalog import near_cache
from shop.db.prepared import Call, PreparedStatement
from shop.models import CatalogChange, Product

log = logging.getLogger(__name__)

PENDING = "catalog_pending_changes"
# changing one of these can change which listings hold a product, in which order, or a category's count
LISTING_FIELDS = frozenset({"name", "description", "category", "price", "is_active", "created_at"})


RECORDED = "catalog_changes_recorded"

RECORD_CHANGES = PreparedStatement(
    "shop_record_catalog_changes",
    ("bigint[]", "integer[]", "boolean"),
    "INSERT INTO catalog_changes (product_ids, versions, listings) VALUES ($1, $2, $3)",
)


@dataclass
class CatalogChanges:
    product_versions: dict[int, int] = field(default_factory=dict)
    listings: bool = False

    def __bool__(self) -> bool:
        return bool(self.product_versions) or self.listings

    def record_parameters(self) -> tuple[list[int], list[int], bool]:
        ids = sorted(self.product_versions)
        return ids, [self.product_versions[product_id] for product_id in ids], self.listings

    def merge(self, other: CatalogChanges) -> None:
        for product_id, version in other.product_versions.items():
            self.product_versions[product_id] = max(version, self.product_versions.get(product_id, 0))
        self.listings = self.listings or other.listings


def _pending(session: Session) -> dict[SessionTransaction, CatalogChanges]:
    pending: dict[SessionTransaction, CatalogChanges] = session.info.setdefault(PENDING, {})
    return pending


def note_product_changes(session: Session, product_versions: dict[int, int], *, listings: bool) -> None:
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        return
    changes = _pending(session).setdefault(transaction, CatalogChanges())
    changes.merge(CatalogChanges(dict(product_versions), listings))


def _crossed_zero(product: Product) -> bool:
    """Did stock go from none to some, or from some to none (the in_stock filter)?"""
    history = sa.inspect(product).attrs.stock.history
    if not history.deleted or not history.added:
        return False
    before, after = history.deleted[0], history.added[0]
    if not isinstance(before, int) or not isinstance(after, int):
        return True  # an SQL expression: the new value is unknown here, assume the worst
    return (before > 0) != (after > 0)


def _collect(session: Session, flush_context: Any) -> None:
    versions: dict[int, int] = {}
    # a new product needs no tombstone (nobody can have cached it), only fresh listings and counts
    listings = any(isinstance(product, Product) for product in session.new)
    for product in session.dirty:
        if not isinstance(product, Product) or not session.is_modified(product):
            continue
        state = sa.inspect(product)
        changed = {attribute.key for attribute in state.attrs if attribute.history.has_changes()}
        versions[product.id] = product.version
        listings = listings or bool(changed & LISTING_FIELDS) or ("stock" in changed and _crossed_zero(product))
    for product in session.deleted:
        if isinstance(product, Product):
            listings = True
    if versions or listings:
        note_product_changes(session, versions, listings=listings)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _forget(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rollback undoes the changes made in that transaction and in every savepoint inside it."""
    pending = _pending(session)
    for transaction in [t for t in pending if _within(t, previous_transaction)]:
        del pending[transaction]
    if previous_transaction.parent is None:
        session.info.pop(RECORDED, None)  # the row, if written, went with the transaction


def pending_changes(session: Session) -> CatalogChanges:
    """Everything the session's transaction has changed in the catalog so far (savepoints rolled back left out)."""
    changes = CatalogChanges()
    for noted in _pending(session).values():
        changes.merge(noted)
    return changes


def record_statement(session: Session) -> Call | None:
    """For a writer that sends its own COMMIT: the statement that records the transaction's catalog changes, to
    go just before it. None if there are none; once it is taken, the before_commit hook writes no row."""
    changes = pending_changes(session)
    if not changes:
        return None
    session.info[RECORDED] = True
    return RECORD_CHANGES, changes.record_parameters()


def _record(session: Session) -> None:
    if session.get_nested_transaction() is not None or session.info.get(RECORDED):
        return
    session.flush()  # before_commit comes before the commit's own flush: what it writes must be noted first
    changes = pending_changes(session)
    if changes:
        product_ids, versions, listings = changes.record_parameters()
        session.execute(sa.insert(CatalogChange).values(product_ids=product_ids, versions=versions, listings=listings))


def _apply(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released, not the transaction committed
    session.info.pop(RECORDED, None)
    pending = _pending(session)
    changes = CatalogChanges()
    for transaction in list(pending):
        changes.merge(pending.pop(transaction))
    if not changes:
        return
    try:
        if changes.product_versions:
            catalog_cache.retire_products(changes.product_versions)
        if changes.listings:
            catalog_cache.retire_listings()
    except Exception:
        # the data is committed; an exception here would break the session, not undo anything
        log.exception("catalog cache invalidation failed after commit")
    finally:
        # after Redis: a thread here that read the old value before the tombstone cannot keep it (its ticket is older)
        near_cache.for_app().forget(changes.product_versions, listings=changes.listings)


def register_catalog_invalidation() -> None:
    """Listen on every Session (idempotent: the factory may run more than once in one process)."""
    for name, listener in (
        ("after_flush", _collect),
        ("after_soft_rollback", _forget),
        ("before_commit", _record),
        ("after_commit", _apply),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
