-- Every orders app function: success, each NOOP, each refusal and bad input, as a login role
-- granted strata_app. Refusals leave stock, orders and payments as they were.
BEGIN;
SELECT plan(155);

DO $$
BEGIN
    PERFORM core.create_tenant('Shop', 'shop', 'owner@shop.test');
    PERFORM app.set_context('shop', 'owner@shop.test');
    PERFORM app.create_user('{"email": "clerk@shop.test", "name": "Clerk"}');
    PERFORM app.create_user('{"email": "vi@shop.test", "name": "Viewer", "role": "viewer"}');
    PERFORM core.use_tenant(NULL);
    PERFORM set_config('strata.actor_id', '', true);
END
$$;
CREATE FUNCTION pg_temp.stock(p_sku text) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s/%s/%s', on_hand, reserved, available) FROM app.v_product_inventory WHERE sku = p_sku
$$;
CREATE FUNCTION pg_temp.order_state(p_order text) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s v%s %s items %s', status, version, data ->> 'itemCount', data ->> 'totalAmount')
      FROM app.v_order_details WHERE identifier = p_order
$$;
CREATE FUNCTION pg_temp.totals() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s orders, %s reserved, %s payments', (SELECT count(*) FROM app.v_orders_summary),
                  (SELECT sum(reserved) FROM app.v_product_inventory),
                  (SELECT sum(jsonb_array_length(data -> 'payments')) FROM app.v_order_details))
$$;

CREATE FUNCTION pg_temp.document_keys(p_view text, p_nested boolean) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
BEGIN
    -- The keys of every document of a view: its top-level ones, or those at any depth.
    EXECUTE format('SELECT array_agg(DISTINCT k #>> ''{}'' ORDER BY k #>> ''{}'') FROM %s AS v, jsonb_path_query(v.data, %L) AS k',
                   p_view, CASE WHEN p_nested THEN 'strict $.** ? (@.type() == "object").keyvalue().key' ELSE 'strict $.keyvalue().key' END)
       INTO v_keys;
    RETURN v_keys;
END
$$;

SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('shop', 'owner@shop.test')$$, 'the owner takes the context');

-- create_customer
SELECT results_eq($$SELECT status, identifier FROM app.create_customer('{"name": "Ada Buyer", "email": "Ada@Buyers.test", "phone": "+44 20 7946 0000", "address": {"city": "London"}}')$$,
                  $$VALUES ('created', 'CUS-000001')$$, 'create_customer: created CUS-000001');
SELECT is((app.create_customer('{"name": "Someone", "email": "ada@buyers.test"}')).status, 'noop:already_exists', 'create_customer: known email');
SELECT is((app.create_customer('{"email": "b@buyers.test"}')).status, 'validation:required', 'create_customer: missing name');
SELECT is((app.create_customer('{"name": "B", "email": "b@"}')).status, 'validation:invalid_format', 'create_customer: bad email');
SELECT is((app.create_customer('{"name": "B", "email": "b@buyers.test", "phone": "call me"}')).status, 'validation:invalid_format', 'create_customer: bad phone');
SELECT is((app.create_customer('{"name": "B", "email": "b@buyers.test", "address": "Main St"}')).status, 'validation:invalid_type', 'create_customer: address must be an object');
SELECT is((app.create_customer('{"name": "B", "email": "b@buyers.test", "vip": true}')).status, 'validation:unknown_field', 'create_customer: unknown key');
SELECT is((app.create_customer('{"name": "Bo", "email": "bo@buyers.test"}')).identifier, 'CUS-000002', 'create_customer: a second customer, gapless');

-- create_product
SELECT results_eq($$SELECT status, identifier, object_data ->> 'available' FROM app.create_product('{"sku": "widget-1", "name": "Widget", "price": 10.50, "stock": 5}')$$,
                  $$VALUES ('created', 'WIDGET-1', '5')$$, 'create_product: created, SKU upper-cased is the identifier');
