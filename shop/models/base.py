"""The declarative base: a naming convention so every constraint has a stable name in migrations."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Money: exact decimals with two places, never float.
Money = sa.Numeric(12, 2, asdecimal=True)


class Base(DeclarativeBase):
    # on the registry, not the class: Flask-SQLAlchemy subclasses this base, and SQLAlchemy 2.1
    # accepts a type_annotation_map only on the registry then
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            datetime: sa.DateTime(timezone=True),
            Decimal: Money,
        },
    )


class Timestamps:
    """created_at / updated_at set by the database clock, in UTC (timestamptz)."""

    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=sa.func.now(), onupdate=sa.func.now())


def sql_values(values: type[enum.StrEnum]) -> str:
    """The members of an enum as a SQL list literal, for CHECK constraints (our own constants, never input)."""
    return ", ".join(f"'{member.value}'" for member in values)
