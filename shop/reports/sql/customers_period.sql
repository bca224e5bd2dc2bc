-- A template, not a statement: one branch of customers.sql's per_period, a period (or a run of consecutive ones)
-- each; its placeholders ($N, $POSITION, $STARTS_AT, $IN_BRANCH) and parameters (:starts_$N, :first_$N,
-- :until_$N) are shop/reports/branches.py's. Also :start, :end and :tz, the range.
-- What each column counts: customers.sql. Index: ix_orders_customers, read from the index alone.
SELECT $POSITION AS position,
       count(*) FILTER (WHERE o.previous_counted_at IS NULL OR o.previous_counted_at < $STARTS_AT) AS customers,
       count(*) FILTER (WHERE o.previous_counted_at IS NULL) AS new_customers,
       count(*) FILTER (WHERE o.previous_counted_at < CAST(:start AS date)::timestamp AT TIME ZONE :tz)
           AS returning_in_range,
       sum(o.total) AS revenue,
       coalesce(sum(o.total) FILTER (WHERE o.first_counted_at >= $STARTS_AT), 0) AS new_revenue,
       coalesce(sum(o.total) FILTER (WHERE o.first_counted_at >= CAST(:start AS date)::timestamp AT TIME ZONE :tz), 0)
           AS new_in_range_revenue
  FROM orders o
 WHERE $IN_BRANCH
   AND o.status IN ($COUNTED_STATUSES)
 GROUP BY 1
