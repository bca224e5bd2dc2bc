-- New and returning customers per period, and their revenue; then one totals row (period NULL) with the range's
-- customers and how many of them had placed two or more counted orders by its end (the repeat-purchase rate).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), from revenue_periods.sql :periods
-- (date[]), and the parameters of per_period's branches (customers_period.sql once per period, or per
-- run of periods, put together by shop/reports/branches.py; 59-97 ms over a year by month where one scan grouping
-- by period took 125-177).
-- A customer is new in the period of their first counted order ever (previous_counted_at IS NULL), returning in a
-- period they ordered in after an earlier counted order. New revenue is what customers new in the period spent in
-- it, their second and later orders in it included (first_counted_at, their first order's placement, is in the
-- period); in the totals, what customers new in the range spent in it. Returning revenue is the rest. A customer
-- counts once per period (at their first order in it, as in revenue.sql) and once in the totals.
-- Index: ix_orders_customers (counted orders by created_at, covering user_id, total, previous_counted_at and
-- first_counted_at), read from the index alone: the range's orders once, a branch per period, with no join. The
-- repeat customers: the range's first orders (ix_orders_first_counted, a few thousand), each followed by one probe of
-- ix_orders_customer_counted for the customer's next counted order (32-46 ms over a year of a million orders,
-- where a DISTINCT over every later order of the range's new customers took 50-176 ms).
WITH bounds AS NOT MATERIALIZED (  -- inlined where it is read
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), per_period AS (  -- a UNION ALL branch per period (customers_period.sql), run side by side
$PER_PERIOD
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