SELECT is((app.create_product('{"sku": "WIDGET-1", "name": "Other", "price": 1}')).status, 'noop:already_exists', 'create_product: known SKU');
SELECT is((app.create_product('{"sku": "GADGET", "name": "Gadget", "price": 99.99, "stock": 100, "low_stock_threshold": 10}')).status, 'created', 'create_product: another');
SELECT is((app.create_product('{"sku": "FREE", "name": "Sticker", "price": 0, "stock": 1000}')).status, 'created', 'create_product: free items are allowed');
SELECT is((app.create_product('{"sku": "X", "name": "X", "price": "10"}')).status, 'validation:invalid_type', 'create_product: price must be a number');
SELECT is((app.create_product('{"sku": "X", "name": "X", "price": 1.005}')).status, 'validation:invalid_format', 'create_product: at most two decimals');
SELECT is((app.create_product('{"sku": "X", "name": "X", "price": -1}')).status, 'validation:out_of_range', 'create_product: no negative price');
SELECT is((app.create_product('{"sku": "no spaces", "name": "X", "price": 1}')).status, 'validation:invalid_format', 'create_product: SKU characters');
SELECT is((app.create_product('{"sku": "X", "name": "X", "price": 1, "stock": -1}')).status, 'validation:out_of_range', 'create_product: no negative stock');
SELECT is((app.create_product('{"sku": "01a205f2-0000-7000-8000-000000000001", "name": "X", "price": 1}')).status, 'validation:invalid_format',
          'create_product: a SKU shaped like a UUID is refused (references in that shape are ids, so it could never be named)');
SELECT is((app.create_product('{"sku": "01a205f2-0000-7000-8000-000000000001-x", "name": "X", "price": 1}')).status, 'created',
          'create_product: a SKU that only starts like a UUID is fine');

-- restock_product
SELECT results_eq($$SELECT status, updated_fields FROM app.restock_product('{"product": "WIDGET-1", "quantity": 5}')$$,
                  $$VALUES ('updated', '{available,lowStock,onHand}'::text[])$$, 'restock_product: updated with the changed fields');
SELECT is(pg_temp.stock('WIDGET-1'), '10/0/10', 'restock_product: on hand 10, none reserved');
SELECT is((app.restock_product('{"product": "NOPE", "quantity": 5}')).status, 'not_found:product', 'restock_product: unknown product');
SELECT is((app.restock_product('{"product": "WIDGET-1", "quantity": 0}')).status, 'validation:out_of_range', 'restock_product: quantity must be positive');
SELECT is((app.restock_product('{"product": "WIDGET-1"}')).status, 'validation:required', 'restock_product: quantity required');

-- create_order
SELECT results_eq($$SELECT status, identifier, (object_data ->> 'totalAmount')::numeric, (object_data ->> 'itemCount')::int
                     FROM app.create_order('{"customer": "CUS-000001", "items": [{"product": "WIDGET-1", "quantity": 2}, {"product": "GADGET", "quantity": 1}, {"product": "widget-1", "quantity": 1}], "idempotency_key": "cart-1"}')$$,
                  $$VALUES ('created', 'ORD-000001', 131.49, 4)$$,
                  'create_order: created ORD-000001; repeated products merge; total = 3 x 10.50 + 99.99');
SELECT is(pg_temp.stock('WIDGET-1'), '10/3/7', 'create_order: stock reserved, not yet taken');
SELECT is((SELECT jsonb_array_length(data -> 'items') FROM app.v_order_details WHERE identifier = 'ORD-000001'), 2, 'create_order: two lines');
SELECT results_eq($$SELECT status, identifier FROM app.create_order('{"customer": "CUS-000001", "items": [{"product": "GADGET", "quantity": 50}], "idempotency_key": "cart-1"}')$$,
                  $$VALUES ('noop:already_exists', 'ORD-000001')$$, 'create_order: a repeated idempotency key returns the first order');
SELECT is(pg_temp.stock('GADGET'), '100/1/99', 'create_order: the repeat reserved nothing');
SELECT is(pg_temp.totals(), '1 orders, 4 reserved, 0 payments', 'state before the refusals');
SELECT is((app.create_order('{"customer": "CUS-999999", "items": [{"product": "GADGET", "quantity": 1}]}')).status, 'not_found:customer', 'create_order: unknown customer');
SELECT results_eq($$SELECT status, errors #>> '{0,field}' FROM app.create_order('{"customer": "CUS-000001", "items": [{"product": "GADGET", "quantity": 1}, {"product": "NOPE", "quantity": 1}]}')$$,
                  $$VALUES ('not_found:product', 'items[1].product')$$, 'create_order: unknown product, named by its position');
