-- The products that brought in the most revenue over the range (ties: more units first, then lower id),
-- with their SKU and name as they are now.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :limit (1 to 100).
-- Counts lines of orders whose status is paid, shipped or delivered, by the moment the order was placed, net of the
-- refunded lines (their amounts and units, in the period each refund was paid out).
-- Read as revenue_by_category.sql reads its figures: product_summary (migration 0016) and its changes for the whole
-- UTC days and months of the range, the lines (ix_order_items_revenue) and the ledger for the partial days at its
-- ends; products by their primary key for the few rows kept.
WITH bounds AS MATERIALIZED (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), segments AS MATERIALIZED (  -- whole UTC months ('m') and days ('d'); the rest ('q') read from the lines
    SELECT s.grain, s.seg_from, s.seg_until FROM bounds b CROSS JOIN summary_segments(b.from_utc, b.until_utc) s
), figures AS (
    SELECT p.product_id, p.units, p.revenue, p.refunded_units, p.refunds
      FROM segments s
      JOIN product_summary p ON p.grain = s.grain AND p.starts_at >= s.seg_from AND p.starts_at < s.seg_until
    UNION ALL
    SELECT p.product_id, p.units, p.revenue, p.refunded_units, p.refunds
      FROM segments s
      JOIN product_summary_changes p ON p.starts_at >= s.seg_from AND p.starts_at < s.seg_until
     WHERE s.grain <> 'q'
    UNION ALL
    SELECT i.product_id, sum(i.quantity), sum(i.line_total), 0, 0
      FROM segments s
      JOIN order_items i ON i.placed_at >= s.seg_from AND i.placed_at < s.seg_until AND i.counted
     WHERE s.grain = 'q'
     GROUP BY i.product_id
    UNION ALL
    SELECT l.product_id, 0, 0, sum(l.quantity), sum(l.amount)
      FROM segments s
      JOIN ledger_entries e ON e.occurred_at >= s.seg_from AND e.occurred_at < s.seg_until
                           AND e.kind = 'refund' AND e.in_revenue
      JOIN refund_lines l ON l.refund_id = e.refund_id
     WHERE s.grain = 'q'
     GROUP BY l.product_id
), ranked AS (
    SELECT product_id,
           CAST(sum(units) - sum(refunded_units) AS bigint) AS units,
           sum(revenue) - sum(refunds) AS revenue
      FROM figures
     GROUP BY product_id
    HAVING sum(units) > 0 OR sum(refunded_units) > 0  -- sold or refunded in the range, as the lines would say
     ORDER BY revenue DESC, units DESC, product_id
     LIMIT :limit
)
SELECT r.product_id, p.sku, p.name, r.units, r.revenue
  FROM ranked r
  JOIN products p ON p.id = r.product_id
 ORDER BY r.revenue DESC, r.units DESC, r.product_id
