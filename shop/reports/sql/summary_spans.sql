-- Not a statement: the common table expressions that revenue_summarized.sql and customers_summarized.sql begin with
-- (shop/reports/queries.py puts them in place), reading the summaries of migration 0016 for the periods of
-- revenue_periods.sql, when they all begin and end on UTC quarter hours (every zone's local midnights since standard
-- time was adopted; the callers read the orders for the rest).
--
-- Parameters: :end (date, inclusive, in :tz), :tz, and from revenue_periods.sql :starts (timestamptz[], where each
-- period's part of the range begins).
--   periods     each period's [from_utc, until_utc)
--   spans       the periods, and the whole range as span 0, with the first and last UTC midnights in each
--   per_period  orders, units, revenue, refunds and customers' first orders (first_orders) of each period:
--               revenue_summary's rows (whole UTC months and days, quarter hours at its ends: summary_segments()) and
--               the changes not yet folded in, bucketed by width_bucket
--   repeats     for each span, its orders whose customer's previous counted order (previous_counted_at) is in the
--               same span: a customer counts once in a span, at their first order in it, so its customers are its
--               orders less these. Counted
--                 - for a span of at most 25 hours (a day, DST days included): from ix_orders_close_repeats, the
--                   orders placed within 25 hours of their previous one (a few in a hundred);
--                 - for a longer span: order_pair_summary (and its changes) for pairs placed on whole UTC days of
--                   the span, then the two partial days at its ends from the orders: pairs whose earlier order is in
--                   the first partial day (ix_orders_previous_counted), and pairs whose later order is in the last
--                   partial day (ix_orders_customers).
periods AS MATERIALIZED (
    SELECT p.position,
           p.starts_at AS from_utc,
           coalesce(lead(p.starts_at) OVER (ORDER BY p.position),
                    (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz) AS until_utc
      FROM unnest(CAST(:starts AS timestamptz[])) WITH ORDINALITY AS p (starts_at, position)
), spans AS MATERIALIZED (
    SELECT position, from_utc, until_utc,
           summary_ceiling('day', from_utc) AS first_day, summary_floor('day', until_utc) AS last_day
      FROM (SELECT position, from_utc, until_utc FROM periods
            UNION ALL
            SELECT 0, min(from_utc), max(until_utc) FROM periods) AS s
), figures AS (
    SELECT p.position, r.orders, r.units, r.revenue, r.refunds, r.first_orders
      FROM periods p
     CROSS JOIN LATERAL summary_segments(p.from_utc, p.until_utc) AS s
      JOIN revenue_summary r ON r.grain = s.grain AND r.starts_at >= s.seg_from AND r.starts_at < s.seg_until
    UNION ALL
    SELECT width_bucket(c.starts_at, CAST(:starts AS timestamptz[])), c.orders, c.units, c.revenue, c.refunds,
           c.first_orders
      FROM revenue_summary_changes c
     WHERE c.starts_at >= (SELECT from_utc FROM spans WHERE position = 0)
       AND c.starts_at < (SELECT until_utc FROM spans WHERE position = 0)
), per_period AS (
    SELECT position, sum(orders) AS orders, sum(units) AS units, sum(revenue) AS revenue, sum(refunds) AS refunds,
           sum(first_orders) AS first_orders
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
