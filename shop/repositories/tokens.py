from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.db.prepared import PreparedStatement, run
from shop.models import ApiToken
from shop.security.principal import Principal

# every authenticated request runs it: prepared, one indexed lookup, plain columns
LIVE_TOKEN = PreparedStatement(
    "shop_live_token",
    ("text", "timestamptz"),
    """
    SELECT t.id, u.id, u.email, u.name, u.role, u.created_at
      FROM api_tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_digest = $1 AND t.expires_at > $2 AND u.is_active
    """,
)


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token

    def find_live(self, digest: str, now: datetime) -> Principal | None:
        """Whom the unexpired token with this digest speaks for, if that account is active."""
        # alone: on its own (as at the start of a request) it needs no transaction, nor psycopg2's BEGIN
        rows = run(self.session, (LIVE_TOKEN, (digest, now)), alone=True)
        return Principal(*rows[0]) if rows else None

    def delete(self, token_id: int) -> None:
        self.session.execute(sa.delete(ApiToken).where(ApiToken.id == token_id))

    def keep_newest(self, user_id: int, keep: int, now: datetime) -> None:
        """Delete the user's expired tokens and all but the `keep` newest live ones."""
        newest = sa.select(ApiToken.id).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc()).limit(keep)
        self.session.execute(
            sa.delete(ApiToken).where(
                ApiToken.user_id == user_id, sa.or_(ApiToken.expires_at <= now, ApiToken.id.not_in(newest))
            )
        )

    def delete_expired(self, now: datetime) -> int:
        result = self.session.execute(sa.delete(ApiToken).where(ApiToken.expires_at <= now))
        self.session.flush()
        return int(getattr(result, "rowcount", 0) or 0)
