-- revenue.sql's report (the same rows, columns and meaning) read from the summaries: summary_spans.sql's periods,
-- their figures and their repeat orders. A period's unique customers are its orders less its repeats; the totals'
-- are the range's (span 0).
--
-- Parameters: summary_spans.sql's, and :periods (date[], from revenue_periods.sql).
WITH $SUMMARY_SPANS
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
