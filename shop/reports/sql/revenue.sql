-- Revenue per period of the range, empty periods included with zeros, each with the running revenue; then one
-- totals row (period NULL) whose unique_customers counts each customer once over the whole range.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), and from revenue_periods.sql
-- :periods (date[], the periods in order) and :starts (timestamptz[], when each period's part of the range begins).
-- Counts orders whose status is paid, shipped or delivered, by the moment they were placed.
-- Index: ix_orders_revenue, partial on the counted statuses, on created_at and covering user_id, total, units and
-- previous_counted_at: the local date range becomes a created_at range in UTC, read from the index alone, in
-- parallel. An order falls in the period whose start it follows (width_bucket: no time zone arithmetic per
-- order). A customer counts once in a period at their first order in it: the one whose previous counted order
-- (orders.previous_counted_at, kept by the order code) came before the period began; no DISTINCT to sort.
-- Refunds count in the period they were paid out (a March refund of a February order lowers March), from the ledger:
-- ix_ledger_entries_refunds, partial on refunds of orders in the revenue, on occurred_at and covering amount.
-- net = revenue - refunds, in every row and in the totals.
WITH bounds AS NOT MATERIALIZED (  -- read twice: inlined into each, so neither scan loses its parallel plan
    SELECT CAST(:start AS date)::timestamp AT TIME ZONE :tz AS from_utc,
           (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
), per_period AS (
    SELECT p.position,
           count(*) AS orders,
           sum(o.units) AS units,
           sum(o.total) AS revenue,
           count(*) FILTER (WHERE o.previous_counted_at IS NULL OR o.previous_counted_at < p.starts_at)
               AS unique_customers,
           count(*) FILTER (WHERE o.previous_counted_at IS NULL OR o.previous_counted_at < b.from_utc)
               AS new_in_range
      FROM orders o
      CROSS JOIN bounds b
      JOIN unnest(CAST(:starts AS timestamptz[])) WITH ORDINALITY AS p (starts_at, position)
        ON p.position = width_bucket(o.created_at, CAST(:starts AS timestamptz[]))
     WHERE o.created_at >= b.from_utc AND o.created_at < b.until_utc
       AND o.status IN ($COUNTED_STATUSES)
     GROUP BY p.position
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
