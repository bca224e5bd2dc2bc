-- A template, not a statement: one branch of revenue.sql's per_period, a period (or a run of consecutive ones)
-- each; its placeholders ($N, $POSITION, $STARTS_AT, $IN_BRANCH) and parameters (:starts_$N, :first_$N,
-- :until_$N) are shop/reports/branches.py's. Also :start, :end and :tz, the range.
-- What each column counts: revenue.sql. Index: ix_orders_revenue, read from the index alone.
SELECT $POSITION AS position,
       count(*) AS orders,
       sum(o.units) AS units,
       sum(o.total) AS revenue,
       count(*) FILTER (WHERE o.previous_counted_at IS NULL OR o.previous_counted_at < $STARTS_AT)
           AS unique_customers,
       count(*) FILTER (WHERE o.previous_counted_at IS NULL
                           OR o.previous_counted_at < CAST(:start AS date)::timestamp AT TIME ZONE :tz)
           AS new_in_range
  FROM orders o
 WHERE $IN_BRANCH
   AND o.status IN ($COUNTED_STATUSES)
 GROUP BY 1
