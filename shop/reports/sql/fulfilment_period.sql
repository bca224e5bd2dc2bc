-- One period's fulfilment timings: how long the orders placed in it waited from placement to payment and from
-- payment to shipment, median and 90th percentile in seconds, interpolated (percentile_cont), exactly.
--
-- A template, not a statement: shop/reports/fulfilment.py repeats it once per period of the range as the branches
-- of one UNION ALL (with fulfilment_totals.sql's two after them), `$N` becoming the period's number (our own
-- substitution, never input), so that PostgreSQL runs the branches side by side in its parallel workers (Parallel
-- Append): an ordered-set aggregate sorts in one process, and one query grouping by period sorted every period's
-- waits in turn, then the range's (about 900 against 610 ms over twelve months of a million orders).
--
-- Parameters: :from_$N (timestamptz, where the period's part of the range begins), :until_$N (where it ends; NULL
-- for the last period, which ends with the range: the day after :end begins in :tz).
-- Counts every order placed in the period that was paid (cancelled after payment or not): its wait for payment;
-- and of those, every one shipped: its wait for shipment.
-- Index: ix_orders_fulfilment, partial on paid orders, on created_at and covering paid_at and shipped_at, read from
-- the index alone.
SELECT CAST($N AS integer) AS position,
       count(*) AS paid,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY date_part('epoch', o.paid_at) - date_part('epoch', o.created_at)) AS payment,
       count(o.shipped_at) AS shipped,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY date_part('epoch', o.shipped_at) - date_part('epoch', o.paid_at)) AS shipment
  FROM orders o
 WHERE o.created_at >= CAST(:from_$N AS timestamptz)
   AND o.created_at < coalesce(CAST(:until_$N AS timestamptz), (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz)
   AND o.paid_at IS NOT NULL
