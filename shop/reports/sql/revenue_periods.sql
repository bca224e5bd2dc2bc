-- The periods of a revenue report: each day, ISO week (from Monday) or month of the range in the requested time
-- zone, in order, with the moment (UTC) its part of the range begins: its own start, or the range's start for a
-- first period that began before it; and the moment the range ends. revenue.sql counts the orders of each.
--
-- Parameters: :start, :end (dates, inclusive, in :tz), :tz (an IANA zone name), :granularity ('day', 'week'
-- or 'month'; checked by the caller).
-- Index: none; at most a few thousand rows computed from the parameters.
SELECT array_agg(CAST(local_start AS date) ORDER BY local_start) AS periods,
       array_agg(greatest(local_start AT TIME ZONE :tz, CAST(:start AS date)::timestamp AT TIME ZONE :tz)
                 ORDER BY local_start) AS starts,
       (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz AS until_utc
  FROM generate_series(
           date_trunc(:granularity, CAST(:start AS date)::timestamp),
           CAST(:end AS date)::timestamp,
           CAST('1 ' || :granularity AS interval)
       ) AS local_start
