from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base, Timestamps, sql_values


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"
    # another system (a warehouse, an e-mail sender): may read the event feed and nothing else
    INTEGRATION = "integration"

    @property
    def rank(self) -> int:
        """Each role on the ladder may do what the roles before it may; an integration is on no rung (-1)."""
        return LADDER.index(self) if self in LADDER else -1


LADDER = (Role.CUSTOMER, Role.STAFF, Role.ADMIN)


class User(Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(f"role IN ({sql_values(Role)})", name="role_allowed"),
        sa.CheckConstraint("email LIKE '%_@_%'", name="email_has_at"),
        sa.CheckConstraint("length(name) > 0", name="name_not_empty"),
        sa.CheckConstraint("unpaid_orders >= 0 AND unpaid_units >= 0", name="unpaid_not_negative"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), server_default=Role.CUSTOMER.value)
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())
    # the customer's pending orders and their units, kept by the order code (placement adds, leaving pending
    # subtracts) so the limit on what one customer may hold unpaid is one row's check, however many orders they have
    unpaid_orders: Mapped[int] = mapped_column(server_default=sa.text("0"))
    unpaid_units: Mapped[int] = mapped_column(server_default=sa.text("0"))

    def is_at_least(self, role: Role) -> bool:
        return Role(self.role).rank >= role.rank

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


# emails are unique whatever their case: Ann@x.com and ann@x.com are one account
sa.Index("uq_users_email_lower", sa.func.lower(User.email), unique=True)
