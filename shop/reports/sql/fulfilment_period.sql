-- Some periods' fulfilment timings: how long the orders placed in each waited from placement to payment and from
-- payment to shipment, median and 90th percentile in seconds, interpolated (percentile_cont), exactly.
--
-- A template, not a statement: one branch of shop/reports/fulfilment.py's UNION ALL, a period (or a run of consecutive
-- ones) each, with fulfilment_totals.sql's two after them; its placeholders ($N, $POSITION, $IN_BRANCH) and parameters
-- (:starts_$N, :first_$N, :until_$N) are shop/reports/branches.py's. PostgreSQL runs the branches side by side in its
-- parallel workers: an ordered-set aggregate sorts in one process, and one query grouping by period sorted every
-- period's waits in turn, then the range's (724 against 411 ms over twelve months of a million orders). Parameters also
-- :end and :tz, for where the range ends.
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
 WHERE $IN_BRANCH
   AND o.paid_at IS NOT NULL
 GROUP BY 1
