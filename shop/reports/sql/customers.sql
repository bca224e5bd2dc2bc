-- New and returning customers per period, and their revenue; then one totals row (period NULL) with the range's
-- customers and how many of them had placed two or more counted orders by its end (the repeat-purchase rate).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), and from revenue_periods.sql
-- :periods (date[]) and :starts (timestamptz[], when each period's part of the range begins).
-- A customer is new in the period of their first counted order ever (previous_counted_at IS NULL), returning in a
-- period they ordered in after an earlier counted order. New revenue is what customers new in the period spent in
-- it, their second and later orders in it included (first_counted_at, their first order's placement, is in the
-- period); in the totals, what customers new in the range spent in it. Returning revenue is the rest. A customer
-- counts once per period (at their first order in it, as in revenue.sql) and once in the totals.
-- Index: ix_orders_customers (counted orders by created_at, covering user_id, total, previous_counted_at and
-- first_counted_at), read from the index alone: the range's orders once, in parallel, with no join. The repeat
-- customers: the range's first orders (ix_orders_first_counted, a few thousand), each followed by one probe of
-- ix_orders_customer_counted for the customer's next counted order (32-46 ms over a year of a million orders,
-- where a DISTINCT over every later order of the range's new customers took 50-176 ms).
WITH bounds AS NOT MATERIALIZED (  -- read twice: inlined into each, so neither scan loses its parallel plan
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), per_period AS (
    SELECT p.position,
           count(*) FILTER (WHERE o.previous_counted_at IS NULL OR o.previous_counted_at < p.starts_at) AS customers,
           count(*) FILTER (WHERE o.previous_counted_at IS NULL) AS new_customers,
           count(*) FILTER (WHERE o.previous_counted_at < b.from_utc) AS returning_in_range,
           sum(o.total) AS revenue,
           coalesce(sum(o.total) FILTER (WHERE o.first_counted_at >= p.starts_at), 0) AS new_revenue,
           coalesce(sum(o.total) FILTER (WHERE o.first_counted_at >= b.from_utc), 0) AS new_in_range_revenue
      FROM orders o
      CROSS JOIN bounds b
      JOIN unnest(CAST(:starts AS timestamptz[])) WITH ORDINALITY AS p (starts_at, position)
        ON p.position = width_bucket(o.created_at, CAST(:starts AS timestamptz[]))
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ($COUNTED_STATUSES)
     GROUP BY p.position
), new_repeaters AS (  -- customers new in the range who ordered again in it: each first order, and its next
    SELECT count(*) AS customers
      FROM orders f
     CROSS JOIN bounds b
     CROSS JOIN LATERAL (  -- LIMIT 1: one probe of the customer's chain per first order, never a scan of all
         SELECT 1 FROM orders o
          WHERE o.user_id = f.user_id AND o.status IN ($COUNTED_STATUSES)
            AND (o.created_at, o.id) > (f.created_at, f.id) AND o.created_at < b.until_utc
          ORDER BY o.created_at, o.id LIMIT 1
     ) AS next_order
     WHERE f.created_at >= b.from_utc AND f.created_at < b.until_utc
       AND f.status IN ($COUNTED_STATUSES) AND f.previous_counted_at IS NULL
)
SELECT period.day AS period,
       coalesce(pp.customers, 0) AS customers,
       coalesce(pp.new_customers, 0) AS new_customers,
       coalesce(pp.customers - pp.new_customers, 0) AS returning_customers,
       coalesce(pp.new_revenue, 0) AS new_revenue,
       coalesce(pp.revenue - pp.new_revenue, 0) AS returning_revenue,
       NULL::bigint AS repeat_customers
  FROM unnest(CAST(:periods AS date[])) WITH ORDINALITY AS period (day, position)
  LEFT JOIN per_period pp ON pp.position = period.position
UNION ALL
SELECT NULL,
       CAST(coalesce(sum(new_customers + returning_in_range), 0) AS bigint),
       CAST(coalesce(sum(new_customers), 0) AS bigint),
       CAST(coalesce(sum(returning_in_range), 0) AS bigint),
       coalesce(sum(new_in_range_revenue), 0),
       coalesce(sum(revenue - new_in_range_revenue), 0),
       CAST(coalesce(sum(returning_in_range), 0) + (SELECT customers FROM new_repeaters) AS bigint)
  FROM per_period
ORDER BY period NULLS LAST
