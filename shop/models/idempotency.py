from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base
from shop.models.user import User


class IdempotencyRecord(Base):
    """One Idempotency-Key of one user: the request it stood for and the answer it got.

    Written in the same transaction as the order, so a key never exists without its answer once committed;
    a concurrent request with the same key waits on the unique index until that transaction ends.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "key"),
        sa.CheckConstraint("length(key) BETWEEN 1 AND 255", name="key_length"),
        sa.Index("ix_idempotency_records_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey(User.id, ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    request_fingerprint: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int | None]
    # the answer's exact JSON text: a replay is byte for byte the first answer (jsonb would reorder keys)
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
