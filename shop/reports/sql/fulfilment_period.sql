-- Some periods' fulfilment timings: how long the orders placed in each waited from placement to payment and from
-- payment to shipment, median and 90th percentile in seconds, interpolated (percentile_cont), exactly.
--
-- A template, not a statement: shop/reports/fulfilment.py repeats it as the branches of one UNION ALL (with
-- fulfilment_totals.sql's two after them), one per period (or, for ranges of many periods, per run of consecutive
-- ones), so that PostgreSQL runs the branches side by side in its parallel workers (Parallel Append): an
-- ordered-set aggregate sorts in one process, and one query grouping by period sorted every period's waits in
-- turn, then the range's (724 against 411 ms over twelve months of a million orders). Our own substitutions, never
-- input: `$N`, the branch's number; `$POSITION`, its period's number for a branch of one period (a constant: no
-- sort to group by), or for a run `CAST(:first_$N AS integer) - 1 + width_bucket(o.created_at, :starts_$N)` (each
-- order in the last of the run's periods it follows).
--
-- Parameters: :starts_$N (timestamptz[], where each of the branch's periods begins: an order belongs to the last
-- one it follows, width_bucket), :first_$N (the number of the branch's first period, counting from 1), :until_$N
-- (where its last period ends; NULL for the range's last, which ends with the range: the day after :end in :tz).
-- Counts every order placed in the period that was paid (cancelled after payment or not): its wait for payment;
-- and of those, every one shipped: its wait for shipment.
-- Index: ix_orders_fulfilment, partial on paid orders, on created_at and covering paid_at and shipped_at, read from
-- the index alone.
SELECT $POSITION AS position,
       count(*) AS paid,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY date_part('epoch', o.paid_at - o.created_at)) AS payment,
       count(o.shipped_at) AS shipped,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY date_part('epoch', o.shipped_at - o.paid_at)) AS shipment
  FROM orders o
 WHERE o.created_at >= (CAST(:starts_$N AS timestamptz[]))[1]
   AND o.created_at < coalesce(CAST(:until_$N AS timestamptz), (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz)
   AND o.paid_at IS NOT NULL
 GROUP BY 1
