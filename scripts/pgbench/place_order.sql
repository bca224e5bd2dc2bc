-- The transaction POST /api/v1/orders runs for a 3-line order, written out for pgbench: the database's
-- ceiling for order placement on this machine (scripts/bench.py runs it with -M prepared, 8 clients).
-- Variables: :uid (the ordering user, -D uid=...), :first and :span (the product ids to draw from,
-- -D first=1 -D span=333: three disjoint thirds of 1..999, so the three lines are distinct products).
\set a random(:first, :first + :span - 1)
\set b random(:first + :span, :first + 2 * :span - 1)
\set c random(:first + 2 * :span, :first + 3 * :span - 1)
\set n random(1, 2000000000)
BEGIN;
SET LOCAL lock_timeout = 2000;
SET LOCAL statement_timeout = 5000;
INSERT INTO idempotency_records (user_id, key, request_fingerprint)
     VALUES (:uid, 'pgbench-' || :client_id || '-' || :n, 'f')
ON CONFLICT (user_id, key) DO NOTHING;
SELECT id, sku, name, price, stock, is_active, version FROM products WHERE id IN (:a, :b, :c) ORDER BY id FOR UPDATE;
UPDATE products SET stock = stock - 1, version = version + 1, updated_at = now() WHERE id IN (:a, :b, :c);
WITH new_order AS (
    INSERT INTO orders (user_id, currency, total, units, shipping_address)
    SELECT CAST(:uid AS bigint), 'USD', sum(price), 3, '{"name": "pgbench"}'::jsonb FROM products WHERE id IN (:a, :b, :c)
    RETURNING id
), new_lines AS (
    INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price, line_total, category,
                             first_in_category)
    SELECT new_order.id, p.id, p.sku, p.name, 1, p.price, p.price, p.category,
           row_number() OVER (PARTITION BY p.category ORDER BY p.id) = 1
      FROM new_order, products p WHERE p.id IN (:a, :b, :c)
    RETURNING order_id
)
INSERT INTO order_status_changes (order_id, from_status, to_status, changed_by)
SELECT DISTINCT order_id, NULL, 'pending', CAST(:uid AS bigint) FROM new_lines;
UPDATE idempotency_records SET response_status = 201, response_body = '{}'
 WHERE user_id = :uid AND key = 'pgbench-' || :client_id || '-' || :n;
COMMIT;
