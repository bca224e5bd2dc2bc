-- revenue.sql's report (the same rows, columns and meaning) from the summaries of migration 0016, for ranges whose
-- periods all begin and end on UTC quarter hours (every zone's local midnights since standard time was adopted; the
-- caller runs revenue.sql for the rest).
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz, and from revenue_periods.sql :periods (date[]) and
-- :starts (timestamptz[], where each period's part of the range begins).
-- Orders, units, revenue and refunds: revenue_summary's rows for each period (whole UTC months and days, quarter
-- hours at its ends: summary_segments()) and the changes not yet folded in, bucketed by width_bucket.
-- Unique customers: a customer counts once in a period, at their first order in it, so a period's customers are its
-- orders less its orders whose customer's previous counted order (previous_counted_at) is in the same period; the
-- totals likewise over the whole range (span 0). Those pairs of orders inside a span are counted:
--   - for a span of at most 25 hours (a day, DST days included): from ix_orders_close_repeats, the orders placed
--     within 25 hours of their previous one (a few in a hundred);
--   - for a longer span: order_pair_summary (and its changes) for pairs placed on whole UTC days of the span, then
--     the two partial days at its ends from the orders: pairs whose earlier order is in the first partial day
--     (ix_orders_previous_counted), and pairs whose later order is in the last partial day (ix_orders_revenue).
WITH periods AS MATERIALIZED (
    SELECT p.position,
           p.starts_at AS from_utc,
           coalesce(lead(p.starts_at) OVER (ORDER BY p.position),
                    (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz) AS until_utc
      FROM unnest(CAST(:starts AS timestamptz[])) WITH ORDINALITY AS p (starts_at, position)
), spans AS MATERIALIZED (  -- the periods, and the whole range as span 0
    SELECT position, from_utc, until_utc,
           summary_ceiling('day', from_utc) AS first_day, summary_floor('day', until_utc) AS last_day
      FROM (SELECT position, from_utc, until_utc FROM periods
            UNION ALL
            SELECT 0, min(from_utc), max(until_utc) FROM periods) AS s
), figures AS (
    SELECT p.position, r.orders, r.units, r.revenue, r.refunds
      FROM periods p
     CROSS JOIN LATERAL summary_segments(p.from_utc, p.until_utc) AS s
      JOIN revenue_summary r ON r.grain = s.grain AND r.starts_at >= s.seg_from AND r.starts_at < s.seg_until
    UNION ALL
    SELECT width_bucket(c.starts_at, CAST(:starts AS timestamptz[])), c.orders, c.units, c.revenue, c.refunds
      FROM revenue_summary_changes c
     WHERE c.starts_at >= (SELECT from_utc FROM spans WHERE position = 0)
       AND c.starts_at < (SELECT until_utc FROM spans WHERE position = 0)
), per_period AS (
    SELECT position, sum(orders) AS orders, sum(units) AS units, sum(revenue) AS revenue, sum(refunds) AS refunds
      FROM figures
     GROUP BY position
), pairs_inside AS (
    SELECT s.position, count(*) AS pairs
      FROM spans s
      JOIN orders o ON o.created_at >= s.from_utc AND o.created_at < s.until_utc
                   AND o.previous_counted_at >= s.from_utc
                   AND o.created_at - o.previous_counted_at < interval '25 hours'
                   AND o.status IN ($COUNTED_STATUSES)
     WHERE s.until_utc - s.from_utc <= interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, sum(g.pairs)
      FROM spans s
      JOIN order_pair_summary g ON g.grain = 'd' AND g.previous_day >= s.first_day AND g.starts_at < s.last_day
                               AND g.starts_at >= s.first_day
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, sum(c.pairs)
      FROM spans s
      JOIN order_pair_summary_changes c ON c.previous_day >= s.first_day AND c.starts_at < s.last_day
                                       AND c.starts_at >= s.first_day
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, count(*)
      FROM spans s
      JOIN orders o ON o.previous_counted_at >= s.from_utc AND o.previous_counted_at < least(s.first_day, s.until_utc)
                   AND o.created_at < s.until_utc
                   AND o.status IN ($COUNTED_STATUSES) AND o.previous_counted_at IS NOT NULL
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, count(*)
      FROM spans s
      JOIN orders o ON o.created_at >= greatest(s.last_day, s.first_day) AND o.created_at < s.until_utc
                   AND o.previous_counted_at >= s.first_day
                   AND o.status IN ($COUNTED_STATUSES)
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
), repeats AS (
    SELECT position, sum(pairs) AS pairs FROM pairs_inside GROUP BY position
)
SELECT period.day AS period,
       CAST(coalesce(pp.orders, 0) AS bigint) AS orders,
       CAST(coalesce(pp.units, 0) AS bigint) AS units,
       coalesce(pp.revenue, 0) AS revenue,
       CAST(coalesce(pp.orders, 0) - coalesce(r.pairs, 0) AS bigint) AS unique_customers,
       sum(coalesce(pp.revenue, 0)) OVER (ORDER BY period.position) AS running_revenue,
       coalesce(pp.refunds, 0) AS refunds,
       coalesce(pp.revenue, 0) - coalesce(pp.refunds, 0) AS net
  FROM unnest(CAST(:periods AS date[])) WITH ORDINALITY AS period (day, position)
  LEFT JOIN per_period pp ON pp.position = period.position
  LEFT JOIN repeats r ON r.position = period.position
UNION ALL
SELECT NULL,
       CAST(coalesce(sum(orders), 0) AS bigint),
       CAST(coalesce(sum(units), 0) AS bigint),
       coalesce(sum(revenue), 0),
       CAST(coalesce(sum(orders), 0) - (SELECT coalesce(sum(pairs), 0) FROM repeats WHERE position = 0) AS bigint),
       NULL,
       coalesce(sum(refunds), 0),
       coalesce(sum(revenue), 0) - coalesce(sum(refunds), 0)
  FROM per_period
ORDER BY period NULLS LAST
