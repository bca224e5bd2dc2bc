-- The products that brought in the most revenue over the range (ties: more units first, then lower id),
-- with their SKU and name as they are now.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :limit (1 to 100).
-- Counts lines of orders whose status is paid, shipped or delivered, by the moment the order was placed, net of the
-- refunded lines (their amounts and units, in the period each refund was paid out).
-- Indexes: ix_order_items_revenue (the counted lines of the range, from the index alone: product_id, quantity
-- and line_total are in it); products by their primary key for the few rows kept.
WITH bounds AS NOT MATERIALIZED (  -- read twice: inlined into each, so neither scan loses its parallel plan
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), gross AS (
    SELECT i.product_id, sum(i.quantity) AS units, sum(i.line_total) AS revenue
      FROM order_items i, bounds b
     WHERE i.placed_at >= b.from_utc AND i.placed_at < b.until_utc AND i.counted
     GROUP BY i.product_id
), refunded AS (
    SELECT l.product_id, sum(l.quantity) AS units, sum(l.amount) AS refunds
      FROM ledger_entries e JOIN refund_lines l ON l.refund_id = e.refund_id, bounds b
     WHERE e.kind = 'refund' AND e.in_revenue AND e.occurred_at >= b.from_utc AND e.occurred_at < b.until_utc
     GROUP BY l.product_id
), ranked AS (
    SELECT coalesce(g.product_id, r.product_id) AS product_id,
           coalesce(g.units, 0) - coalesce(r.units, 0) AS units,
           coalesce(g.revenue, 0) - coalesce(r.refunds, 0) AS revenue
      FROM gross g FULL JOIN refunded r ON r.product_id = g.product_id
     ORDER BY revenue DESC, units DESC, product_id
     LIMIT :limit
)
SELECT r.product_id, p.sku, p.name, r.units, r.revenue
  FROM ranked r
  JOIN products p ON p.id = r.product_id
 ORDER BY r.revenue DESC, r.units DESC, r.product_id
