-- How many customers placed their first counted order ever in the range: the overview's "new customers" (the same
-- figure as the customers report's totals.new_customers, without the rest of that report).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name).
-- Index: ix_orders_customers, read from the index alone: the range's counted orders whose previous_counted_at is NULL.
SELECT count(*) AS new_customers
  FROM orders o
 WHERE o.created_at >= CAST(:start AS date)::timestamp AT TIME ZONE :tz
   AND o.created_at < (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz
   AND o.status IN ($COUNTED_STATUSES) AND o.previous_counted_at IS NULL