SELECT results_eq($$SELECT status, errors #>> '{0,field}' FROM app.create_order('{"customer": "CUS-000002", "items": [{"product": "GADGET", "quantity": 1}, {"product": "WIDGET-1", "quantity": 8}]}')$$,
                  $$VALUES ('conflict:insufficient_stock', 'items[1].quantity')$$, 'create_order: not enough stock for one line');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": []}')).status, 'validation:required', 'create_order: no items');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "GADGET", "quantity": 0}]}')).status, 'validation:out_of_range', 'create_order: zero quantity');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": {"product": "GADGET"}}')).status, 'validation:invalid_type', 'create_order: items must be an array');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "GADGET", "quantity": 1, "price": 0}]}')).status, 'validation:unknown_field', 'create_order: a client cannot set the price');
SELECT is((app.create_order('{"items": [{"product": "GADGET", "quantity": 1}]}')).status, 'validation:required', 'create_order: missing customer');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "GADGET", "quantity": 1}], "idempotency_key": ""}')).status,
          'validation:required', 'create_order: an empty idempotency key is refused (it would match every other empty key)');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "GADGET", "quantity": 1}], "idempotency_key": "  "}')).status,
          'validation:required', 'create_order: a blank idempotency key is empty once trimmed');
SELECT is(pg_temp.totals(), '1 orders, 4 reserved, 0 payments', 'create_order: refusals reserved and wrote nothing');

-- add_order_item
SELECT results_eq($$SELECT status, version, (object_data ->> 'totalAmount')::numeric FROM app.add_order_item('{"order": "ORD-000001", "product": "FREE", "quantity": 3, "version": 1}')$$,
                  $$VALUES ('updated', 2, 131.49)$$, 'add_order_item: updated, version 2');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "GADGET", "quantity": 1, "version": 1}')).status, 'conflict:stale_version', 'add_order_item: stale version');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "WIDGET-1", "quantity": 99}')).status, 'conflict:insufficient_stock', 'add_order_item: not enough stock');
SELECT is((app.add_order_item('{"order": "ORD-000404", "product": "GADGET", "quantity": 1}')).status, 'not_found:order', 'add_order_item: unknown order');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "NOPE", "quantity": 1}')).status, 'not_found:product', 'add_order_item: unknown product');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "GADGET"}')).status, 'validation:required', 'add_order_item: quantity required');
SELECT is(pg_temp.order_state('ORD-000001'), 'pending v2 7 items 131.49', 'add_order_item: refusals changed nothing');

-- process_payment
SELECT results_eq($$SELECT status, errors #>> '{0,field}' FROM app.process_payment('{"order": "ORD-000001", "amount": 100, "method": "card", "version": 2}')$$,
                  $$VALUES ('conflict:amount_mismatch', 'amount')$$, 'process_payment: amount must equal the total');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": 0, "method": "card", "version": 2}')).status, 'conflict:amount_mismatch', 'process_payment: 0 does not settle an order that costs something');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": -1, "method": "card", "version": 2}')).status, 'validation:out_of_range', 'process_payment: no negative amount');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": 131.49, "method": "card", "version": 1}')).status, 'conflict:stale_version', 'process_payment: stale version');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": 131.49, "method": "card"}')).status, 'validation:required', 'process_payment: version required');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": 131.49, "method": "iou", "version": 2}')).status, 'validation:invalid_value', 'process_payment: unknown method');
SELECT is((app.process_payment('{"order": "ORD-000404", "amount": 1, "method": "card", "version": 1}')).status, 'not_found:order', 'process_payment: unknown order');
SELECT results_eq($$SELECT status, version, updated_fields = '{paidAt,payments,status}' FROM app.process_payment('{"order": "ORD-000001", "amount": 131.49, "method": "card", "version": 2}')$$,
                  $$VALUES ('updated', 3, true)$$, 'process_payment: paid, version 3');
