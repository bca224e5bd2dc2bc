-- Revenue by product category over the range, largest first. An order with lines in several categories
-- counts once in each (at its first line there); its lines' totals add up to its total, so the categories add
-- up to the revenue. A line's category is its product's category when the order was placed (a snapshot).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name).
-- Counts lines of orders whose status is paid, shipped or delivered, by the moment the order was placed.
-- Index: ix_order_items_revenue, partial on counted lines, on placed_at and covering category, quantity,
-- line_total and first_in_category: the counted lines of the range, read from the index alone, no join.
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
)
SELECT i.category,
       count(*) FILTER (WHERE i.first_in_category) AS orders,
       sum(i.quantity) AS units,
       sum(i.line_total) AS revenue
  FROM order_items i, bounds b
 WHERE i.placed_at >= b.from_utc AND i.placed_at < b.until_utc AND i.counted
 GROUP BY i.category
 ORDER BY revenue DESC, i.category
