-- Revenue by product category over the range, largest first. An order with lines in several categories
-- counts once in each (at its first line there); its lines' totals add up to its total, so the categories add
-- up to the revenue. A line's category is its product's category when the order was placed (a snapshot).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name).
-- Counts lines of orders whose status is paid, shipped or delivered, by the moment the order was placed, less the
-- refunded lines' amounts (and units) in the period each refund was paid out: `net`, the order of the rows. Refunds of
-- an amount alone (no lines) lower the revenue report's net, not a category's. A category is listed when the range
-- holds a counted line or a refunded line of it.
-- Read from category_summary (migration 0016) for the whole UTC days and months of the range, with the changes not yet
-- folded into it; the partial UTC days at its ends from the lines themselves (ix_order_items_revenue, from the
-- index alone) and the ledger (ix_ledger_entries_refunds). Over a year, about 13 months and days of rows a category
-- and a day of lines, however many orders the year holds.
WITH bounds AS MATERIALIZED (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), segments AS MATERIALIZED (  -- whole UTC months ('m') and days ('d'); the rest ('q') read from the lines
    SELECT s.grain, s.seg_from, s.seg_until FROM bounds b CROSS JOIN summary_segments(b.from_utc, b.until_utc) s
), figures AS (
    SELECT c.category, c.orders, c.units, c.revenue, c.refunded_units, c.refunds
      FROM segments s
      JOIN category_summary c ON c.grain = s.grain AND c.starts_at >= s.seg_from AND c.starts_at < s.seg_until
    UNION ALL
    SELECT c.category, c.orders, c.units, c.revenue, c.refunded_units, c.refunds
      FROM segments s
      JOIN category_summary_changes c ON c.starts_at >= s.seg_from AND c.starts_at < s.seg_until
     WHERE s.grain <> 'q'
    UNION ALL
    SELECT i.category, count(*) FILTER (WHERE i.first_in_category), sum(i.quantity), sum(i.line_total), 0, 0
      FROM segments s
      JOIN order_items i ON i.placed_at >= s.seg_from AND i.placed_at < s.seg_until AND i.counted
     WHERE s.grain = 'q'
     GROUP BY i.category
    UNION ALL
    SELECT l.category, 0, 0, 0, sum(l.quantity), sum(l.amount)
      FROM segments s
      JOIN ledger_entries e ON e.occurred_at >= s.seg_from AND e.occurred_at < s.seg_until
                           AND e.kind = 'refund' AND e.in_revenue
      JOIN refund_lines l ON l.refund_id = e.refund_id
     WHERE s.grain = 'q'
     GROUP BY l.category
), categories AS (
    SELECT category, CAST(sum(orders) AS bigint) AS orders, CAST(sum(units) AS bigint) AS units,
           sum(revenue) AS revenue, CAST(sum(refunded_units) AS bigint) AS refunded_units, sum(refunds) AS refunds
      FROM figures
     GROUP BY category
)
SELECT category,
       orders,
       units - refunded_units AS units,
       revenue,
       refunds,
       revenue - refunds AS net
  FROM categories
 WHERE orders > 0 OR refunded_units > 0  -- a summary row can be all zeros once its lines stopped counting
 ORDER BY net DESC, category