SELECT is((app.process_payment('{"order": "ORD-000001", "amount": 131.49, "method": "card", "version": 3}')).status, 'noop:already_paid', 'process_payment: already paid');
SELECT is((app.add_order_item('{"order": "ORD-000001", "product": "GADGET", "quantity": 1}')).status, 'conflict:invalid_transition', 'add_order_item: a paid order takes no more items');

-- update_order_status
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "delivered", "version": 3}')).status, 'conflict:invalid_transition', 'update_order_status: paid cannot jump to delivered');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "paid", "version": 3}')).status, 'noop:no_changes', 'update_order_status: same status');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "shipped", "version": 2}')).status, 'conflict:stale_version', 'update_order_status: stale version');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "lost", "version": 3}')).status, 'validation:invalid_value', 'update_order_status: unknown status');
SELECT results_eq($$SELECT status, version FROM app.update_order_status('{"order": "ORD-000001", "status": "shipped", "version": 3}')$$,
                  $$VALUES ('updated', 4)$$, 'update_order_status: paid -> shipped');
SELECT is(pg_temp.stock('WIDGET-1'), '7/0/7', 'shipping takes the stock off the shelf and ends the reservation');
SELECT is((app.cancel_order('{"order": "ORD-000001", "reason": "changed my mind"}')).status, 'conflict:already_shipped', 'cancel_order: shipped orders cannot be cancelled');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "cancelled", "version": 4}')).status, 'conflict:invalid_transition', 'update_order_status: shipped cannot go to cancelled');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "delivered", "version": 4}')).status, 'updated', 'update_order_status: shipped -> delivered');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "cancelled", "version": 5}')).status, 'conflict:invalid_transition', 'update_order_status: delivered cannot go to cancelled');
SELECT is((app.update_order_status('{"order": "ORD-000404", "status": "shipped", "version": 1}')).status, 'not_found:order', 'update_order_status: unknown order');
SELECT is((app.update_order_status('{"order": "ORD-000001", "status": "pending", "version": 5}')).status, 'conflict:invalid_transition', 'update_order_status: never backwards');

-- cancel_order: pending (release) and paid (refund)
SELECT is((app.create_order('{"customer": "bo@buyers.test", "items": [{"product": "GADGET", "quantity": 2}]}')).status, 'not_found:customer',
          'customers are referenced by id or identifier, not email');
SELECT is((app.create_order('{"customer": "CUS-000002", "items": [{"product": "GADGET", "quantity": 2}]}')).identifier, 'ORD-000002', 'a second order');
SELECT is((app.update_order_status('{"order": "ORD-000002", "status": "paid", "version": 1}')).status, 'conflict:invalid_transition', 'update_order_status: paying needs a payment');
SELECT is(pg_temp.stock('GADGET'), '99/2/97', 'the second order reserves two gadgets');
SELECT is((app.cancel_order('{"order": "ORD-000002", "reason": "duplicate", "version": 9}')).status, 'conflict:stale_version', 'cancel_order: stale version');
SELECT is((app.cancel_order('{"order": "ORD-000002"}')).status, 'validation:required', 'cancel_order: reason required');
SELECT is((app.cancel_order('{"order": "ORD-000404", "reason": "duplicate"}')).status, 'not_found:order', 'cancel_order: unknown order');
SELECT results_eq($$SELECT status, object_data ->> 'cancelReason', object_data ->> 'refundAmount', updated_fields FROM app.cancel_order('{"order": "ORD-000002", "reason": "duplicate", "version": 1}')$$,
                  $$VALUES ('updated', 'duplicate', NULL, '{cancelReason,cancelledAt,status}'::text[])$$, 'cancel_order: a pending order is cancelled with its reason, nothing to refund');
