-- requires: 0005_open_orders

/* The orders API (SPEC §3.5, inputs §3.6). Each app function: its contract
   (core.contract__<name>, also what app.describe returns) compiled into its input check
   (core.prepare__<name>), then the function: validate the JSON, call core with typed
   arguments. Errors caused by data become refusals; serialization failures and deadlocks
   propagate so the client retries. */

CREATE FUNCTION core.contract__create_customer()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Creates a customer of the organization in context.",
        "permission": "customers.create",
        "fields": [
            {"name": "name", "type": "string", "required": true, "max_length": 200},
            {"name": "email", "type": "email", "required": true},
            {"name": "phone", "type": "string", "max_length": 40, "pattern": "^[+0-9 ()./-]{3,40}$",
             "pattern_message": "phone may hold digits, spaces and + ( ) . / - only"},
            {"name": "address", "type": "object", "max_bytes": 4096}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__create_customer() IS 'Input contract of app.create_customer.';
SELECT core.compile_contract('create_customer');

CREATE FUNCTION app.create_customer(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__create_customer(input, 'customer');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.create_customer(
        p_name    => v_in.value ->> 'name',
        p_email   => v_in.value ->> 'email',
        p_phone   => v_in.value ->> 'phone',
        p_address => v_in.value -> 'address');
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'customer');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.create_customer(jsonb) IS
    'Creates a customer: {"name", "email", "phone"?, "address"?}. created, noop:already_exists, forbidden:customers.create, validation:*.';

CREATE FUNCTION core.contract__create_product()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Creates a product; its SKU (upper-cased) is its identifier.",
        "permission": "products.manage",
        "fields": [
            {"name": "sku", "type": "string", "required": true, "max_length": 64, "case": "upper",
             "pattern": "^(?![0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$)[A-Z0-9][A-Z0-9._-]*$",
             "pattern_message": "sku may hold letters, digits and . _ - only, and may not be shaped like a UUID (a reference in that shape is an id)"},
            {"name": "name", "type": "string", "required": true, "max_length": 200},
            {"name": "price", "type": "decimal", "required": true, "min": 0, "max": 1000000000, "scale": 2},
            {"name": "stock", "type": "integer", "min": 0, "max": 100000000, "default": 0},
            {"name": "low_stock_threshold", "type": "integer", "min": 0, "max": 100000000, "default": 5}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__create_product() IS 'Input contract of app.create_product.';
SELECT core.compile_contract('create_product');

CREATE FUNCTION app.create_product(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__create_product(input, 'product');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.create_product(
        p_sku                 => v_in.value ->> 'sku',
        p_name                => v_in.value ->> 'name',
        p_price               => (v_in.value ->> 'price')::numeric,
        p_stock               => (v_in.value ->> 'stock')::integer,
        p_low_stock_threshold => (v_in.value ->> 'low_stock_threshold')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'product');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.create_product(jsonb) IS
    'Creates a product: {"sku", "name", "price", "stock"?, "low_stock_threshold"?}. created, noop:already_exists, forbidden:products.manage, validation:*.';

CREATE FUNCTION core.contract__restock_product()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Adds stock on hand to a product.",
        "permission": "products.manage",
        "fields": [
            {"name": "product", "type": "reference", "entity": "product", "required": true},
            {"name": "quantity", "type": "integer", "required": true, "min": 1, "max": 1000000}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__restock_product() IS 'Input contract of app.restock_product.';
SELECT core.compile_contract('restock_product');

CREATE FUNCTION app.restock_product(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__restock_product(input, 'product');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.restock_product(p_product => v_in.value ->> 'product', p_quantity => (v_in.value ->> 'quantity')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'product');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.restock_product(jsonb) IS
    'Restocks a product: {"product", "quantity"}. updated, not_found:product, forbidden:products.manage, validation:*.';

CREATE FUNCTION core.contract__create_order()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Creates an order in one call: validates the customer and every product, reserves stock for all lines or none, totals it. A repeated idempotency_key returns the first order.",
        "permission": "orders.create",
        "fields": [
            {"name": "customer", "type": "reference", "entity": "customer", "required": true},
            {"name": "items", "type": "array", "required": true, "min_items": 1, "max_items": 100,
             "items": {"type": "object", "fields": [
                 {"name": "product", "type": "reference", "entity": "product", "required": true},
                 {"name": "quantity", "type": "integer", "required": true, "min": 1, "max": 10000}]}},
            {"name": "idempotency_key", "type": "string", "min_length": 1, "max_length": 200},
            {"name": "notes", "type": "string", "max_length": 2000}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__create_order() IS 'Input contract of app.create_order.';
SELECT core.compile_contract('create_order');

CREATE FUNCTION app.create_order(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__create_order(input, 'order');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.create_order(
        p_customer        => v_in.value ->> 'customer',
        p_items           => v_in.value -> 'items',
        p_idempotency_key => v_in.value ->> 'idempotency_key',
        p_notes           => v_in.value ->> 'notes');
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'order');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.create_order(jsonb) IS
    'Creates an order: {"customer", "items": [{"product", "quantity"}], "idempotency_key"?, "notes"?}. created, noop:already_exists, not_found:customer, not_found:product, conflict:insufficient_stock, forbidden:orders.create, validation:*.';

CREATE FUNCTION core.contract__add_order_item()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Adds a product to a pending order and reserves its stock.",
        "permission": "orders.create",
        "fields": [
            {"name": "order", "type": "reference", "entity": "order", "required": true},
            {"name": "product", "type": "reference", "entity": "product", "required": true},
            {"name": "quantity", "type": "integer", "required": true, "min": 1, "max": 10000},
            {"name": "version", "type": "integer", "min": 1}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__add_order_item() IS 'Input contract of app.add_order_item.';
SELECT core.compile_contract('add_order_item');

CREATE FUNCTION app.add_order_item(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__add_order_item(input, 'order');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.add_order_item(
        p_order    => v_in.value ->> 'order',
        p_product  => v_in.value ->> 'product',
        p_quantity => (v_in.value ->> 'quantity')::integer,
        p_version  => (v_in.value ->> 'version')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'order');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.add_order_item(jsonb) IS
    'Adds an item: {"order", "product", "quantity", "version"?}. updated, not_found:order, not_found:product, conflict:stale_version, conflict:invalid_transition, conflict:insufficient_stock, forbidden:orders.create, validation:*.';

CREATE FUNCTION core.contract__process_payment()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Pays a pending order in full. The amount must equal the order total (0 settles a free order) and version must be the one the payer saw.",
        "permission": "orders.pay",
        "fields": [
            {"name": "order", "type": "reference", "entity": "order", "required": true},
            {"name": "amount", "type": "decimal", "required": true, "min": 0, "max": 1000000000, "scale": 2},
            {"name": "method", "type": "enum", "required": true, "values": ["card", "bank_transfer", "cash", "wallet"]},
            {"name": "version", "type": "integer", "required": true, "min": 1}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__process_payment() IS 'Input contract of app.process_payment.';

SELECT core.compile_contract('process_payment');

-- The order cap follows from the largest payment (above): every order can be paid in full.
CREATE FUNCTION core.max_order_total()
    RETURNS numeric
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    -- Read from the payment contract, so the two cannot drift apart. Immutable and without
    -- arguments, so the planner evaluates it once per plan, not per call.
    SELECT (core.contract_field(core.contract__process_payment(), 'amount') ->> 'max')::numeric(12, 2)
$$;
COMMENT ON FUNCTION core.max_order_total() IS
    'The most an order may total: the largest payment app.process_payment takes, so every order can be paid in full.';

CREATE FUNCTION core.order_total_too_large(p_field text, p_total numeric, p_id uuid DEFAULT NULL,
                                          p_identifier text DEFAULT NULL, p_version integer DEFAULT NULL)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT core.result_refused('validation:out_of_range',
                               pg_catalog.format('An order may total at most %s, the largest payment; this one would total %s.',
                                                 core.max_order_total(), p_total),
                               'order',
                               pg_catalog.jsonb_build_array(core.field_error(p_field, 'out_of_range',
                                   pg_catalog.format('%s would bring the order total above %s', p_field, core.max_order_total()))),
                               p_id, p_identifier, p_version)
$$;
COMMENT ON FUNCTION core.order_total_too_large(text, numeric, uuid, text, integer) IS
    'The refusal of an order that would total more than core.max_order_total() (prices and quantities are each in range, their product need not be).';

CREATE FUNCTION app.process_payment(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__process_payment(input, 'order');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.process_payment(
        p_order   => v_in.value ->> 'order',
        p_amount  => (v_in.value ->> 'amount')::numeric,
        p_method  => v_in.value ->> 'method',
        p_version => (v_in.value ->> 'version')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'order');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.process_payment(jsonb) IS
    'Pays an order: {"order", "amount", "method", "version"}. updated, noop:already_paid, not_found:order, conflict:stale_version, conflict:amount_mismatch, conflict:invalid_transition, forbidden:orders.pay, validation:*.';

CREATE FUNCTION core.contract__cancel_order()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Cancels a pending or paid order: releases its stock and refunds what was paid.",
        "permission": "orders.cancel",
        "fields": [
            {"name": "order", "type": "reference", "entity": "order", "required": true},
            {"name": "reason", "type": "string", "required": true, "max_length": 500},
            {"name": "version", "type": "integer", "min": 1}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__cancel_order() IS 'Input contract of app.cancel_order.';
SELECT core.compile_contract('cancel_order');

CREATE FUNCTION app.cancel_order(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__cancel_order(input, 'order');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.cancel_order(
        p_order   => v_in.value ->> 'order',
        p_reason  => v_in.value ->> 'reason',
        p_version => (v_in.value ->> 'version')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'order');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.cancel_order(jsonb) IS
    'Cancels an order: {"order", "reason", "version"?}. updated, noop:already_cancelled, not_found:order, conflict:already_shipped, conflict:stale_version, forbidden:orders.cancel, validation:*.';

CREATE FUNCTION core.contract__update_order_status()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Ships a paid order, delivers a shipped one, or cancels a pending or paid one (cancelling needs orders.cancel instead); paying is process_payment, and other moves are conflict:invalid_transition.",
        "permission": "orders.fulfil",
        "fields": [
            {"name": "order", "type": "reference", "entity": "order", "required": true},
            {"name": "status", "type": "enum", "required": true, "values": ["pending", "paid", "shipped", "delivered", "cancelled"]},
            {"name": "version", "type": "integer", "required": true, "min": 1}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__update_order_status() IS 'Input contract of app.update_order_status.';
SELECT core.compile_contract('update_order_status');

CREATE FUNCTION app.update_order_status(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__update_order_status(input, 'order');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.update_order_status(
        p_order   => v_in.value ->> 'order',
        p_status  => v_in.value ->> 'status',
        p_version => (v_in.value ->> 'version')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'order');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.update_order_status(jsonb) IS
    'Changes the status of an order: {"order", "status", "version"}. updated, noop:no_changes, noop:already_cancelled, not_found:order, conflict:invalid_transition (shipped or delivered to cancelled too), conflict:stale_version, forbidden:orders.fulfil, forbidden:orders.cancel (to cancelled), validation:*.';

GRANT EXECUTE ON FUNCTION app.create_customer(jsonb), app.create_product(jsonb), app.restock_product(jsonb), app.create_order(jsonb), app.add_order_item(jsonb), app.process_payment(jsonb), app.cancel_order(jsonb), app.update_order_status(jsonb)
    TO strata_app;
