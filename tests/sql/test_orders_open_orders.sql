-- The inventory's "in orders" column (orders.tb_product_open_orders, kept by triggers) agrees
-- with a live count of open orders after every kind of write: the app commands as a login
-- granted strata_app, and the owner's direct writes; core.recount_open_orders() repairs it.
BEGIN;
SELECT plan(35);

DO $$
BEGIN
    PERFORM core.create_tenant('Shop', 'shop', 'owner@shop.test');
    PERFORM core.create_tenant('Rival', 'rival', 'owner@rival.test');
    PERFORM core.use_tenant(NULL);
END
$$;
-- What the view says, and what counting the open orders says, for every product of the tenant
-- in context: 'SKU:in_orders' pairs, in SKU order.
CREATE FUNCTION pg_temp.in_orders() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(format('%s:%s', sku, in_orders), ' ' ORDER BY sku) FROM app.v_product_inventory
$$;
-- Counted from the orders' own documents, through the views: strata_app cannot name the
-- tables (core.setup_tenant_table).
CREATE FUNCTION pg_temp.counted() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(format('%s:%s', p.sku,
                             (SELECT count(*) FROM app.v_order_details AS o
                               WHERE o.status IN ('pending', 'paid')
                                 AND EXISTS (SELECT 1 FROM jsonb_array_elements(o.data -> 'items') AS it
                                              WHERE it ->> 'productId' = p.id::text))), ' ' ORDER BY p.sku)
      FROM app.v_product_inventory AS p
$$;
CREATE FUNCTION pg_temp.version(p_order text) RETURNS integer LANGUAGE sql AS $$
    SELECT version FROM app.v_order_details WHERE identifier = p_order
$$;

SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('rival', 'owner@rival.test')$$, 'the other tenant''s owner takes the context');
SELECT is((app.create_product('{"sku": "A", "name": "Rival A", "price": 1, "stock": 50}')).status, 'created', 'the other tenant has a product A');
SELECT is((app.create_customer('{"name": "R", "email": "r@rival.test"}')).status, 'created', 'and a customer');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}]}')).status, 'created', 'and an open order for A');

SELECT lives_ok($$SELECT app.set_context('shop', 'owner@shop.test')$$, 'the shop''s owner takes the context');
SELECT is((SELECT count(*) FROM unnest(ARRAY['A', 'B', 'C']) AS sku,
                  app.create_product(format('{"sku": "%s", "name": "Product %s", "price": 10, "stock": 50}', sku, sku)::jsonb) AS r
            WHERE r.status = 'created'), 3::bigint, 'the shop has products A, B and C');
SELECT is((app.create_customer('{"name": "Ada", "email": "ada@shop.test"}')).status, 'created', 'and a customer');
SELECT is(pg_temp.in_orders(), 'A:0 B:0 C:0', 'no orders: no product is in orders, and the other tenant''s order does not show');

SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}, {"product": "B", "quantity": 2}]}')).identifier,
          'ORD-000001', 'an order for A and B');
SELECT is(pg_temp.in_orders(), 'A:1 B:1 C:0', 'A and B are each in one order');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}, {"product": "a", "quantity": 2}, {"product": "C", "quantity": 1}]}')).identifier,
          'ORD-000002', 'an order for A twice (one line) and C');
SELECT is(pg_temp.in_orders(), 'A:2 B:1 C:1', 'A counts the second order once');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "C", "quantity": 1}, {"product": "B", "quantity": 99}]}')).status,
          'conflict:insufficient_stock', 'a refused order');
SELECT is(pg_temp.in_orders(), 'A:2 B:1 C:1', 'a refused order counts nowhere');

SELECT is((app.add_order_item(format('{"order": "ORD-000001", "product": "C", "quantity": 1, "version": %s}', pg_temp.version('ORD-000001'))::jsonb)).status,
          'updated', 'C added to ORD-000001');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "A", "quantity": 1}')).status, 'updated', 'more A on ORD-000001 (its line grows)');