SELECT is(pg_temp.stock('GADGET'), '99/0/99', 'cancel_order: the reservation is released');
SELECT is((app.cancel_order('{"order": "ORD-000002", "reason": "again"}')).status, 'noop:already_cancelled', 'cancel_order: already cancelled');
SELECT is((app.cancel_order('{"order": "ORD-000002", "reason": "again", "version": 1}')).status, 'noop:already_cancelled', 'cancel_order: already cancelled, whatever the version (a retry with the version it was cancelled at)');
SELECT is((app.process_payment('{"order": "ORD-000002", "amount": 199.98, "method": "card", "version": 2}')).status, 'conflict:invalid_transition', 'process_payment: a cancelled order cannot be paid');
SELECT is((app.create_order('{"customer": "CUS-000002", "items": [{"product": "WIDGET-1", "quantity": 1}]}')).identifier, 'ORD-000003', 'a third order');
SELECT is((app.process_payment('{"order": "ORD-000003", "amount": 10.50, "method": "wallet", "version": 1}')).status, 'updated', 'it is paid');
SELECT results_eq($$SELECT status, (extra_metadata ->> 'refundAmount')::numeric, object_data #>> '{payments,0,status}', updated_fields FROM app.cancel_order('{"order": "ORD-000003", "reason": "damaged", "version": 2}')$$,
                  $$VALUES ('updated', 10.50, 'refunded', '{cancelReason,cancelledAt,payments,refundAmount,status}'::text[])$$, 'cancel_order: a paid order is refunded in full');
SELECT is(pg_temp.stock('WIDGET-1'), '7/0/7', 'the paid order''s reservation is released too');

-- Permissions: members sell, viewers only look.
SELECT lives_ok($$SELECT app.set_context('shop', 'clerk@shop.test')$$, 'a member takes the context');
SELECT is((app.create_product('{"sku": "NEW", "name": "New", "price": 1}')).status, 'forbidden:products.manage', 'members cannot manage products');
SELECT is((app.restock_product('{"product": "GADGET", "quantity": 1}')).status, 'forbidden:products.manage', 'members cannot restock');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "FREE", "quantity": 1}]}')).status, 'created', 'members create orders');
SELECT lives_ok($$SELECT app.set_context('shop', 'vi@shop.test')$$, 'a viewer takes the context');
SELECT is((app.create_customer('{"name": "V", "email": "v@buyers.test"}')).status, 'forbidden:customers.create', 'viewers cannot create customers');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "FREE", "quantity": 1}]}')).status, 'forbidden:orders.create', 'viewers cannot order');
SELECT is((app.add_order_item('{"order": "ORD-000004", "product": "FREE", "quantity": 1, "version": 1}')).status, 'forbidden:orders.create', 'viewers cannot add items');
SELECT is((app.update_order_status('{"order": "ORD-000004", "status": "cancelled", "version": 1}')).status, 'forbidden:orders.cancel', 'viewers cannot cancel through a status change');
SELECT is((app.process_payment('{"order": "ORD-000004", "amount": 0.01, "method": "card", "version": 1}')).status, 'forbidden:orders.pay', 'viewers cannot pay');
SELECT is((app.cancel_order('{"order": "ORD-000004", "reason": "x"}')).status, 'forbidden:orders.cancel', 'viewers cannot cancel');
SELECT is((app.update_order_status('{"order": "ORD-000004", "status": "shipped", "version": 1}')).status, 'forbidden:orders.fulfil', 'viewers cannot ship');

-- A free order (ORD-000004, one FREE sticker) is settled by a payment of 0: paid, with no payment row.
SELECT lives_ok($$SELECT app.set_context('shop', 'clerk@shop.test')$$, 'the member again');
SELECT is((app.process_payment('{"order": "ORD-000004", "amount": 0.01, "method": "cash", "version": 1}')).status, 'conflict:amount_mismatch', 'process_payment: a free order takes no money');
SELECT results_eq($$SELECT status, version, updated_fields, object_data ->> 'status', jsonb_array_length(object_data -> 'payments')
                      FROM app.process_payment('{"order": "ORD-000004", "amount": 0, "method": "cash", "version": 1}')$$,
                  $$VALUES ('updated', 2, '{paidAt,status}'::text[], 'paid', 0)$$, 'process_payment: a free order is paid by 0, with no payment row');
