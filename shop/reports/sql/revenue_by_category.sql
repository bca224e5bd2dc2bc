-- Revenue by product category over the range, largest first. An order with lines in several categories
-- counts once in each; its lines' totals add up to its total, so the categories add up to the revenue.
-- A line's category is its product's category now.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name).
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- Indexes: ix_orders_revenue (the counted orders of the range, from the index alone), then order_items by
-- uq_order_items_order_id_product_id (order_id first) and products by their primary key.
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), counted AS (
    SELECT o.id
      FROM orders o, bounds b
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ('paid', 'shipped', 'delivered')
)
SELECT p.category,
       count(DISTINCT i.order_id) AS orders,
       sum(i.quantity) AS units,
       sum(i.line_total) AS revenue
  FROM counted c
  JOIN order_items i ON i.order_id = c.id
  JOIN products p ON p.id = i.product_id
 GROUP BY p.category
 ORDER BY revenue DESC, p.category
