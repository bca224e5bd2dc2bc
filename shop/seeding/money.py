"""The money of a seeded store, made from its orders in SQL once they are loaded: a full refund for every paid order
later cancelled; returns of about 3% of delivered orders (one unit of their first line, back in stock unless it is
one of the one in five damaged) each refunded; and a goodwill refund (a tenth of the total) on about 1% of shipped
orders. (The ledger's captures, one of its total for every paid order, are loaded with the orders:
StoreGenerator.capture_rows().) The picks hash the order's id, so the same seed gives the same rows. Each step is
in its order's history, as the service would have written it. Nothing happens at or after `until` (the seed's
"now").
"""

from __future__ import annotations

import sqlalchemy as sa

PROVIDER = "demo-pay"

# the refunds to make, numbered: returns (with their line), refunds of cancelled paid orders, goodwill
PLAN = sa.text(
    """
    CREATE TEMPORARY TABLE seed_refunds ON COMMIT DROP AS
    WITH returned AS (  -- each picked order's first line: one hash join, the tables have no statistics yet
        SELECT DISTINCT ON (o.id)
               o.id AS order_id, o.user_id, o.currency, i.id AS item_id, i.product_id, i.category,
               i.unit_price AS amount,
               o.delivered_at + make_interval(days => 1 + (o.id % 5)::int) AS requested_at,
               o.delivered_at + make_interval(days => 4 + (o.id % 5)::int) AS at,
               o.id % 5 = 0 AS damaged, 'returned' AS reason, true AS in_revenue
          FROM orders o JOIN order_items i ON i.order_id = o.id
         WHERE o.status = 'delivered' AND (o.id * 7919) % 100 < 3
           AND o.delivered_at + make_interval(days => 4 + (o.id % 5)::int) + interval '2 hours' < :until
         ORDER BY o.id, i.id
    ), cancelled AS (
        SELECT id AS order_id, user_id, currency, NULL::bigint AS item_id, NULL::bigint AS product_id,
               NULL::text AS category, total AS amount, NULL::timestamptz AS requested_at,
               cancelled_at + interval '1 hour' AS at, false AS damaged, 'order cancelled' AS reason,
               false AS in_revenue
          FROM orders WHERE status = 'cancelled' AND paid_at IS NOT NULL
           AND cancelled_at + interval '3 hours' < :until
    ), goodwill AS (
        SELECT id AS order_id, user_id, currency, NULL::bigint, NULL::bigint, NULL::text,
               greatest(round(total / 10, 2), 0.01), NULL::timestamptz, shipped_at + interval '2 days', false,
               'goodwill: late delivery', true
          FROM orders
         WHERE status IN ('shipped', 'delivered') AND (id * 104729) % 100 = 50
           AND shipped_at + interval '2 days 2 hours' < :until
    )
    SELECT row_number() OVER (ORDER BY at, order_id) AS id, * FROM (
        SELECT * FROM returned UNION ALL SELECT * FROM cancelled UNION ALL SELECT * FROM goodwill
    ) r
    """
)
RETURNS = sa.text(
    """
    INSERT INTO returns (id, order_id, status, reason, requested_by, requested_at, received_by, received_at)
    SELECT id, order_id, 'received', 'did not suit', user_id, requested_at, :staff_id, at
      FROM seed_refunds WHERE item_id IS NOT NULL;
    INSERT INTO return_lines (return_id, order_item_id, product_id, quantity, received, damaged)
    SELECT id, item_id, product_id, 1, CASE WHEN damaged THEN 0 ELSE 1 END, CASE WHEN damaged THEN 1 ELSE 0 END
      FROM seed_refunds WHERE item_id IS NOT NULL;
    UPDATE products p SET stock = p.stock + r.back
      FROM (SELECT product_id, count(*) AS back FROM seed_refunds WHERE item_id IS NOT NULL AND NOT damaged
             GROUP BY product_id) r
     WHERE p.id = r.product_id;
    INSERT INTO refunds (id, order_id, amount, currency, reason, status, provider, provider_reference, return_id,
                         created_by, created_at, succeeded_at)
    SELECT id, order_id, amount, currency, reason, 'succeeded', :provider, 're-' || id,
           CASE WHEN item_id IS NOT NULL THEN id END, :staff_id, at, at + interval '2 hours'
      FROM seed_refunds;
    INSERT INTO refund_lines (refund_id, order_item_id, product_id, category, quantity, amount, restocked)
    SELECT id, item_id, product_id, category, 1, amount, 0 FROM seed_refunds WHERE item_id IS NOT NULL;
    INSERT INTO ledger_entries (order_id, kind, amount, currency, occurred_at, provider, reference, refund_id,
                                in_revenue)
    SELECT order_id, 'refund', amount, currency, at + interval '2 hours', :provider, 're-' || id, id, in_revenue
      FROM seed_refunds;
    INSERT INTO order_status_changes (order_id, from_status, to_status, changed_by, changed_at, note, event)
    SELECT r.order_id, o.status, o.status, step.who, step.at, step.note, step.event
      FROM seed_refunds r JOIN orders o ON o.id = r.order_id
     CROSS JOIN LATERAL (VALUES
           (r.user_id, r.requested_at, 'return ' || r.id || ' of 1 unit requested', 'return.requested'),
           (:staff_id, r.at, 'return ' || r.id || ' received', 'return.received'),
           (:staff_id, r.at, 'refund ' || r.id || ' of ' || r.amount || ' ' || r.currency || ': ' || r.reason,
            'refund.created'),
           (NULL, r.at + interval '2 hours', 'refund ' || r.id || ' paid out by ' || :provider, 'refund.succeeded')
     ) AS step (who, at, note, event)
     WHERE step.at IS NOT NULL AND (r.item_id IS NOT NULL OR step.event LIKE 'refund.%')
    """
)
# each customer's pending orders and their units (the unpaid limit's counts)
UNPAID = sa.text(
    """
    UPDATE users u SET unpaid_orders = p.orders, unpaid_units = p.units
      FROM (SELECT user_id, count(*) AS orders, sum(units) AS units FROM orders WHERE status = 'pending'
             GROUP BY user_id) p
     WHERE u.id = p.user_id
    """
)
MONEY_TABLES = ("ledger_entries", "refund_lines", "refunds", "return_lines", "returns", "payment_notifications")
# tables whose ids were written explicitly: the next ids handed out follow them
NUMBERED = ("refunds", "returns")