SELECT is((app.process_payment('{"order": "ORD-000004", "amount": 0, "method": "cash", "version": 2}')).status, 'noop:already_paid', 'process_payment: a paid free order is already paid');
SELECT isnt_empty($$SELECT 1 FROM app.order_history('ORD-000004') AS h WHERE h.operation = 'order.paid'$$, 'the free order''s payment is a domain event');
SELECT lives_ok($$SELECT app.set_context('shop', 'vi@shop.test')$$, 'the viewer again');

-- Read views.
SELECT is((SELECT count(*) FROM app.v_orders_summary)::int, 4, 'v_orders_summary lists the tenant''s orders');
SELECT is((SELECT data ->> 'orderNumber' FROM app.v_orders_summary ORDER BY created_at DESC, identifier DESC LIMIT 1), 'ORD-000004', 'summaries page newest first');
SELECT is(pg_temp.document_keys('app.v_orders_summary', false),
          '{createdAt,customerId,customerName,id,itemCount,orderNumber,status,totalAmount,version}'::text[], 'summary data is camelCase');
SELECT results_eq($$SELECT order_count::int, total_spent FROM app.v_customer_orders WHERE identifier = 'CUS-000001'$$,
                  $$VALUES (2, 131.49)$$, 'v_customer_orders: history and spending on paid orders');
SELECT results_eq($$SELECT in_orders::int, low_stock FROM app.v_product_inventory WHERE sku = 'FREE'$$,
                  $$VALUES (1, false)$$, 'v_product_inventory: open orders holding the product');
SELECT is((SELECT count(*) FROM app.v_revenue_by_product WHERE refreshed_at IS NOT NULL)::int, 0, 'revenue is empty until refreshed');

-- The ledger saw the domain events.
RESET ROLE;
SELECT isnt_empty($$SELECT 1 FROM audit.events WHERE operation = 'order.cancelled' AND identifier = 'ORD-000003' AND metadata ->> 'reason' = 'damaged'$$,
                  'the cancellation is a domain event with its reason');
SELECT is((SELECT count(*) FROM audit.events WHERE operation = 'noop' AND entity_type = 'order')::int, 6,
          'each order NOOP left exactly one noop event');

-- The static resolvers answer as core.resolve does: by identifier, by id, SKU in any case, a
-- retired identifier through core.resolve, nothing for an unknown reference.
SELECT is((core.resolve_order('ORD-000001')).id, (core.resolve('orders.tb_order', 'ORD-000001')).id, 'resolve_order: by identifier');
SELECT is((core.resolve_order((SELECT id::text FROM orders.tb_order WHERE identifier = 'ORD-000001' AND tenant_id = core.current_tenant_id()))).identifier,
          'ORD-000001', 'resolve_order: by id');
SELECT is((core.resolve_product('widget-1')).identifier, 'WIDGET-1', 'resolve_product: a SKU in any case');
UPDATE orders.tb_customer SET identifier = 'CUS-RENAMED' WHERE identifier = 'CUS-000002' AND tenant_id = core.current_tenant_id();
SELECT is((core.resolve_customer('CUS-000002')).identifier, 'CUS-RENAMED', 'resolve_customer: a retired identifier still resolves');
SELECT is((core.resolve_customer('CUS-999999')).pk, NULL, 'resolve_customer: unknown is NULL');
-- core.lock_order finds and locks in one statement, and falls back to core.resolve the same way.
SELECT is((core.lock_order('ORD-000001')).identifier, 'ORD-000001', 'lock_order: by identifier');
SELECT is((core.lock_order((SELECT id::text FROM orders.tb_order WHERE identifier = 'ORD-000001' AND tenant_id = core.current_tenant_id()))).identifier,
          'ORD-000001', 'lock_order: by id');
UPDATE orders.tb_order SET identifier = 'ORD-RENAMED' WHERE identifier = 'ORD-000001' AND tenant_id = core.current_tenant_id();
SELECT is((core.lock_order('ORD-000001')).identifier, 'ORD-RENAMED', 'lock_order: a retired identifier still finds the order');
SELECT is((core.lock_order('ORD-999999')).pk_order, NULL, 'lock_order: unknown is NULL');

