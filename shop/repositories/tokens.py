from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import ApiToken, User

# built once: every authenticated request runs it, and building a statement costs more than running a cached one
LIVE_TOKEN = (
    sa.select(ApiToken, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_digest == sa.bindparam("digest"), ApiToken.expires_at > sa.bindparam("now"), User.is_active)
)


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token

    def find_live(self, digest: str, now: datetime) -> tuple[ApiToken, User] | None:
        """The unexpired token with this digest and its active user, in one indexed query."""
        row = self.session.execute(LIVE_TOKEN, {"digest": digest, "now": now}).one_or_none()
        return (row[0], row[1]) if row else None

    def delete(self, token: ApiToken) -> None:
        self.session.delete(token)
        self.session.flush()

    def delete_expired(self, now: datetime) -> int:
        result = self.session.execute(sa.delete(ApiToken).where(ApiToken.expires_at <= now))
        self.session.flush()
        return int(getattr(result, "rowcount", 0) or 0)
