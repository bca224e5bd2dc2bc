-- The customers who spent the most over the range (ties: more orders first, then lower id), with their
-- email and name as they are now.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :limit (1 to 100).
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- Indexes: ix_orders_revenue (the counted orders of the range, from the index alone: user_id and total are in
-- it); users by their primary key for the few rows kept.
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), ranked AS (
    SELECT o.user_id, count(*) AS orders, sum(o.total) AS revenue
      FROM orders o, bounds b
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ($COUNTED_STATUSES)
     GROUP BY o.user_id
     ORDER BY revenue DESC, orders DESC, o.user_id
     LIMIT :limit
)
SELECT r.user_id, u.email, u.name, r.orders, r.revenue
  FROM ranked r
  JOIN users u ON u.id = r.user_id
 ORDER BY r.revenue DESC, r.orders DESC, r.user_id
