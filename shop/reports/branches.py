"""Reports whose periods are the branches of one UNION ALL, which PostgreSQL runs side by side in its parallel
workers (Parallel Append).

A report over periods can group its orders by period in one scan (width_bucket, joined to the periods for each
one's start) or give each period a branch of its own: a scan of that period's orders with its start a constant.
The branches cost less per order (no join, no grouping key to compute: over a year by month, the customers report
took 59-97 ms this way against 125-177 ms) and sort side by side (fulfilment's percentiles). A range of many
periods (five years by day is 1,827) is cut into at most MOST_BRANCHES runs of consecutive periods, each grouped by
width_bucket within its run, so the statement stays small to plan.

A template (a `.sql` file of shop/reports/sql) is one branch. Its placeholders, our own substitutions (never
input), depend on whether the branch holds one period or a run:

    $N           the branch's number: its parameters are :starts_$N (timestamptz[], where each of its periods
                 begins), :first_$N (its first period's number, from 1) and :until_$N (where its last period ends;
                 NULL for the range's last, which ends with the range)
    $POSITION    the period's number of an order: a constant for one period (no sort to group by)
    $STARTS_AT   where the order's period begins: a constant for one period
    $IN_BRANCH   the condition on `o.created_at` that makes an order the branch's
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any

MOST_BRANCHES = 24
_BUCKET = "width_bucket(o.created_at, CAST(:starts_$N AS timestamptz[]))"
# the branch's orders: placed from its first period's start until its last period's end (or the range's)
_IN_BRANCH = (
    "o.created_at >= (CAST(:starts_$N AS timestamptz[]))[1] AND o.created_at < "
    "coalesce(CAST(:until_$N AS timestamptz), (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz)"
)
# placeholder: (for a branch of one period, for a run of periods)
PLACEHOLDERS = {
    "$POSITION": ("CAST(:first_$N AS integer)", f"CAST(:first_$N AS integer) - 1 + {_BUCKET}"),
    "$STARTS_AT": ("(CAST(:starts_$N AS timestamptz[]))[1]", f"(CAST(:starts_$N AS timestamptz[]))[{_BUCKET}]"),
    "$IN_BRANCH": (_IN_BRANCH, _IN_BRANCH),
}


@functools.cache
def branches(template: str, branch_periods: tuple[int, ...]) -> str:
    """The template (a `.sql` file's text) once per branch (of so many periods each), numbered, joined by UNION ALL."""
    made = []
    for number, periods in enumerate(branch_periods, 1):
        branch = template
        for placeholder, (one, run) in PLACEHOLDERS.items():
            branch = branch.replace(placeholder, one if periods == 1 else run)
        made.append(branch.replace("$N", str(number)))
    return "\nUNION ALL\n".join(made)


def branch_parameters(starts: list[datetime]) -> tuple[tuple[int, ...], dict[str, Any]]:
    """How many periods each branch holds, and the branches' parameters, for periods beginning at `starts`."""
    size = math.ceil(len(starts) / MOST_BRANCHES)  # periods a branch
    runs = [starts[first : first + size] for first in range(0, len(starts), size)]
    parameters: dict[str, Any] = {}
    for number, run in enumerate(runs, 1):
        after = number * size  # the index of the next branch's first period
        parameters |= {
            f"starts_{number}": run,
            f"first_{number}": (number - 1) * size + 1,
            f"until_{number}": starts[after] if after < len(starts) else None,  # the last ends with the range
        }
    return tuple(len(run) for run in runs), parameters
