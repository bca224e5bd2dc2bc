"""Who a request speaks for, once its bearer token is checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shop.models import Role


@dataclass(frozen=True)
class Principal:
    """Who a live bearer token speaks for: the account's public fields and the token's id. Plain values, no ORM."""

    token_id: int
    id: int
    email: str
    name: str
    role: str
    created_at: datetime

    def is_at_least(self, role: Role) -> bool:
        return Role(self.role).rank >= role.rank

    def may_see_order_of(self, owner_id: int) -> bool:
        """An order is seen (and acted on) by its owner and by staff; to anyone else it does not exist (a 404, the
        same as for no order). The one place this rule is written."""
        return owner_id == self.id or self.is_at_least(Role.STAFF)
