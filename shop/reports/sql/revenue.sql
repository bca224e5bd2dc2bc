-- Revenue per period of the range: one row per day, ISO week (from Monday) or month in the requested time
-- zone, empty periods included with zeros, each with the running revenue; then one totals row (period NULL)
-- whose unique_customers counts each customer once over the whole range.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :granularity ('day', 'week'
-- or 'month'; checked by the caller).
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- Index: ix_orders_revenue, partial on the counted statuses, on created_at and covering user_id, total and
-- units: the local date range becomes a created_at range in UTC, read from the index alone.
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), counted AS (
    SELECT o.user_id, o.total, o.units, date_trunc(:granularity, o.created_at AT TIME ZONE :tz) AS period
      FROM orders o, bounds b
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ('paid', 'shipped', 'delivered')
), periods AS (
    SELECT generate_series(
               date_trunc(:granularity, CAST(:start AS date)::timestamp),
               CAST(:end AS date)::timestamp,
               CAST('1 ' || :granularity AS interval)
           ) AS period
    UNION ALL
    SELECT NULL  -- the totals row
), per_period AS (
    SELECT period, count(*) AS orders, sum(units) AS units, sum(total) AS revenue,
           count(DISTINCT user_id) AS unique_customers
      FROM counted
     GROUP BY GROUPING SETS ((period), ())
)
SELECT CAST(p.period AS date) AS period,
       coalesce(pp.orders, 0) AS orders,
       coalesce(pp.units, 0) AS units,
       coalesce(pp.revenue, 0) AS revenue,
       coalesce(pp.unique_customers, 0) AS unique_customers,
       CASE WHEN p.period IS NOT NULL
            THEN sum(coalesce(pp.revenue, 0)) OVER (ORDER BY p.period NULLS LAST)
       END AS running_revenue
  FROM periods p
  LEFT JOIN per_period pp ON pp.period IS NOT DISTINCT FROM p.period
 ORDER BY p.period NULLS LAST
