-- An order's history is its ledger events, and folding them rebuilds the order; the ledger's
-- order lines and statuses rebuild every product's reserved stock, which is not an event of
-- the product (sql/orders/90_ledger.sql).
BEGIN;
SELECT plan(18);

DO $$
BEGIN
    PERFORM core.create_tenant('History', 'hist', 'h@hist.test');
    PERFORM app.set_context('hist', 'h@hist.test');
    PERFORM app.create_customer('{"name": "C", "email": "c@hist.test"}');
    PERFORM app.create_product('{"sku": "A", "name": "A", "price": 2.50, "stock": 10}');
    PERFORM app.create_product('{"sku": "B", "name": "B", "price": 4, "stock": 10}');
    PERFORM core.use_tenant(NULL);
    PERFORM set_config('strata.actor_id', '', true);
END
$$;
-- An order, its lines and its payments, each folded from its own events in the history: an
-- insert's data, then each update's changed fields on top, a delete removing it; keyed by
-- entity and id. And the same from the tables now, without the internal keys (pk_*, fk_*)
-- that the history leaves out. As the superuser, who bypasses RLS, the rows are picked by
-- tenant too: the database `strata test` checks may hold other tenants' ORD-000001.
CREATE FUNCTION pg_temp.fold(p_order text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_state jsonb := '{}';
    v_event record;
    v_key   text;
BEGIN
    FOR v_event IN SELECT * FROM app.order_history(p_order) WHERE operation IN ('insert', 'update', 'delete') LOOP
        v_key := v_event.entity_type || ':' || (v_event.data ->> 'id');
        IF v_event.operation = 'insert' THEN
            v_state := v_state || jsonb_build_object(v_key, v_event.data);
        ELSIF v_event.operation = 'delete' THEN
            v_state := v_state - v_key;
        ELSE
            v_state := v_state || jsonb_build_object(v_key, (v_state -> v_key)
                || (SELECT jsonb_object_agg(f, v_event.data -> f) FROM unnest(v_event.changed_fields) AS f));
        END IF;
    END LOOP;
    RETURN v_state;
END
$$;
CREATE FUNCTION pg_temp.current_rows(p_order text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_object_agg(r.entity || ':' || (r.data ->> 'id'), core.without_internal_keys(r.data))
      FROM orders.tb_order AS o
      CROSS JOIN LATERAL (
            SELECT 'order', to_jsonb(o)
            UNION ALL
            SELECT 'order_item', to_jsonb(it) FROM orders.tb_order_item AS it
             WHERE it.tenant_id = o.tenant_id AND it.fk_order = o.pk_order
            UNION ALL
            SELECT 'payment', to_jsonb(pm) FROM orders.tb_payment AS pm
             WHERE pm.tenant_id = o.tenant_id AND pm.fk_order = o.pk_order) AS r (entity, data)
     WHERE o.tenant_id = core.current_tenant_id() AND o.identifier = p_order
$$;

SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('hist', 'h@hist.test')$$, 'context');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 2}]}')).status, 'created', 'order created');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "B", "quantity": 1, "version": 1}')).version, 2, 'item added');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": 9, "method": "cash", "version": 2}')).status, 'updated', 'paid');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "shipped", "version": 3}')).status, 'updated', 'shipped');
SELECT is((SELECT array_agg(operation || ':' || entity_type ORDER BY occurred_at, event_id) FILTER (WHERE entity_type = 'order')
             FROM app.order_history('ORD-000001')),
          '{insert:order,update:order,update:order,order.paid:order,update:order,order.shipped:order}'::text[],
          'the history lists the order''s changes and domain events in order');
RESET ROLE;
SELECT is(pg_temp.fold('ORD-000001'), pg_temp.current_rows('ORD-000001'),
          'folding the order''s events from the first rebuilds its current row, lines and payment');

