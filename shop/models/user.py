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
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), server_default=Role.CUSTOMER.value)
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())

    def is_at_least(self, role: Role) -> bool:
        return Role(self.role).rank >= role.rank

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


# emails are unique whatever their case: Ann@x.com and ann@x.com are one account
sa.Index("uq_users_email_lower", sa.func.lower(User.email), unique=True)
