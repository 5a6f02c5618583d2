-- What the ledger records of orders: every order, line and payment change, and of products
-- only what is not derived from those. A product's reserved stock is rebuilt from the ledger.
BEGIN;
SELECT plan(8);

DO $$
BEGIN
    PERFORM core.create_tenant('Ledger', 'ledg', 'l@ledg.test');
    PERFORM app.set_context('ledg', 'l@ledg.test');
    PERFORM app.create_customer('{"name": "C", "email": "c@ledg.test"}');
    PERFORM app.create_product('{"sku": "A", "name": "A", "price": 2.50, "stock": 10}');
    PERFORM app.create_product('{"sku": "B", "name": "B", "price": 4, "stock": 10}');
    PERFORM core.use_tenant(NULL);
    PERFORM set_config('strata.actor_id', '', true);
END
$$;

SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('ledg', 'l@ledg.test')$$, 'context');
-- ORD-000001 is paid, ORD-000002 grows and is cancelled, ORD-000003 is shipped, ORD-000004
-- waits; then A is restocked.
SELECT is(ARRAY[
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 2}, {"product": "B", "quantity": 1}]}')).status,
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 3}]}')).status,
    (app.add_order_item('{"order": "ORD-000002", "product": "B", "quantity": 2, "version": 1}')).status,
    (app.add_order_item('{"order": "ORD-000002", "product": "A", "quantity": 1, "version": 2}')).status,
    (app.process_payment('{"order": "ORD-000001", "amount": 9, "method": "cash", "version": 1}')).status,
    (app.cancel_order('{"order": "ORD-000002", "reason": "changed mind", "version": 3}')).status,
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "B", "quantity": 4}]}')).status,
    (app.process_payment('{"order": "ORD-000003", "amount": 16, "method": "card", "version": 1}')).status,
    (app.update_order_status('{"order": "ORD-000003", "status": "shipped", "version": 2}')).status,
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}]}')).status,
    (app.restock_product('{"product": "A", "quantity": 5}')).status],
    '{created,created,updated,updated,updated,updated,created,updated,updated,created,updated}'::text[],
    'orders made, grown, paid, cancelled and shipped, and a product restocked');
RESET ROLE;

-- As the superuser, who bypasses RLS, so everything is read for this test's tenant only.
CREATE TEMP VIEW ledger AS
SELECT e.* FROM audit.events AS e JOIN tenancy.tb_organization AS o ON o.tenant_id = e.tenant_id WHERE o.slug = 'ledg';
CREATE TEMP VIEW products AS
SELECT p.* FROM orders.tb_product AS p JOIN tenancy.tb_organization AS o ON o.tenant_id = p.tenant_id WHERE o.slug = 'ledg';

SELECT is((SELECT array_agg(operation || ':' || identifier ORDER BY pk_event) FROM ledger WHERE entity_type = 'product'),
          '{insert:A,insert:B,update:B,update:A}'::text[],
          'products have events for being made, shipped and restocked, not for each reservation');
SELECT is((SELECT changed_fields FROM ledger WHERE entity_type = 'product' AND operation = 'update' AND identifier = 'B'),
          '{stock_on_hand,stock_reserved,version}'::text[], 'shipping takes stock off hand and out of the reservation');
SELECT is((SELECT array_agg(e.new_data ->> 'stock_reserved' ORDER BY e.pk_event) FROM ledger AS e
            WHERE e.entity_type = 'product' AND e.operation = 'update'),
          '{1,3}'::text[], 'a product''s events record its reservation as it then was');
SELECT is((SELECT count(*)::integer FROM ledger WHERE entity_type = 'order_item'), 7,
          'every line, and every change to one, is an event');

-- Rebuilt from the ledger alone: each line as its last event left it, each order's last
-- status; the lines of pending and paid orders are what each product has reserved.
SELECT is((WITH line AS (
               SELECT DISTINCT ON (e.entity_id) e.operation, e.new_data
                 FROM ledger AS e WHERE e.entity_type = 'order_item' ORDER BY e.entity_id, e.pk_event DESC
           ), open_order AS (
               SELECT o.new_data ->> 'pk_order' AS pk_order
                 FROM (SELECT DISTINCT ON (e.entity_id) e.new_data
                         FROM ledger AS e WHERE e.entity_type = 'order' AND e.operation IN ('insert', 'update')
                        ORDER BY e.entity_id, e.pk_event DESC) AS o
                WHERE o.new_data ->> 'status' IN ('pending', 'paid')
           ), reserved AS (
               SELECT (l.new_data ->> 'fk_product')::bigint AS fk_product, sum((l.new_data ->> 'quantity')::integer) AS units
                 FROM line AS l JOIN open_order AS o ON o.pk_order = l.new_data ->> 'fk_order'
                WHERE l.operation <> 'delete'
                GROUP BY 1
           )
           SELECT jsonb_object_agg(p.identifier, coalesce(r.units, 0))
             FROM products AS p LEFT JOIN reserved AS r ON r.fk_product = p.pk_product),
          (SELECT jsonb_object_agg(p.identifier, p.stock_reserved) FROM products AS p),
          'every product''s reserved stock is what the ledger''s open order lines add up to');
SELECT is((SELECT jsonb_object_agg(p.identifier, p.stock_reserved ORDER BY p.identifier) FROM products AS p),
          '{"A": 3, "B": 1}'::jsonb, 'which is A: 2 paid and 1 pending, B: 1 paid');

SELECT * FROM finish();
ROLLBACK;