-- The paid free order cancels with nothing to refund, as the member who sold it.
SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('shop', 'clerk@shop.test')$$, 'the member, to cancel');
SELECT results_eq($$SELECT status, extra_metadata ->> 'refundAmount', object_data ->> 'refundAmount', updated_fields, message
                      FROM app.cancel_order('{"order": "ORD-000004", "reason": "changed mind", "version": 2}')$$,
                  $$VALUES ('updated', '0', NULL, '{cancelReason,cancelledAt,status}'::text[], 'Order cancelled.')$$,
                  'cancel_order: a paid free order is cancelled with no refund');

-- update_order_status to cancelled is cancel_order with a default reason: from pending it
-- releases the stock, from paid it refunds too; asking again is noop:already_cancelled.
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "WIDGET-1", "quantity": 1}]}')).identifier, 'ORD-000005', 'a pending order');
SELECT is(pg_temp.stock('WIDGET-1'), '7/1/6', 'it reserves a widget');
SELECT is((app.update_order_status('{"order": "ORD-000005", "status": "cancelled", "version": 2}')).status, 'conflict:stale_version', 'update_order_status: cancelling checks the version');
SELECT results_eq($$SELECT status, version, object_data ->> 'status', object_data ->> 'cancelReason', updated_fields
                      FROM app.update_order_status('{"order": "ORD-000005", "status": "cancelled", "version": 1}')$$,
                  $$VALUES ('updated', 2, 'cancelled', 'Cancelled by status change', '{cancelReason,cancelledAt,status}'::text[])$$,
                  'update_order_status: pending -> cancelled, with the default reason');
SELECT is(pg_temp.stock('WIDGET-1'), '7/0/7', 'update_order_status: cancelling released the reservation');
SELECT is((app.update_order_status('{"order": "ORD-000005", "status": "cancelled", "version": 1}')).status, 'noop:already_cancelled', 'update_order_status: already cancelled, whatever the version');
SELECT is((app.create_order('{"customer": "CUS-000001", "items": [{"product": "WIDGET-1", "quantity": 1}]}')).identifier, 'ORD-000006', 'another order');
SELECT is((app.process_payment('{"order": "ORD-000006", "amount": 10.50, "method": "card", "version": 1}')).status, 'updated', 'it is paid');
SELECT results_eq($$SELECT status, (extra_metadata ->> 'refundAmount')::numeric, object_data #>> '{payments,0,status}'
                      FROM app.update_order_status('{"order": "ORD-000006", "status": "cancelled", "version": 2}')$$,
                  $$VALUES ('updated', 10.50, 'refunded')$$, 'update_order_status: paid -> cancelled refunds the payment');
SELECT is(pg_temp.stock('WIDGET-1'), '7/0/7', 'and releases the reservation');

-- Every read view's document, as SPEC's GraphQL-style read side expects: camelCase keys at every
-- depth (customer, items, payments, orders), and the keys its readers are promised. Revenue is
-- refreshed first (as the owner would, by strata refresh) so its view has rows.
RESET ROLE;
SELECT cmp_ok(core.refresh_revenue(), '>', 0, 'revenue refreshed for the key checks');
SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('shop', 'vi@shop.test')$$, 'the viewer reads the views');
SELECT is(array_length(pg_temp.document_keys(v, true), 1) > 0
          AND pg_temp.document_keys(v, true) = ARRAY(SELECT k FROM unnest(pg_temp.document_keys(v, true)) AS k
                                                      WHERE k ~ '^[a-z][a-zA-Z0-9]*$' ORDER BY k),
          true, v || ': every key at every depth is camelCase')
  FROM unnest(ARRAY['app.v_orders_summary', 'app.v_order_details', 'app.v_customer_orders', 'app.v_product_inventory',
                    'app.v_revenue_by_product']) AS v;
SELECT is(pg_temp.document_keys('app.v_order_details', false),
          '{cancelReason,cancelledAt,createdAt,customer,deliveredAt,id,itemCount,items,notes,orderNumber,paidAt,payments,refundAmount,shippedAt,status,totalAmount,updatedAt,version}'::text[],
          'v_order_details: the keys of an order');
