-- The customers who spent the most over the range (ties: more orders first, then lower id), with their
-- email and name as they are now.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :limit (1 to 100), :probe (how
-- many of the biggest spenders ever to try first), :most_candidates.
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- A sum per customer has as many groups as the range has customers (450,000 over a year of ten million orders), so
-- it reads only the customers who could be in the list: what a customer spent ever (customer_revenue, kept by the
-- orders' trigger, migration 0016) bounds what they spent in the range. The :probe biggest spenders' range revenue
-- gives a floor, their :limit-th best: the list's last place spent at least that, so only customers who spent at
-- least that ever can be in it. Those candidates' orders of the range are read (ix_orders_customer_counted, from
-- the index alone) and ranked: exact. When the floor is 0 or more than :most_candidates customers reach it (a short
-- range, or one where nobody spent much), every counted order of the range is read and grouped instead
-- (ix_orders_revenue), the one branch PostgreSQL runs.
-- Indexes: ix_customer_revenue_revenue, ix_orders_customer_counted, ix_orders_revenue; users by primary key.
WITH bounds AS MATERIALIZED (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), probed AS (
    SELECT s.revenue
      FROM (SELECT user_id FROM customer_revenue ORDER BY revenue DESC, user_id LIMIT :probe) AS p
     CROSS JOIN bounds b
     CROSS JOIN LATERAL (
         SELECT count(*) AS orders, sum(o.total) AS revenue
           FROM orders o
          WHERE o.user_id = p.user_id AND o.status IN ($COUNTED_STATUSES)
            AND o.created_at >= b.from_utc AND o.created_at < b.until_utc
     ) AS s
     WHERE s.orders > 0
), floor AS MATERIALIZED (
    SELECT coalesce((SELECT revenue FROM probed ORDER BY revenue DESC OFFSET :limit - 1 LIMIT 1), 0) AS revenue
), candidates AS MATERIALIZED (
    SELECT c.user_id
      FROM customer_revenue c, floor f
     WHERE f.revenue > 0 AND c.revenue >= f.revenue
     LIMIT :most_candidates + 1
), plan AS MATERIALIZED (
    SELECT (SELECT revenue FROM floor) > 0 AND (SELECT count(*) FROM candidates) <= :most_candidates AS bounded
), spent AS (
    SELECT c.user_id, s.orders, s.revenue
      FROM candidates c
     CROSS JOIN bounds b
     CROSS JOIN LATERAL (
         SELECT count(*) AS orders, sum(o.total) AS revenue
           FROM orders o
          WHERE o.user_id = c.user_id AND o.status IN ($COUNTED_STATUSES)
            AND o.created_at >= b.from_utc AND o.created_at < b.until_utc
     ) AS s
     WHERE (SELECT bounded FROM plan) AND s.orders > 0
    UNION ALL
    SELECT o.user_id, count(*), sum(o.total)
      FROM orders o, bounds b
     WHERE NOT (SELECT bounded FROM plan)
       AND o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ($COUNTED_STATUSES)
     GROUP BY o.user_id
), ranked AS (
    SELECT user_id, orders, revenue
      FROM spent
     ORDER BY revenue DESC, orders DESC, user_id
     LIMIT :limit
)
SELECT r.user_id, u.email, u.name, r.orders, r.revenue
  FROM ranked r
  JOIN users u ON u.id = r.user_id
 ORDER BY r.revenue DESC, r.orders DESC, r.user_id
