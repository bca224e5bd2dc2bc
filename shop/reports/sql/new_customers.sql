-- How many customers placed their first counted order ever in the range: the overview's "new customers" (the same
-- figure as the customers report's totals.new_customers, without the rest of that report).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name).
-- Index: ix_orders_first_counted, partial on counted orders with no counted order before them (a customer's first),
-- on created_at: the range's first orders only, a few thousand entries however many orders the range holds.
SELECT count(*) AS new_customers
  FROM orders o
 WHERE o.created_at >= CAST(:start AS date)::timestamp AT TIME ZONE :tz
   AND o.created_at < (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz
   AND o.status IN ($COUNTED_STATUSES) AND o.previous_counted_at IS NULL
