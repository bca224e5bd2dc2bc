-- The products that brought in the most revenue over the range (ties: more units first, then lower id),
-- with their SKU and name as they are now.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :limit (1 to 100).
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- Indexes: ix_orders_revenue (the counted orders of the range, from the index alone), then order_items by
-- uq_order_items_order_id_product_id (order_id first); products by their primary key for the few rows kept.
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), counted AS (
    SELECT o.id
      FROM orders o, bounds b
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ('paid', 'shipped', 'delivered')
), ranked AS (
    SELECT i.product_id, sum(i.quantity) AS units, sum(i.line_total) AS revenue
      FROM counted c
      JOIN order_items i ON i.order_id = c.id
     GROUP BY i.product_id
     ORDER BY revenue DESC, units DESC, i.product_id
     LIMIT :limit
)
SELECT r.product_id, p.sku, p.name, r.units, r.revenue
  FROM ranked r
  JOIN products p ON p.id = r.product_id
 ORDER BY r.revenue DESC, r.units DESC, r.product_id
