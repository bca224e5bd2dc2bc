-- Monthly cohorts: the customers whose first counted order ever was placed in the range, grouped by the month (in
-- :tz) of that order, and for each month of the range since, how many of them ordered and what they spent.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz, and from revenue_periods.sql with granularity month
-- :starts (timestamptz[], when each month's part of the range begins).
-- Answers (cohort, month) positions in :starts, 1-based; months without orders have no row.
-- An order's cohort is the month holding its customer's first counted order (orders.first_counted_at, kept by the
-- order code). A customer counts in a month at their first order in it: the one whose previous counted order came
-- before the month began (previous_counted_at, as in revenue.sql), so nothing is sorted for a DISTINCT.
-- Index: ix_orders_customers, read from the index alone, in parallel, with no join.
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
)
SELECT width_bucket(o.first_counted_at, CAST(:starts AS timestamptz[])) AS cohort,
       m.position AS month,
       count(*) FILTER (WHERE o.previous_counted_at IS NULL OR o.previous_counted_at < m.starts_at) AS customers,
       sum(o.total) AS revenue
  FROM orders o
  CROSS JOIN bounds b
  JOIN unnest(CAST(:starts AS timestamptz[])) WITH ORDINALITY AS m (starts_at, position)
    ON m.position = width_bucket(o.created_at, CAST(:starts AS timestamptz[]))
 WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
   AND o.status IN ($COUNTED_STATUSES) AND o.first_counted_at >= b.from_utc
 GROUP BY 1, 2
 ORDER BY 1, 2
