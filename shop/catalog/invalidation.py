"""Invalidate the catalog cache after the commit that changed products, never before, for every writer.

After each flush the changed products are noted against the innermost transaction. A rollback (of a
savepoint or of everything) drops the notes of that transaction and of the savepoints inside it; the
outermost commit applies what is left to Redis. SQLAlchemy also fires after_commit when a savepoint is
released, which is ignored: the outer transaction may still roll back.

Writers that change products with Core statements instead of ORM objects must bump `version` themselves
and call `note_product_changes`.
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
from shop.models import Product

log = logging.getLogger(__name__)

PENDING = "catalog_pending_changes"
# changing one of these can change which listings hold a product, in which order, or a category's count
LISTING_FIELDS = frozenset({"name", "description", "category", "price", "is_active", "created_at"})


@dataclass
class CatalogChanges:
    product_versions: dict[int, int] = field(default_factory=dict)
    listings: bool = False

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


def _apply(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released, not the transaction committed
    pending = _pending(session)
    changes = CatalogChanges()
    for transaction in list(pending):
        changes.merge(pending.pop(transaction))
    if not changes.product_versions and not changes.listings:
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
        ("after_commit", _apply),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
