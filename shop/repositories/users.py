from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shop.models import User


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def get_by_email(self, email: str) -> User | None:
        # matches the functional unique index on lower(email)
        statement = sa.select(User).where(sa.func.lower(User.email) == email.lower())
        return self.session.scalars(statement).one_or_none()

    def add(self, user: User) -> User:
        self.session.add(user)
        self.session.flush()
        return user
