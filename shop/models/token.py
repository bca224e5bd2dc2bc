from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.models.base import Base
from shop.models.user import User


class ApiToken(Base):
    """A bearer token. Only its SHA-256 digest is stored: a leaked table grants nothing."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        sa.CheckConstraint("length(token_digest) = 64", name="digest_is_sha256_hex"),
        sa.CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        # purging expired tokens scans by expiry
        sa.Index("ix_api_tokens_expires_at", "expires_at"),
        sa.Index("ix_api_tokens_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey(User.id, ondelete="CASCADE"))
    token_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    user: Mapped[User] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} user={self.user_id}>"