-- More orders: ORD-000002 grows and is cancelled, ORD-000003 is paid, ORD-000004 waits; then
-- A is restocked. ORD-000001 is shipped above.
SET LOCAL ROLE strata_test_app;
SELECT is(ARRAY[
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 3}]}')).status,
    (app.add_order_item('{"order": "ORD-000002", "product": "B", "quantity": 2, "version": 1}')).status,
    (app.add_order_item('{"order": "ORD-000002", "product": "A", "quantity": 1, "version": 2}')).status,
    (app.cancel_order('{"order": "ORD-000002", "reason": "changed mind", "version": 3}')).status,
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "B", "quantity": 4}]}')).status,
    (app.process_payment('{"order": "ORD-000003", "amount": 16, "method": "card", "version": 1}')).status,
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}]}')).status,
    (app.restock_product('{"product": "A", "quantity": 5}')).status],
    '{created,updated,updated,updated,created,updated,created,updated}'::text[],
    'more orders made, grown, cancelled and paid, and a product restocked');
RESET ROLE;
CREATE TEMP VIEW ledger AS
SELECT e.* FROM audit.events AS e WHERE e.tenant_id = core.current_tenant_id();
CREATE TEMP VIEW products AS
SELECT p.* FROM orders.tb_product AS p WHERE p.tenant_id = core.current_tenant_id();

SELECT is((SELECT array_agg(operation || ':' || identifier ORDER BY identifier, pk_event) FROM ledger WHERE entity_type = 'product'),
          '{insert:A,update:A,update:A,insert:B,update:B}'::text[],
          'products have events for being made, shipped (ORD-000001) and restocked, none for a reservation');
SELECT is((SELECT array_agg(array_to_string(changed_fields, ',')) FROM ledger
            WHERE entity_type = 'product' AND operation = 'update' AND identifier = 'B'),
          '{"stock_on_hand,stock_reserved,version"}'::text[], 'shipping takes stock off hand and out of the reservation');
SELECT is((SELECT array_agg((new_data ->> 'stock_reserved')::integer ORDER BY identifier, pk_event) FROM ledger
            WHERE entity_type = 'product' AND operation = 'update'),
          '{0,1,0}'::integer[], 'and a product''s events record its reservation as it then was');
SELECT is((SELECT count(*)::integer FROM ledger WHERE entity_type = 'order_item'), 7,
          'every order line, and every change to one, is an event');
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
SELECT is((SELECT jsonb_object_agg(p.identifier, p.stock_reserved) FROM products AS p),
          '{"A": 1, "B": 4}'::jsonb, 'which is A: 1 pending, B: 4 paid');

-- ORD-000005 is paid, then cancelled: its payment is refunded.
SET LOCAL ROLE strata_test_app;
SELECT is(ARRAY[
    (app.create_order('{"customer": "CUS-000001", "items": [{"product": "A", "quantity": 1}, {"product": "B", "quantity": 1}]}')).status,
    (app.process_payment('{"order": "ORD-000005", "amount": 6.50, "method": "card", "version": 1}')).status,
    (app.cancel_order('{"order": "ORD-000005", "reason": "out of budget"}')).status,
    (app.cancel_order('{"order": "ORD-000005", "reason": "again"}')).status],
    '{created,updated,updated,noop:already_cancelled}'::text[], 'an order paid, cancelled with a refund, and cancelled again');
SELECT is((SELECT array[count(*), count(*) FILTER (
                   WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(CASE WHEN jsonb_typeof(h.data) = 'object' THEN h.data ELSE '{}' END) AS k
                                  WHERE k ~ '^(pk|fk)_')
                      OR EXISTS (SELECT 1 FROM unnest(h.changed_fields) AS f WHERE f ~ '^(pk|fk)_'))]::integer[]
             FROM app.order_history('ORD-000005') AS h),
          '{10,0}'::integer[],
          'the application sees the 10 events of ORD-000005, none with an internal key (pk_*, fk_*) in its data or changed fields');
RESET ROLE;
SELECT is(pg_temp.fold('ORD-000005'), pg_temp.current_rows('ORD-000005'),
          'folding the history rebuilds a refunded order, its lines and its refunded payment');
SELECT is(pg_temp.fold('ORD-000002'), pg_temp.current_rows('ORD-000002'),
          'and an order that grew by two lines before it was cancelled unpaid');
SELECT * FROM finish();
ROLLBACK;
