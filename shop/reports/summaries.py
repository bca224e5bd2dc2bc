"""Folding the summaries' changes into the summaries (migration 0016 keeps both).

The order tables' triggers append a change row for every change a report would see; they never update a summary
row, which would make every order paid in the same quarter hour wait for the one before it. The roll-up moves the
changes into the summaries in one transaction (DELETE ... RETURNING, then one upsert per grain), so a report, which
reads both in one snapshot, sees each change exactly once whether it ran before, during or after. It runs in
`flask orders expire`'s loop (every --interval seconds) and as `flask reports roll-up`; if it never ran, reports stay
exact and read more change rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.extensions import db

# one roll-up at a time (a second would find nothing to move, having waited for the first's rows)
ROLL_UP_LOCK = 0x5C0FF1D5


@dataclass(frozen=True)
class Summary:
    table: str
    keys: tuple[str, ...]
    figures: tuple[str, ...]
    grains: tuple[tuple[str, str | None], ...]  # (grain, date_trunc unit; None: the change's own quarter hour)

    def roll_up_statement(self) -> sa.TextClause:
        keys = "".join(f", {key}" for key in self.keys)
        figures = ", ".join(self.figures)
        sums = ", ".join(f"sum(m.{figure})" for figure in self.figures)
        added = ", ".join(f"{figure} = s.{figure} + excluded.{figure}" for figure in self.figures)
        grains = ", ".join(f"('{grain}', {repr(unit) if unit else 'NULL'})" for grain, unit in self.grains)
        moved_keys = "".join(f", m.{key}" for key in self.keys)
        return sa.text(
            f"""
            WITH moved AS (
                DELETE FROM {self.table}_changes RETURNING starts_at{keys}, {figures}
            ), grains (grain, unit) AS (VALUES {grains}
            ), written AS (
                INSERT INTO {self.table} AS s (grain, starts_at{keys}, {figures})
                SELECT g.grain, coalesce(summary_floor(g.unit, m.starts_at), m.starts_at){moved_keys}, {sums}
                  FROM moved m CROSS JOIN grains g
                 GROUP BY 1, 2{moved_keys}
                ON CONFLICT (grain, starts_at{keys}) DO UPDATE SET {added}
            )
            SELECT count(*) FROM moved
            """  # noqa: S608 - table and column names are this module's constants
        )


QUARTER_HOURS, DAYS, MONTHS = ("q", None), ("d", "day"), ("m", "month")
SUMMARIES = (
    Summary(
        "revenue_summary", (), ("orders", "units", "revenue", "refunds", "first_orders"), (QUARTER_HOURS, DAYS, MONTHS)
    ),
    Summary(
        "category_summary",
        ("category",),
        ("orders", "units", "revenue", "refunded_units", "refunds"),
        (DAYS, MONTHS),
    ),
    Summary("product_summary", ("product_id",), ("units", "revenue", "refunded_units", "refunds"), (DAYS, MONTHS)),
    Summary("order_pair_summary", ("previous_day",), ("pairs",), (DAYS,)),
    Summary("first_order_summary", ("first_day",), ("orders", "revenue", "second_orders"), (DAYS,)),
)


def roll_up_changes(connection: Connection) -> int:
    """Fold every committed change into the summaries, in the caller's transaction; how many changes moved
    (0 when another roll-up holds the lock: it is doing the same)."""
    if not connection.scalar(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ROLL_UP_LOCK}):
        return 0
    return sum(connection.scalar(summary.roll_up_statement()) or 0 for summary in SUMMARIES)


def roll_up() -> int:
    """roll_up_changes() in a transaction of its own."""
    with db.engine.begin() as connection:
        return roll_up_changes(connection)
