-- Revenue by product category over the range, largest first. An order with lines in several categories
-- counts once in each (at its first line there); its lines' totals add up to its total, so the categories add
-- up to the revenue. A line's category is its product's category when the order was placed (a snapshot).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name).
-- Counts lines of orders whose status is paid, shipped or delivered, by the moment the order was placed, less the
-- refunded lines' amounts (and units) in the period each refund was paid out: `net`, the order of the rows. Refunds of
-- an amount alone (no lines) lower the revenue report's net, not a category's.
-- Index: ix_order_items_revenue, partial on counted lines, on placed_at and covering category, quantity,
-- line_total and first_in_category: the counted lines of the range, read from the index alone, no join.
WITH bounds AS NOT MATERIALIZED (  -- read twice: inlined into each, so neither scan loses its parallel plan
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), gross AS (
    SELECT i.category,
           count(*) FILTER (WHERE i.first_in_category) AS orders,
           sum(i.quantity) AS units,
           sum(i.line_total) AS revenue
      FROM order_items i, bounds b
     WHERE i.placed_at >= b.from_utc AND i.placed_at < b.until_utc AND i.counted
     GROUP BY i.category
), refunded AS (
    SELECT l.category, sum(l.quantity) AS units, sum(l.amount) AS refunds
      FROM ledger_entries e JOIN refund_lines l ON l.refund_id = e.refund_id, bounds b
     WHERE e.kind = 'refund' AND e.in_revenue AND e.occurred_at >= b.from_utc AND e.occurred_at < b.until_utc
     GROUP BY l.category
)
SELECT coalesce(g.category, r.category) AS category,
       coalesce(g.orders, 0) AS orders,
       coalesce(g.units, 0) - coalesce(r.units, 0) AS units,
       coalesce(g.revenue, 0) AS revenue,
       coalesce(r.refunds, 0) AS refunds,
       coalesce(g.revenue, 0) - coalesce(r.refunds, 0) AS net
  FROM gross g FULL JOIN refunded r ON r.category = g.category
 ORDER BY net DESC, category