SELECT is(pg_temp.in_orders(), 'A:2 B:1 C:2', 'a new line counts, a longer line does not');

SELECT is((app.process_payment(format('{"order": "ORD-000001", "amount": %s, "method": "card", "version": %s}',
                                      (SELECT total_amount FROM app.v_order_details WHERE identifier = 'ORD-000001'),
                                      pg_temp.version('ORD-000001'))::jsonb)).status, 'updated', 'ORD-000001 paid');
SELECT is(pg_temp.in_orders(), 'A:2 B:1 C:2', 'a paid order is still open');
SELECT is((app.update_order_status(format('{"order": "ORD-000001", "status": "shipped", "version": %s}', pg_temp.version('ORD-000001'))::jsonb)).status,
          'updated', 'ORD-000001 shipped');
SELECT is(pg_temp.in_orders(), 'A:1 B:0 C:1', 'a shipped order no longer counts');
SELECT is((app.cancel_order('{"order": "ORD-000002", "reason": "Changed my mind"}')).status, 'updated', 'ORD-000002 cancelled');
SELECT is(pg_temp.in_orders(), 'A:0 B:0 C:0', 'a cancelled order no longer counts');
SELECT is(pg_temp.in_orders(), pg_temp.counted(), 'after the commands the view agrees with a live count');

-- The owner writes lines directly: still counted, and one line per product per order holds.
RESET ROLE;
SET LOCAL ROLE strata_owner;
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}]}')).identifier,
          'ORD-000003', 'the owner runs create_order too');
SELECT throws_ok($$INSERT INTO orders.tb_order_item (tenant_id, identifier, fk_order, fk_product, line_number, quantity, unit_price, line_total)
                   SELECT o.tenant_id, 'ORD-000003-9', o.pk_order, p.pk_product, 9, 1, 10, 10
                     FROM orders.tb_order AS o, orders.tb_product AS p WHERE o.identifier = 'ORD-000003' AND p.sku = 'A'$$,
                 '23505', NULL, 'a second line for the same product in one order is refused');
UPDATE orders.tb_order_item SET fk_product = (SELECT pk_product FROM orders.tb_product WHERE sku = 'B')
 WHERE identifier = 'ORD-000003-1';
SELECT is(pg_temp.in_orders(), 'A:0 B:1 C:0', 'a line moved to another product moves its count');
DELETE FROM orders.tb_order_item WHERE identifier = 'ORD-000003-1';
SELECT is(pg_temp.in_orders(), 'A:0 B:0 C:0', 'a deleted line of an open order no longer counts');
-- The owner reopens a cancelled order (A and C) and closes it again.
UPDATE orders.tb_order SET status = 'pending' WHERE identifier = 'ORD-000002';
SELECT is(pg_temp.in_orders(), 'A:1 B:0 C:1', 'a reopened order counts its products again');
SELECT is(pg_temp.in_orders(), pg_temp.counted(), 'and the view agrees with a live count');
UPDATE orders.tb_order SET status = 'cancelled' WHERE identifier = 'ORD-000002';
SELECT is(pg_temp.in_orders(), 'A:0 B:0 C:0', 'closed again, it no longer counts');

-- Repair: a count made wrong by hand (as after a bulk load with triggers off) is recounted.
UPDATE orders.tb_product_open_orders SET open_orders = 7;
SELECT is(core.recount_open_orders(), 0, 'recount: no product is in an open order');
SELECT is(pg_temp.in_orders(), pg_temp.counted(), 'recount: the view agrees with a live count again');
SELECT lives_ok('SELECT core.use_tenant(NULL)', 'leave the tenant');
SELECT throws_ok('SELECT core.recount_open_orders()', '22023', 'no tenant in context', 'recount needs a tenant in context');

SELECT * FROM finish();
ROLLBACK;
