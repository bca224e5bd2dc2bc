-- customers.sql's report (the same rows, columns and meaning) read from the summaries: summary_spans.sql's periods,
-- their figures and their repeat orders, and for each span the revenue of its orders whose customer's first counted
-- order ever (first_counted_at) is in the same span: what customers new in the span spent in it.
--
-- Parameters: summary_spans.sql's, and :periods (date[], from revenue_periods.sql).
-- A period's customers are its orders less its repeats; its new customers its customers' first orders; new revenue
-- the revenue of orders inside it with their customer's first order. The totals: the range's (span 0), and its repeat
-- customers are its returning customers and its new customers who ordered again in it: those with an order after
-- their first whose previous one was placed with the first (second_orders: one each), and those whose orders all
-- share their first order's moment, two or more of them (read from ix_orders_tied_first_orders; none in practice).
-- The orders inside a span with their customer's first order, as summary_spans.sql counts repeats:
--   - a span of at most 25 hours: ix_orders_close_to_first (orders within 25 hours of their customer's first);
--   - a longer one: first_order_summary and its changes for the whole UTC days, then customers whose first order
--     is in the first partial day (ix_orders_by_first_order) and orders in the last partial day (ix_orders_customers).
WITH $SUMMARY_SPANS, with_first_inside AS (
    SELECT s.position, sum(o.total) AS revenue,
           count(*) FILTER (WHERE o.previous_counted_at = o.first_counted_at AND o.created_at > o.first_counted_at)
               AS second_orders
      FROM spans s
      JOIN orders o ON o.created_at >= s.from_utc AND o.created_at < s.until_utc
                   AND o.first_counted_at >= s.from_utc
                   AND o.created_at - o.first_counted_at < interval '25 hours'
                   AND o.status IN ($COUNTED_STATUSES)
     WHERE s.until_utc - s.from_utc <= interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, sum(g.revenue), sum(g.second_orders)
      FROM spans s
      JOIN first_order_summary g ON g.grain = 'd' AND g.first_day >= s.first_day AND g.starts_at < s.last_day
                                AND g.starts_at >= s.first_day
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, sum(c.revenue), sum(c.second_orders)
      FROM spans s
      JOIN first_order_summary_changes c ON c.first_day >= s.first_day AND c.starts_at < s.last_day
                                        AND c.starts_at >= s.first_day
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, sum(o.total),
           count(*) FILTER (WHERE o.previous_counted_at = o.first_counted_at AND o.created_at > o.first_counted_at)
      FROM spans s
      JOIN orders o ON o.first_counted_at >= s.from_utc AND o.first_counted_at < least(s.first_day, s.until_utc)
                   AND o.created_at < s.until_utc
                   AND o.status IN ($COUNTED_STATUSES)
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
    UNION ALL
    SELECT s.position, sum(o.total),
           count(*) FILTER (WHERE o.previous_counted_at = o.first_counted_at AND o.created_at > o.first_counted_at)
      FROM spans s
      JOIN orders o ON o.created_at >= greatest(s.last_day, s.first_day) AND o.created_at < s.until_utc
                   AND o.first_counted_at >= s.first_day
                   AND o.status IN ($COUNTED_STATUSES)
     WHERE s.until_utc - s.from_utc > interval '25 hours'
     GROUP BY s.position
), tied_first_orders AS (  -- new customers of the range with two or more orders at their first's moment, no later
    SELECT count(DISTINCT t.user_id) AS customers
      FROM spans s
      JOIN orders t ON t.first_counted_at >= s.from_utc AND t.first_counted_at < s.until_utc
                   AND t.created_at = t.first_counted_at AND t.previous_counted_at IS NOT NULL
                   AND t.status IN ($COUNTED_STATUSES)
     WHERE s.position = 0
       AND NOT EXISTS (SELECT FROM orders o
                        WHERE o.user_id = t.user_id AND o.status IN ($COUNTED_STATUSES)
                          AND o.created_at > t.first_counted_at AND o.created_at < s.until_utc)
), new_spent AS (
    SELECT position, sum(revenue) AS revenue, sum(second_orders) AS second_orders
      FROM with_first_inside
     GROUP BY position
), rows AS (
    SELECT period.day AS period,
           period.position,
           coalesce(pp.orders, 0) - coalesce(r.pairs, 0) AS customers,
           coalesce(pp.first_orders, 0) AS new_customers,
           coalesce(pp.revenue, 0) AS revenue,
           coalesce(n.revenue, 0) AS new_revenue
      FROM unnest(CAST(:periods AS date[])) WITH ORDINALITY AS period (day, position)
      LEFT JOIN per_period pp ON pp.position = period.position
      LEFT JOIN repeats r ON r.position = period.position
      LEFT JOIN new_spent n ON n.position = period.position
), range AS (
    SELECT coalesce(sum(pp.orders), 0) - (SELECT coalesce(sum(pairs), 0) FROM repeats WHERE position = 0) AS customers,
           coalesce(sum(pp.first_orders), 0) AS new_customers,
           coalesce(sum(pp.revenue), 0) AS revenue,
           (SELECT coalesce(sum(revenue), 0) FROM new_spent WHERE position = 0) AS new_revenue,
           (SELECT coalesce(sum(second_orders), 0) FROM new_spent WHERE position = 0)
           + (SELECT customers FROM tied_first_orders) AS new_repeaters
      FROM per_period pp
)
SELECT period,
       CAST(customers AS bigint),
       CAST(new_customers AS bigint),
       CAST(customers - new_customers AS bigint) AS returning_customers,
       new_revenue,
       revenue - new_revenue AS returning_revenue,
       NULL::bigint AS repeat_customers
  FROM rows
UNION ALL
SELECT NULL,
       CAST(customers AS bigint),
       CAST(new_customers AS bigint),
       CAST(customers - new_customers AS bigint),
       new_revenue,
       revenue - new_revenue,
       CAST(customers - new_customers + new_repeaters AS bigint)
  FROM range
ORDER BY period NULLS LAST
