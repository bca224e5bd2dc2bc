from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from shop.models.base import Base


class CatalogChange(Base):
    """What one committed transaction changed in the catalog, written in that transaction (shop.catalog.relay).

    The cache is told after the commit; this row is what makes sure it is told even when that telling failed
    (Redis paused) or never happened (the process was killed right after its COMMIT). Rows live for seconds.
    """

    __tablename__ = "catalog_changes"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    product_ids: Mapped[list[int]] = mapped_column(postgresql.ARRAY(sa.BigInteger), server_default="{}")
    versions: Mapped[list[int]] = mapped_column(postgresql.ARRAY(sa.Integer), server_default="{}")
    listings: Mapped[bool] = mapped_column(server_default=sa.false())
    written_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
