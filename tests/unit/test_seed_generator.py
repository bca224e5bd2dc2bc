"""The seed generator's shortcuts give what the plain ways would, and its row counts are the rows it wrote."""

from __future__ import annotations

import bisect
import itertools
import math
from datetime import date

import pytest

from shop.seeding.generate import LINES_WEIGHT, QUANTITY_WEIGHT, SeedPlan, StoreGenerator, _percentiles


@pytest.mark.parametrize("weights", [LINES_WEIGHT, QUANTITY_WEIGHT, {7: 99, 8: 1}])
def test_a_table_of_percentiles_picks_what_bisecting_the_cumulative_weights_picks(weights: dict[int, int]) -> None:
    table = _percentiles(weights)
    values = list(weights)
    cumulative = list(itertools.accumulate(float(weight) for weight in weights.values()))
    # every hundredth, the float just below it, and points between: the edges are where an off-by-one would show
    edges = [point for k in range(100) for point in (k / 100, math.nextafter(k / 100, 0.0), (k + 0.5) / 100)]
    for u in [*edges, math.nextafter(1.0, 0.0)]:
        assert table[int(u * 100.0)] == values[bisect.bisect(cumulative, u * cumulative[-1])], u


def test_weights_that_do_not_add_up_to_a_hundred_are_refused() -> None:
    with pytest.raises(ValueError, match="add up to 100"):
        _percentiles({1: 50, 2: 49})


def test_each_batch_says_how_many_rows_it_holds() -> None:
    plan = SeedPlan(users=300, products=40, orders=9_000, since=date(2026, 1, 1), until=date(2026, 3, 1), seed=3,
                    demo_accounts=False)  # fmt: skip
    store = StoreGenerator(plan)
    users = list(store.users())  # first: they are the customers the orders draw from
    store.products()
    batches = {
        "users": users,
        "order_items": list(store.order_items()),
        "orders": list(store.order_rows("EUR")),
        "products": list(store.product_rows()),
        "order_status_changes": list(store.history_rows("EUR")),
        "ledger_entries": list(store.capture_rows("EUR", "demo-pay")),
    }
    for table, rows in batches.items():
        # a row ends at an unescaped newline (COPY text escapes the ones inside values)
        assert all(text.count("\n") == count and text.endswith("\n") for text, count in rows), table
    assert sum(count for _, count in batches["orders"]) == plan.orders
    assert len(batches["order_items"]) > 1  # many rows to a batch, and more than one batch
    ids = [int(row.split("\t", 1)[0]) for text, _ in batches["order_status_changes"] for row in text.splitlines()]
    assert ids == list(range(1, len(ids) + 1))  # numbered on across batches