SELECT is(pg_temp.document_keys('app.v_customer_orders', false),
          '{email,id,identifier,lastOrderAt,name,orderCount,orders,phone,totalSpent}'::text[], 'v_customer_orders: the keys of a customer');
SELECT is(pg_temp.document_keys('app.v_product_inventory', false),
          '{available,id,inOrders,lowStock,lowStockThreshold,name,onHand,price,reserved,sku,version}'::text[],
          'v_product_inventory: the keys of a product');
SELECT is(pg_temp.document_keys('app.v_revenue_by_product', false),
          '{id,name,orderCount,refreshedAt,revenue,sku,unitsSold}'::text[], 'v_revenue_by_product: the keys of a product''s revenue');

-- A whole number written with a fraction, as some JSON writers put 2: it is 2, not a failed cast.
SELECT lives_ok($$SELECT app.set_context('shop', 'owner@shop.test')$$, 'the owner again');
SELECT matches((SELECT r.status || ': ' || r.message FROM app.restock_product('{"product": "FREE", "quantity": 2.0}') AS r),
               '^updated: Restocked FREE by 2; ', 'restock_product: a quantity of 2.0 is the whole number 2');

-- Prices and quantities are each in range, their product need not be: an order may total at
-- most the largest payment (1000000000.00), so every order can be paid in full. Beyond it an
-- order or a line is refused, naming the field, and reserves nothing.
SELECT is((app.create_product('{"sku": "YACHT", "name": "Yacht", "price": 1000000000, "stock": 20}')).status, 'created',
          'create_product: the highest price');
SELECT results_eq($$SELECT r.status, r.errors #>> '{0,field}'
                     FROM app.create_order('{"customer": "CUS-000001", "items": [{"product": "YACHT", "quantity": 2}]}') AS r$$,
                  $$VALUES ('validation:out_of_range', 'items')$$, 'create_order: a total above 1000000000.00 is refused, naming the items');
SELECT is((SELECT p.status
             FROM app.create_order('{"customer": "CUS-000001", "items": [{"product": "YACHT", "quantity": 1}]}') AS o,
                  LATERAL app.process_payment(jsonb_build_object('order', o.identifier, 'amount', 1000000000,
                                                                 'method', 'bank_transfer', 'version', o.version)) AS p),
          'updated', 'an order of the largest total is created and paid in full');
SELECT results_eq($$SELECT a.status, a.errors #>> '{0,field}'
                     FROM app.create_order('{"customer": "CUS-000001", "items": [{"product": "YACHT", "quantity": 1}]}') AS o,
                          LATERAL app.add_order_item(jsonb_build_object('order', o.identifier, 'product', 'YACHT', 'quantity', 1,
                                                                        'version', o.version)) AS a$$,
                  $$VALUES ('validation:out_of_range', 'quantity')$$, 'add_order_item: a total above 1000000000.00 is refused, naming the quantity');
SELECT is(pg_temp.stock('YACHT'), '20/2/18', 'the refused order and line reserved nothing');

-- Stock is an integer: a restock past its largest value is refused on the quantity.
SELECT is((app.create_product('{"sku": "SILO", "name": "Silo", "price": 1, "stock": 1000}')).status, 'created', 'a product for the stock limit');
RESET ROLE;
UPDATE orders.tb_product SET stock_on_hand = 2147483000 WHERE tenant_id = core.current_tenant_id() AND sku = 'SILO';
SET LOCAL ROLE strata_test_app;
SELECT results_eq($$SELECT status, errors #>> '{0,field}', errors #>> '{0,message}'
                     FROM app.restock_product('{"product": "SILO", "quantity": 1000}')$$,
                  $$VALUES ('validation:out_of_range', 'quantity', 'quantity must be at most 647 for SILO')$$,
                  'restock_product: past the largest stock is out_of_range on the quantity, with the room left');
SELECT is(pg_temp.stock('SILO'), '2147483000/0/2147483000', 'restock_product: and the refusal changed nothing');
SELECT * FROM finish();
ROLLBACK;
