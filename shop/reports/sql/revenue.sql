-- Revenue per period of the range, empty periods included with zeros, each with the running revenue; then one
-- totals row (period NULL) whose unique_customers counts each customer once over the whole range.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), from revenue_periods.sql
-- :periods (date[], the periods in order) and :starts (timestamptz[], when each period's part of the range begins),
-- and the parameters of per_period's branches (revenue_period.sql once per period, or per run of periods, put
-- together by shop/reports/branches.py: each period's orders are a scan of their own with its start a constant,
-- and the scans run side by side).
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- Index: ix_orders_revenue, partial on the counted statuses, on created_at and covering user_id, total, units and
-- previous_counted_at: the local date range becomes a created_at range in UTC, read from the index alone. An
-- order falls in the period whose start it follows (no time zone arithmetic per order). A customer counts once in
-- a period at their first order in it: the one whose previous counted order (orders.previous_counted_at, kept by
-- the order code) came before the period began; no DISTINCT to sort.
-- Refunds count in the period they were paid out (a March refund of a February order lowers March), from the ledger:
-- ix_ledger_entries_refunds, partial on refunds of orders in the revenue, on occurred_at and covering amount.
-- net = revenue - refunds, in every row and in the totals.
WITH bounds AS NOT MATERIALIZED (  -- inlined where it is read, so the refunds' scan keeps its parallel plan
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), per_period AS (  -- a UNION ALL branch per period (revenue_period.sql), run side by side
$PER_PERIOD
), refunded AS (
    SELECT width_bucket(e.occurred_at, CAST(:starts AS timestamptz[])) AS position, sum(e.amount) AS refunds
      FROM ledger_entries e CROSS JOIN bounds b
     WHERE e.kind = 'refund' AND e.in_revenue AND e.occurred_at >= b.from_utc AND e.occurred_at < b.until_utc
     GROUP BY 1
)
SELECT period.day AS period,
       coalesce(pp.orders, 0) AS orders,
       coalesce(pp.units, 0) AS units,
       coalesce(pp.revenue, 0) AS revenue,
       coalesce(pp.unique_customers, 0) AS unique_customers,
       sum(coalesce(pp.revenue, 0)) OVER (ORDER BY period.position) AS running_revenue,
       coalesce(r.refunds, 0) AS refunds,
       coalesce(pp.revenue, 0) - coalesce(r.refunds, 0) AS net
  FROM unnest(CAST(:periods AS date[])) WITH ORDINALITY AS period (day, position)
  LEFT JOIN per_period pp ON pp.position = period.position
  LEFT JOIN refunded r ON r.position = period.position
UNION ALL
SELECT NULL,
       CAST(coalesce(sum(orders), 0) AS bigint),
       CAST(coalesce(sum(units), 0) AS bigint),
       coalesce(sum(revenue), 0),
       CAST(coalesce(sum(new_in_range), 0) AS bigint),
       NULL,
       (SELECT coalesce(sum(refunds), 0) FROM refunded),
       coalesce(sum(revenue), 0) - (SELECT coalesce(sum(refunds), 0) FROM refunded)
  FROM per_period
ORDER BY period NULLS LAST
