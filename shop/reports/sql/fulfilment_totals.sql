-- The whole range's fulfilment timings: two branches of shop/reports/fulfilment.py's UNION ALL (after one
-- fulfilment_period.sql branch per period), one for each wait, so that PostgreSQL sorts the range's waits for
-- payment and its waits for shipment in two of its processes at once, beside the periods' sorts.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz.
-- Rows: position 0, the range's paid orders and their waits for payment; position -1, the range's shipped orders
-- and their waits for shipment (the other columns NULL). The waits and percentiles as in fulfilment_period.sql.
-- Index: ix_orders_fulfilment, read from the index alone.
SELECT 0 AS position,
       count(*) AS paid,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY date_part('epoch', o.paid_at - o.created_at)) AS payment,
       CAST(NULL AS bigint) AS shipped,
       CAST(NULL AS float8[]) AS shipment
  FROM orders o
 WHERE o.created_at >= CAST(:start AS date)::timestamp AT TIME ZONE :tz
   AND o.created_at < (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz
   AND o.paid_at IS NOT NULL
UNION ALL
SELECT -1,
       NULL,
       NULL,
       count(o.shipped_at),
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY date_part('epoch', o.shipped_at - o.paid_at))
  FROM orders o
 WHERE o.created_at >= CAST(:start AS date)::timestamp AT TIME ZONE :tz
   AND o.created_at < (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz
   AND o.paid_at IS NOT NULL
