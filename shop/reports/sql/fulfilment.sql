-- Fulfilment timings per period of placement: how long orders waited from placement to payment and from payment
-- to shipment, median and 90th percentile in seconds; then one totals row (period NULL) for the whole range.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz, and from revenue_periods.sql :periods (date[]) and
-- :starts (timestamptz[]).
-- Counts every order placed in the range that was paid (cancelled after payment or not): its wait for payment;
-- and of those, every one shipped: its wait for shipment. Percentiles interpolate (percentile_cont), exactly.
-- Index: ix_orders_fulfilment, partial on paid orders, on created_at and covering paid_at and shipped_at, read from
-- the index alone. The percentiles sort each period's waits (an ordered-set aggregate runs in one process): the
-- cost grows with the paid orders of the range (docs/benchmarks.md).
WITH bounds AS (
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), waits AS (
    SELECT width_bucket(o.created_at, CAST(:starts AS timestamptz[])) AS position,
           date_part('epoch', o.paid_at) - date_part('epoch', o.created_at) AS to_payment,
           date_part('epoch', o.shipped_at) - date_part('epoch', o.paid_at) AS to_shipment
      FROM orders o CROSS JOIN bounds b
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc AND o.paid_at IS NOT NULL
), per_period AS (
    SELECT position,
           count(*) AS paid,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY to_payment) AS payment,
           count(to_shipment) AS shipped,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY to_shipment) AS shipment
      FROM waits
     GROUP BY GROUPING SETS ((position), ())
)
SELECT period.day AS period,
       coalesce(pp.paid, 0) AS paid,
       pp.payment[1] AS payment_p50, pp.payment[2] AS payment_p90,
       coalesce(pp.shipped, 0) AS shipped,
       pp.shipment[1] AS shipment_p50, pp.shipment[2] AS shipment_p90
  FROM unnest(CAST(:periods AS date[])) WITH ORDINALITY AS period (day, position)
  LEFT JOIN per_period pp ON pp.position = period.position
UNION ALL
SELECT NULL, coalesce(paid, 0), payment[1], payment[2], coalesce(shipped, 0), shipment[1], shipment[2]
  FROM per_period WHERE position IS NULL
ORDER BY period NULLS LAST
