-- requires: 0005_open_orders

/* The rules of the orders context. Each function checks permission, resolves references,
   locks what it will change (products always in pk order, so concurrent orders cannot
   deadlock), decides success, NOOP or refusal, and only then writes. Identifiers are taken
   last, so the gapless counter is held only for the tail of the transaction. */

CREATE FUNCTION core.order_data(p_id uuid)
    RETURNS jsonb
    STABLE
    LANGUAGE plpgsql
AS $$
-- PL/pgSQL rather than SQL: its plan is cached for the session, while a SQL function called
-- from PL/pgSQL is planned again in every transaction (about 1 ms for this view).
BEGIN
    RETURN (SELECT v.data FROM app.v_order_details AS v WHERE v.id = p_id);
END
$$;
COMMENT ON FUNCTION core.order_data(uuid) IS 'An order of the tenant in context as app.v_order_details renders it.';

/* Static resolvers for the three references every order command takes. core.resolve is the
   one resolver and stays the authority (retired identifiers, any table), but its dynamic SQL
   is planned on every call (about 35 µs); these look up current ids and identifiers with
   plans the session keeps and hand anything else to core.resolve. */

CREATE FUNCTION core.resolve_customer(p_ref text, OUT pk bigint, OUT id uuid, OUT identifier text)
    STABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF core.is_uuid(p_ref) THEN
        SELECT c.pk_customer, c.id, c.identifier INTO pk, id, identifier
          FROM orders.tb_customer AS c WHERE c.tenant_id = core.current_tenant_id() AND c.id = p_ref::uuid;
    ELSE
        SELECT c.pk_customer, c.id, c.identifier INTO pk, id, identifier
          FROM orders.tb_customer AS c WHERE c.tenant_id = core.current_tenant_id() AND c.identifier = p_ref;
    END IF;
    IF pk IS NULL THEN
        SELECT r.pk, r.id, r.identifier INTO pk, id, identifier FROM core.resolve('orders.tb_customer', p_ref) AS r;
    END IF;
END
$$;
COMMENT ON FUNCTION core.resolve_customer(text) IS 'Finds a customer of the tenant in context by id or identifier (core.resolve, faster).';

CREATE FUNCTION core.resolve_order(p_ref text, OUT pk bigint, OUT id uuid, OUT identifier text)
    STABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF core.is_uuid(p_ref) THEN
        SELECT o.pk_order, o.id, o.identifier INTO pk, id, identifier
          FROM orders.tb_order AS o WHERE o.tenant_id = core.current_tenant_id() AND o.id = p_ref::uuid;
    ELSE
        SELECT o.pk_order, o.id, o.identifier INTO pk, id, identifier
          FROM orders.tb_order AS o WHERE o.tenant_id = core.current_tenant_id() AND o.identifier = p_ref;
    END IF;
    IF pk IS NULL THEN
        SELECT r.pk, r.id, r.identifier INTO pk, id, identifier FROM core.resolve('orders.tb_order', p_ref) AS r;
    END IF;
END
$$;
COMMENT ON FUNCTION core.resolve_order(text) IS 'Finds an order of the tenant in context by id or identifier (core.resolve, faster).';

CREATE FUNCTION core.resolve_product(p_ref text, OUT pk bigint, OUT id uuid, OUT identifier text)
    STABLE
    LANGUAGE plpgsql
AS $$
-- SKUs are stored upper-case, and people type them in any case.
BEGIN
    IF core.is_uuid(p_ref) THEN
        SELECT p.pk_product, p.id, p.identifier INTO pk, id, identifier
          FROM orders.tb_product AS p WHERE p.tenant_id = core.current_tenant_id() AND p.id = p_ref::uuid;
    ELSE
        SELECT p.pk_product, p.id, p.identifier INTO pk, id, identifier
          FROM orders.tb_product AS p WHERE p.tenant_id = core.current_tenant_id() AND p.identifier = pg_catalog.upper(p_ref);
    END IF;
    IF pk IS NULL THEN
        SELECT r.pk, r.id, r.identifier INTO pk, id, identifier FROM core.resolve('orders.tb_product', p_ref) AS r;
    END IF;
END
$$;
COMMENT ON FUNCTION core.resolve_product(text) IS 'Finds a product of the tenant in context by id or SKU, in any case (core.resolve, faster).';

CREATE FUNCTION core.not_found(p_entity text, p_ref text)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT core.result_refused('not_found:' || p_entity,
                               pg_catalog.format('No %s %s in this organization.', p_entity, p_ref), p_entity)
$$;
COMMENT ON FUNCTION core.not_found(text, text) IS 'The not_found:<entity> refusal.';

CREATE FUNCTION core.stale_version(p_entity text, p_id uuid, p_identifier text, p_current integer, p_given integer)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT core.result_refused('conflict:stale_version',
                               pg_catalog.format('The %s is at version %s, not %s; reload and retry.', p_entity, p_current, p_given),
                               p_entity, NULL, p_id, p_identifier, p_current)
$$;
COMMENT ON FUNCTION core.stale_version(text, uuid, text, integer, integer) IS 'The conflict:stale_version refusal, carrying the current version.';

CREATE FUNCTION core.create_customer(p_name text, p_email text, p_phone text DEFAULT NULL, p_address jsonb DEFAULT NULL)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant   uuid := core.current_tenant_id();
    v_customer record;
BEGIN
    IF NOT core.has_permission('customers.create') THEN
        RETURN core.forbidden('customers.create', 'customer');
    END IF;
    SELECT c.id, c.identifier, c.version INTO v_customer
      FROM orders.tb_customer AS c WHERE c.tenant_id = v_tenant AND c.email = p_email;
    IF FOUND THEN
        RETURN core.result_noop('already_exists', 'customer', v_customer.id, v_customer.identifier, v_customer.version,
                                (SELECT v.data FROM app.v_customer_orders AS v WHERE v.id = v_customer.id),
                                'A customer with this email already exists.');
    END IF;
    BEGIN
        INSERT INTO orders.tb_customer (tenant_id, identifier, name, email, phone, address)
        VALUES (v_tenant, core.next_identifier('customer', 'CUS-'), p_name, p_email, p_phone, p_address)
        RETURNING id, identifier, version INTO v_customer;
    EXCEPTION WHEN unique_violation THEN
        SELECT c.id, c.identifier, c.version INTO v_customer
          FROM orders.tb_customer AS c WHERE c.tenant_id = v_tenant AND c.email = p_email;
        RETURN core.result_noop('already_exists', 'customer', v_customer.id, v_customer.identifier, v_customer.version,
                                (SELECT v.data FROM app.v_customer_orders AS v WHERE v.id = v_customer.id),
                                'A customer with this email already exists.');
    END;
    RETURN core.result_success('created', 'customer', v_customer.id, v_customer.identifier, v_customer.version,
                               (SELECT v.data FROM app.v_customer_orders AS v WHERE v.id = v_customer.id));
END
$$;
COMMENT ON FUNCTION core.create_customer(text, text, text, jsonb) IS
    'Creates a customer (CUS-000001); noop:already_exists for a known email; needs customers.create.';

CREATE FUNCTION core.create_product(
    p_sku text,
    p_name text,
    p_price numeric,
    p_stock integer DEFAULT 0,
    p_low_stock_threshold integer DEFAULT 5
)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant  uuid := core.current_tenant_id();
    v_product record;
BEGIN
    IF NOT core.has_permission('products.manage') THEN
        RETURN core.forbidden('products.manage', 'product');
    END IF;
    SELECT p.id, p.identifier, p.version INTO v_product
      FROM orders.tb_product AS p WHERE p.tenant_id = v_tenant AND p.sku = p_sku;
    IF NOT FOUND THEN
        BEGIN
            INSERT INTO orders.tb_product (tenant_id, identifier, sku, name, price, stock_on_hand, low_stock_threshold)
            VALUES (v_tenant, p_sku, p_sku, p_name, p_price, coalesce(p_stock, 0), coalesce(p_low_stock_threshold, 5))
            RETURNING id, identifier, version INTO v_product;
            RETURN core.result_success('created', 'product', v_product.id, v_product.identifier, v_product.version,
                                       (SELECT v.data FROM app.v_product_inventory AS v WHERE v.id = v_product.id));
        EXCEPTION WHEN unique_violation THEN
            SELECT p.id, p.identifier, p.version INTO v_product
              FROM orders.tb_product AS p WHERE p.tenant_id = v_tenant AND p.sku = p_sku;
        END;
    END IF;
    RETURN core.result_noop('already_exists', 'product', v_product.id, v_product.identifier, v_product.version,
                            (SELECT v.data FROM app.v_product_inventory AS v WHERE v.id = v_product.id),
                            'A product with this SKU already exists.');
END
$$;
COMMENT ON FUNCTION core.create_product(text, text, numeric, integer, integer) IS
    'Creates a product; its SKU is its identifier; noop:already_exists for a known SKU; needs products.manage.';

CREATE FUNCTION core.restock_product(p_product text, p_quantity integer)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    c_most   constant integer := 2147483647;  -- stock is an integer column
    v_ref    record;
    v_before jsonb;
    v_after  jsonb;
    v_row    orders.tb_product;
BEGIN
    IF NOT core.has_permission('products.manage') THEN
        RETURN core.forbidden('products.manage', 'product');
    END IF;
    v_ref := core.resolve_product(p_product);
    IF v_ref.pk IS NULL THEN
        RETURN core.not_found('product', p_product);
    END IF;
    v_before := (SELECT v.data FROM app.v_product_inventory AS v WHERE v.id = v_ref.id);
    -- A restock past the most stock a product can hold is refused by name, not by overflow.
    UPDATE orders.tb_product AS p
       SET stock_on_hand = p.stock_on_hand + p_quantity
     WHERE p.tenant_id = core.current_tenant_id() AND p.pk_product = v_ref.pk
       AND p.stock_on_hand <= c_most - p_quantity
    RETURNING p.* INTO v_row;
    IF v_row.pk_product IS NULL THEN
        RETURN core.result_refused('validation:out_of_range',
                                   pg_catalog.format('%s has %s on hand; %s more would pass the most a product can hold, %s.',
                                                     v_ref.identifier, v_before ->> 'onHand', p_quantity, c_most),
                                   'product',
                                   pg_catalog.jsonb_build_array(core.field_error('quantity', 'out_of_range',
                                       pg_catalog.format('quantity must be at most %s for %s', c_most - (v_before ->> 'onHand')::bigint,
                                                         v_ref.identifier))),
                                   v_ref.id, v_ref.identifier, (v_before ->> 'version')::integer);
    END IF;
    v_after := (SELECT v.data FROM app.v_product_inventory AS v WHERE v.id = v_ref.id);
    RETURN core.result_success('updated', 'product', v_row.id, v_row.identifier, v_row.version, v_after,
                               core.changed_fields(v_before - 'version', v_after - 'version'),
                               pg_catalog.format('Restocked %s by %s; %s available.', v_row.sku, p_quantity, v_after ->> 'available'));
END
$$;
COMMENT ON FUNCTION core.restock_product(text, integer) IS
    'Adds stock on hand to a product (validation:out_of_range past the largest integer); needs products.manage.';

CREATE FUNCTION core.reserve_stock(p_products bigint[], p_quantities integer[], p_fields text[],
                                   OUT shortfalls jsonb, OUT units integer, OUT total numeric)
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- The lines: one product pk, quantity and input path each, one line per product. Locks the
-- products in pk order (no deadlock between concurrent orders), then either reserves every
-- line and returns no shortfalls ('[]') with the lines' units and total at the locked prices,
-- or reserves nothing and returns the shortfalls. Locking, checking and totalling are one
-- statement: the locked rows are read as they are once locked.
-- The products are found by pk_product = ANY (p_products): a cached generic plan cannot know
-- how many lines come, and a join with the unnested lines alone was planned as a hash of every
-- product of the tenant, scanned whole for each order.
DECLARE
    v_tenant uuid := core.current_tenant_id();
BEGIN
    SELECT coalesce(pg_catalog.jsonb_agg(core.field_error(l.field, 'insufficient_stock',
               pg_catalog.format('%s has %s available, %s requested', p.sku, p.stock_on_hand - p.stock_reserved, l.quantity))
               ORDER BY l.field) FILTER (WHERE p.stock_on_hand - p.stock_reserved < l.quantity), '[]'),
           pg_catalog.sum(l.quantity)::integer,
           pg_catalog.sum(p.price * l.quantity)
      INTO shortfalls, units, total
      FROM ROWS FROM (pg_catalog.unnest(p_products), pg_catalog.unnest(p_quantities), pg_catalog.unnest(p_fields))
           AS l (pk, quantity, field)
      JOIN (SELECT lp.pk_product, lp.sku, lp.price, lp.stock_on_hand, lp.stock_reserved
              FROM orders.tb_product AS lp
             WHERE lp.tenant_id = v_tenant AND lp.pk_product = ANY (p_products)
             ORDER BY lp.pk_product
               FOR UPDATE) AS p ON p.pk_product = l.pk;
    IF shortfalls <> '[]' THEN
        RETURN;
    END IF;
    UPDATE orders.tb_product AS p
       SET stock_reserved = p.stock_reserved + l.quantity
      FROM ROWS FROM (pg_catalog.unnest(p_products), pg_catalog.unnest(p_quantities)) AS l (pk, quantity)
     WHERE p.tenant_id = v_tenant AND p.pk_product = ANY (p_products) AND p.pk_product = l.pk;
END
$$;
COMMENT ON FUNCTION core.reserve_stock(bigint[], integer[], text[]) IS
    'Reserves stock for order lines (product pks, quantities, input paths) atomically: all or nothing, products locked in pk order; returns the shortfalls, if any, and the lines'' units and total.';

CREATE FUNCTION core.create_order(
    p_customer text,
    p_items jsonb,
    p_idempotency_key text DEFAULT NULL,
    p_notes text DEFAULT NULL
)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant   uuid := core.current_tenant_id();
    v_existing record;
    v_customer record;
    v_item     jsonb;
    v_ref      record;
    v_line     integer;
    -- The order's lines, one per product, in the order first named.
    v_products   bigint[] := '{}';
    v_quantities integer[] := '{}';
    v_fields     text[] := '{}';
    v_missing  jsonb := '[]';
    v_reserved record;
    v_order    record;
BEGIN
    IF NOT core.has_permission('orders.create') THEN
        RETURN core.forbidden('orders.create', 'order');
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
        SELECT o.id, o.identifier, o.version INTO v_existing
          FROM orders.tb_order AS o WHERE o.tenant_id = v_tenant AND o.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            RETURN core.result_noop('already_exists', 'order', v_existing.id, v_existing.identifier, v_existing.version,
                                    core.order_data(v_existing.id), 'This idempotency key already created an order.');
        END IF;
    END IF;
    v_customer := core.resolve_customer(p_customer);
    IF v_customer.pk IS NULL THEN
        RETURN core.not_found('customer', p_customer);
    END IF;

    -- Resolve every product; the same product twice becomes one line.
    FOR v_index IN 0 .. coalesce(pg_catalog.jsonb_array_length(p_items), 0) - 1 LOOP
        v_item := p_items -> v_index;
        v_ref := core.resolve_product(v_item ->> 'product');
        IF v_ref.pk IS NULL THEN
            v_missing := v_missing || pg_catalog.jsonb_build_array(core.field_error(
                pg_catalog.format('items[%s].product', v_index), 'not_found',
                pg_catalog.format('No product %s in this organization.', v_item ->> 'product')));
        ELSE
            v_line := pg_catalog.array_position(v_products, v_ref.pk);
            IF v_line IS NULL THEN
                v_products := v_products || v_ref.pk;
                v_quantities := v_quantities || (v_item ->> 'quantity')::integer;
                v_fields := v_fields || pg_catalog.format('items[%s].quantity', v_index);
            ELSE
                v_quantities[v_line] := v_quantities[v_line] + (v_item ->> 'quantity')::integer;
            END IF;
        END IF;
    END LOOP;
    IF v_missing <> '[]' THEN
        RETURN core.result_refused('not_found:product', v_missing -> 0 ->> 'message', 'order', v_missing);
    END IF;

    BEGIN
        v_reserved := core.reserve_stock(v_products, v_quantities, v_fields);
        IF v_reserved.shortfalls <> '[]' THEN
            RETURN core.result_refused('conflict:insufficient_stock', v_reserved.shortfalls -> 0 ->> 'message', 'order',
                                       v_reserved.shortfalls);
        END IF;
        IF v_reserved.total > core.max_order_total() THEN
            -- Raised, not returned: the handler below runs after the reservation is undone.
            RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range';
        END IF;
        INSERT INTO orders.tb_order (tenant_id, identifier, fk_customer, item_count, total_amount, notes, idempotency_key)
        VALUES (v_tenant, core.next_identifier('order', 'ORD-'), v_customer.pk, v_reserved.units, v_reserved.total,
                p_notes, p_idempotency_key)
        RETURNING pk_order, id, identifier INTO v_order;
        -- pk_product = ANY (v_products) as in reserve_stock: it keeps the cached plan on the key.
        INSERT INTO orders.tb_order_item (tenant_id, identifier, fk_order, fk_product, line_number, quantity, unit_price, line_total)
        SELECT v_tenant, v_order.identifier || '-' || x.o, v_order.pk_order, p.pk_product, x.o,
               x.quantity, p.price, p.price * x.quantity
          FROM ROWS FROM (pg_catalog.unnest(v_products), pg_catalog.unnest(v_quantities)) WITH ORDINALITY AS x (pk, quantity, o)
          JOIN orders.tb_product AS p
            ON p.tenant_id = v_tenant AND p.pk_product = ANY (v_products) AND p.pk_product = x.pk;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RETURN core.order_total_too_large('items', v_reserved.total);
    WHEN unique_violation THEN
        -- A concurrent call with the same idempotency key committed first. This block's
        -- reservation and order number were rolled back with it; answer with that order.
        SELECT o.id, o.identifier, o.version INTO v_existing
          FROM orders.tb_order AS o WHERE o.tenant_id = v_tenant AND o.idempotency_key = p_idempotency_key;
        IF p_idempotency_key IS NULL OR v_existing.id IS NULL THEN
            RAISE;
        END IF;
        RETURN core.result_noop('already_exists', 'order', v_existing.id, v_existing.identifier, v_existing.version,
                                core.order_data(v_existing.id), 'This idempotency key already created an order.');
    END;
    RETURN core.result_success('created', 'order', v_order.id, v_order.identifier, 1, core.order_data(v_order.id));
END
$$;
COMMENT ON FUNCTION core.create_order(text, jsonb, text, text) IS
    'Creates an order for a customer: resolves every product, reserves stock for all lines or none (never oversells), totals it; an idempotency key makes a repeat noop:already_exists.';

CREATE FUNCTION core.lock_order(p_order text)
    RETURNS orders.tb_order
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- The order of the tenant in context, locked for update; NULL when there is none. A current
-- id or identifier is found and locked in one statement (every change to an order starts
-- here); a retired identifier is resolved by core.resolve first.
DECLARE
    v_row orders.tb_order;
    v_pk  bigint;
BEGIN
    IF core.is_uuid(p_order) THEN
        SELECT * INTO v_row FROM orders.tb_order AS o
         WHERE o.tenant_id = core.current_tenant_id() AND o.id = p_order::uuid
           FOR UPDATE;
    ELSE
        SELECT * INTO v_row FROM orders.tb_order AS o
         WHERE o.tenant_id = core.current_tenant_id() AND o.identifier = p_order
           FOR UPDATE;
    END IF;
    IF v_row.pk_order IS NOT NULL THEN
        RETURN v_row;
    END IF;
    v_pk := (core.resolve('orders.tb_order', p_order)).pk;
    IF v_pk IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_row FROM orders.tb_order AS o
     WHERE o.tenant_id = core.current_tenant_id() AND o.pk_order = v_pk
       FOR UPDATE;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION core.lock_order(text) IS 'Finds an order by id or identifier and locks it for update (NULL when not found).';

CREATE TYPE core.locked_order AS (
    order_row orders.tb_order,
    refusal   app.mutation_result
);
COMMENT ON TYPE core.locked_order IS 'An order locked for a change, or the refusal to return instead.';

CREATE FUNCTION core.lock_order_at_version(p_order text, p_version integer)
    RETURNS core.locked_order
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- The common start of a change to an order: find and lock it (not_found:order otherwise) and,
-- when the caller names the version it saw, refuse a stale one (conflict:stale_version).
DECLARE
    v_order orders.tb_order := core.lock_order(p_order);
BEGIN
    IF v_order.pk_order IS NULL THEN
        RETURN ROW(NULL, core.not_found('order', p_order))::core.locked_order;
    END IF;
    IF p_version IS NOT NULL AND p_version <> v_order.version THEN
        RETURN ROW(v_order, core.stale_version('order', v_order.id, v_order.identifier, v_order.version, p_version))::core.locked_order;
    END IF;
    RETURN ROW(v_order, NULL)::core.locked_order;
END
$$;
COMMENT ON FUNCTION core.lock_order_at_version(text, integer) IS
    'Finds and locks an order, refusing with not_found:order or conflict:stale_version (when a version is given).';

CREATE FUNCTION core.release_stock(p_order bigint, p_shipped boolean)
    RETURNS void
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- An order's reservation ends: on cancellation the stock becomes available again; on
-- shipping it also leaves the shelf. Products are locked in pk order, like reserve_stock.
-- An order has at most one line per product (tb_order_item_product_key), so each product
-- joins one line and nothing needs summing.
DECLARE
    v_tenant uuid := core.current_tenant_id();
BEGIN
    PERFORM 1 FROM orders.tb_product AS p
     WHERE p.tenant_id = v_tenant
       AND p.pk_product IN (SELECT it.fk_product FROM orders.tb_order_item AS it WHERE it.tenant_id = v_tenant AND it.fk_order = p_order)
     ORDER BY p.pk_product
       FOR UPDATE;
    UPDATE orders.tb_product AS p
       SET stock_reserved = p.stock_reserved - it.quantity,
           stock_on_hand = p.stock_on_hand - CASE WHEN p_shipped THEN it.quantity ELSE 0 END
      FROM orders.tb_order_item AS it
     WHERE it.tenant_id = v_tenant AND it.fk_order = p_order
       AND p.tenant_id = v_tenant AND p.pk_product = it.fk_product;
END
$$;
COMMENT ON FUNCTION core.release_stock(bigint, boolean) IS 'Ends an order''s stock reservation: released on cancellation, also taken off hand when shipped.';

CREATE FUNCTION core.add_order_item(p_order text, p_product text, p_quantity integer, p_version integer DEFAULT NULL)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant  uuid := core.current_tenant_id();
    v_lock    core.locked_order;
    v_order   orders.tb_order;
    v_product record;
    v_short   jsonb;
    v_total   numeric;
    v_before  jsonb;
    v_after   jsonb;
BEGIN
    IF NOT core.has_permission('orders.create') THEN
        RETURN core.forbidden('orders.create', 'order');
    END IF;
    v_lock := core.lock_order_at_version(p_order, p_version);
    IF (v_lock.refusal).status IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    v_order := v_lock.order_row;
    IF v_order.status <> 'pending' THEN
        RETURN core.result_refused('conflict:invalid_transition',
                                   pg_catalog.format('Items can be added to pending orders only; %s is %s.', v_order.identifier, v_order.status),
                                   'order', NULL, v_order.id, v_order.identifier, v_order.version);
    END IF;
    v_product := core.resolve_product(p_product);
    IF v_product.pk IS NULL THEN
        RETURN core.not_found('product', p_product);
    END IF;
    -- The order's new total, checked before anything is written. The product is locked first,
    -- as reserve_stock will (the order is already locked), so its price cannot change between.
    SELECT v_order.total_amount - coalesce(it.line_total, 0)
           + coalesce(it.unit_price, p.price) * (coalesce(it.quantity, 0) + p_quantity) AS order_total
      INTO v_total
      FROM orders.tb_product AS p
      LEFT JOIN orders.tb_order_item AS it
        ON it.tenant_id = v_tenant AND it.fk_order = v_order.pk_order AND it.fk_product = p.pk_product
     WHERE p.tenant_id = v_tenant AND p.pk_product = v_product.pk
       FOR UPDATE OF p;
    IF v_total > core.max_order_total() THEN
        RETURN core.order_total_too_large('quantity', v_total, v_order.id, v_order.identifier, v_order.version);
    END IF;
    v_short := (core.reserve_stock(ARRAY[v_product.pk], ARRAY[p_quantity], ARRAY['quantity'])).shortfalls;
    IF v_short <> '[]' THEN
        RETURN core.result_refused('conflict:insufficient_stock', v_short -> 0 ->> 'message', 'order', v_short,
                                   v_order.id, v_order.identifier, v_order.version);
    END IF;
    v_before := core.order_data(v_order.id);
    -- The same product again makes its line longer, at the price it was first ordered at.
    UPDATE orders.tb_order_item AS it
       SET quantity = it.quantity + p_quantity, line_total = (it.quantity + p_quantity) * it.unit_price
     WHERE it.tenant_id = v_tenant AND it.fk_order = v_order.pk_order AND it.fk_product = v_product.pk;
    IF NOT FOUND THEN
        INSERT INTO orders.tb_order_item (tenant_id, identifier, fk_order, fk_product, line_number, quantity, unit_price, line_total)
        SELECT v_tenant, v_order.identifier || '-' || n.next_line, v_order.pk_order, p.pk_product, n.next_line,
               p_quantity, p.price, p.price * p_quantity
          FROM orders.tb_product AS p,
               (SELECT coalesce(pg_catalog.max(it.line_number), 0) + 1 AS next_line
                  FROM orders.tb_order_item AS it WHERE it.tenant_id = v_tenant AND it.fk_order = v_order.pk_order) AS n
         WHERE p.tenant_id = v_tenant AND p.pk_product = v_product.pk;
    END IF;
    UPDATE orders.tb_order AS o
       SET item_count = t.units, total_amount = t.total
      FROM (SELECT pg_catalog.sum(it.quantity)::integer AS units, pg_catalog.sum(it.line_total) AS total
              FROM orders.tb_order_item AS it WHERE it.tenant_id = v_tenant AND it.fk_order = v_order.pk_order) AS t
     WHERE o.tenant_id = v_tenant AND o.pk_order = v_order.pk_order
    RETURNING o.version INTO v_order.version;
    v_after := core.order_data(v_order.id);
    RETURN core.result_success('updated', 'order', v_order.id, v_order.identifier, v_order.version, v_after,
                               core.changed_fields(v_before - ARRAY['version', 'updatedAt'], v_after - ARRAY['version', 'updatedAt']));
END
$$;
COMMENT ON FUNCTION core.add_order_item(text, text, integer, integer) IS
    'Adds a product to a pending order, reserving its stock; optimistic lock on version; needs orders.create.';

CREATE FUNCTION core.process_payment(p_order text, p_amount numeric, p_method text, p_version integer)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_lock    core.locked_order;
    v_order  orders.tb_order;
    v_after  jsonb;
BEGIN
    IF NOT core.has_permission('orders.pay') THEN
        RETURN core.forbidden('orders.pay', 'order');
    END IF;
    -- The version is checked first: of two payments made from the same read, one wins and the
    -- other learns it was stale, rather than being told the order is already paid.
    v_lock := core.lock_order_at_version(p_order, p_version);
    IF (v_lock.refusal).status IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    v_order := v_lock.order_row;
    IF v_order.status IN ('paid', 'shipped', 'delivered') THEN
        RETURN core.result_noop('already_paid', 'order', v_order.id, v_order.identifier, v_order.version,
                                core.order_data(v_order.id));
    END IF;
    IF v_order.status <> 'pending' THEN
        RETURN core.result_refused('conflict:invalid_transition',
                                   pg_catalog.format('A %s order cannot be paid.', v_order.status),
                                   'order', NULL, v_order.id, v_order.identifier, v_order.version);
    END IF;
    IF p_amount <> v_order.total_amount THEN
        RETURN core.result_refused('conflict:amount_mismatch',
                                   pg_catalog.format('The order total is %s; a payment of %s does not settle it.', v_order.total_amount, p_amount),
                                   'order', pg_catalog.jsonb_build_array(core.field_error('amount', 'amount_mismatch',
                                       pg_catalog.format('amount must equal the order total %s', v_order.total_amount))),
                                   v_order.id, v_order.identifier, v_order.version);
    END IF;
    -- A free order (total 0) is settled by a payment of 0, which moves no money: no payment
    -- row (a payment is always of something), but the order is paid and the event says how.
    IF p_amount > 0 THEN
        INSERT INTO orders.tb_payment (tenant_id, identifier, fk_order, amount, method)
        VALUES (v_order.tenant_id, core.next_identifier('payment', 'PAY-'), v_order.pk_order, p_amount, p_method);
    END IF;
    UPDATE orders.tb_order AS o SET status = 'paid', paid_at = pg_catalog.now()
     WHERE o.tenant_id = v_order.tenant_id AND o.pk_order = v_order.pk_order
    RETURNING o.version INTO v_order.version;
    PERFORM audit.log_event('order.paid', 'order', v_order.id, v_order.identifier, NULL,
                            pg_catalog.jsonb_build_object('amount', p_amount, 'method', p_method));
    v_after := core.order_data(v_order.id);
    RETURN core.result_success('updated', 'order', v_order.id, v_order.identifier, v_order.version, v_after,
                               -- What a payment changes is known: no before-and-after documents to compare.
                               CASE WHEN p_amount > 0 THEN ARRAY['paidAt', 'payments', 'status'] ELSE ARRAY['paidAt', 'status'] END,
                               CASE WHEN p_amount > 0 THEN 'Payment recorded; the order is paid.'
                                    ELSE 'The order is free; it is paid without a payment.' END);
END
$$;
COMMENT ON FUNCTION core.process_payment(text, numeric, text, integer) IS
    'Pays a pending order in full (amount must equal the total; a free order is settled by 0, with no payment row); '
    'optimistic lock on version; noop:already_paid; needs orders.pay.';

CREATE FUNCTION core.cancel_order(p_order text, p_reason text, p_version integer DEFAULT NULL)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_lock    core.locked_order;
    v_order  orders.tb_order;
    v_refund numeric;
    v_after  jsonb;
BEGIN
    IF NOT core.has_permission('orders.cancel') THEN
        RETURN core.forbidden('orders.cancel', 'order');
    END IF;
    v_lock := core.lock_order_at_version(p_order, p_version);
    v_order := v_lock.order_row;
    -- Already cancelled is what the caller asked for, whatever version it saw: a retried
    -- cancellation gets its NOOP, as through update_order_status.
    IF v_order.status = 'cancelled' THEN
        RETURN core.result_noop('already_cancelled', 'order', v_order.id, v_order.identifier, v_order.version,
                                core.order_data(v_order.id));
    END IF;
    IF (v_lock.refusal).status IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    IF v_order.status IN ('shipped', 'delivered') THEN
        RETURN core.result_refused('conflict:already_shipped',
                                   pg_catalog.format('%s is %s and can no longer be cancelled.', v_order.identifier, v_order.status),
                                   'order', NULL, v_order.id, v_order.identifier, v_order.version);
    END IF;
    PERFORM core.release_stock(v_order.pk_order, false);
    -- A paid order is refunded in full: every captured payment is marked refunded, and the
    -- refund is what that marks plus anything refunded before (the scan of the table sees it
    -- as it was before this statement).
    WITH refunded AS (
        UPDATE orders.tb_payment AS pm SET status = 'refunded', refunded_at = pg_catalog.now()
         WHERE pm.tenant_id = v_order.tenant_id AND pm.fk_order = v_order.pk_order AND pm.status = 'captured'
        RETURNING pm.amount
    )
    SELECT coalesce(pg_catalog.sum(r.amount), 0) INTO v_refund
      FROM (SELECT rf.amount FROM refunded AS rf
            UNION ALL
            SELECT pm.amount FROM orders.tb_payment AS pm
             WHERE pm.tenant_id = v_order.tenant_id AND pm.fk_order = v_order.pk_order AND pm.status = 'refunded') AS r;
    UPDATE orders.tb_order AS o
       SET status = 'cancelled', cancel_reason = p_reason, cancelled_at = pg_catalog.now(),
           refund_amount = CASE WHEN v_refund > 0 THEN v_refund END
     WHERE o.tenant_id = v_order.tenant_id AND o.pk_order = v_order.pk_order
    RETURNING o.version INTO v_order.version;
    PERFORM audit.log_event('order.cancelled', 'order', v_order.id, v_order.identifier, NULL,
                            pg_catalog.jsonb_build_object('reason', p_reason, 'refund', v_refund, 'previousStatus', v_order.status));
    v_after := core.order_data(v_order.id);
    RETURN core.result_success('updated', 'order', v_order.id, v_order.identifier, v_order.version, v_after,
                               -- What a cancellation changes is known: no before-and-after documents to compare.
                               CASE WHEN v_refund > 0 THEN ARRAY['cancelReason', 'cancelledAt', 'payments', 'refundAmount', 'status']
                                    ELSE ARRAY['cancelReason', 'cancelledAt', 'status'] END,
                               CASE WHEN v_refund > 0 THEN pg_catalog.format('Order cancelled; %s refunded.', v_refund)
                                    ELSE 'Order cancelled.' END,
                               pg_catalog.jsonb_build_object('refundAmount', v_refund));
END
$$;
COMMENT ON FUNCTION core.cancel_order(text, text, integer) IS
    'Cancels a pending or paid order: releases its stock, refunds what was paid, records the reason; shipped is conflict:already_shipped, already cancelled noop:already_cancelled whatever the version; needs orders.cancel.';

CREATE FUNCTION core.update_order_status(p_order text, p_status text, p_version integer)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- The state machine: pending -> paid -> shipped -> delivered, cancelled from pending or paid;
-- every other move is conflict:invalid_transition (SPEC §3.5). Paying needs a payment
-- (process_payment), so pending -> paid is refused here with a pointer to it; cancelling is
-- cancel_order's work, with its permission and a default reason.
DECLARE
    v_order  orders.tb_order;
    v_before jsonb;
    v_after  jsonb;
BEGIN
    -- The permission follows from the status asked for, so it is checked before the order is
    -- locked, as in every other command: a refused caller holds no lock writers would wait on.
    IF p_status = 'cancelled' THEN
        IF NOT core.has_permission('orders.cancel') THEN
            RETURN core.forbidden('orders.cancel', 'order');
        END IF;
    ELSIF NOT core.has_permission('orders.fulfil') THEN
        RETURN core.forbidden('orders.fulfil', 'order');
    END IF;
    v_order := core.lock_order(p_order);
    IF v_order.pk_order IS NULL THEN
        RETURN core.not_found('order', p_order);
    END IF;
    -- cancel_order checks the version (and answers noop:already_cancelled whatever it is).
    IF p_status = 'cancelled' AND v_order.status IN ('pending', 'paid', 'cancelled') THEN
        RETURN core.cancel_order(p_order, 'Cancelled by status change', p_version);
    END IF;
    IF p_version <> v_order.version THEN
        RETURN core.stale_version('order', v_order.id, v_order.identifier, v_order.version, p_version);
    END IF;
    IF p_status = v_order.status THEN
        RETURN core.result_noop('no_changes', 'order', v_order.id, v_order.identifier, v_order.version, core.order_data(v_order.id),
                                pg_catalog.format('%s is already %s.', v_order.identifier, v_order.status));
    END IF;
    IF NOT (v_order.status, p_status) IN (('paid', 'shipped'), ('shipped', 'delivered')) THEN
        RETURN core.result_refused('conflict:invalid_transition',
                                   pg_catalog.format('%s cannot go from %s to %s%s.', v_order.identifier, v_order.status, p_status,
                                       CASE WHEN p_status = 'paid' THEN ' without a payment (use process_payment)' ELSE '' END),
                                   'order', NULL, v_order.id, v_order.identifier, v_order.version);
    END IF;
    v_before := core.order_data(v_order.id);
    IF p_status = 'shipped' THEN
        PERFORM core.release_stock(v_order.pk_order, true);
    END IF;
    UPDATE orders.tb_order AS o
       SET status = p_status,
           shipped_at = CASE WHEN p_status = 'shipped' THEN pg_catalog.now() ELSE o.shipped_at END,
           delivered_at = CASE WHEN p_status = 'delivered' THEN pg_catalog.now() ELSE o.delivered_at END
     WHERE o.tenant_id = v_order.tenant_id AND o.pk_order = v_order.pk_order
    RETURNING o.version INTO v_order.version;
    PERFORM audit.log_event('order.' || p_status, 'order', v_order.id, v_order.identifier, NULL,
                            pg_catalog.jsonb_build_object('previousStatus', v_order.status));
    v_after := core.order_data(v_order.id);
    RETURN core.result_success('updated', 'order', v_order.id, v_order.identifier, v_order.version, v_after,
                               core.changed_fields(v_before - ARRAY['version', 'updatedAt'], v_after - ARRAY['version', 'updatedAt']));
END
$$;
COMMENT ON FUNCTION core.update_order_status(text, text, integer) IS
    'Moves an order through its state machine (paid -> shipped -> delivered; cancelled from pending or paid, through cancel_order); anything else is conflict:invalid_transition.';

CREATE FUNCTION core.refresh_revenue()
    RETURNS integer
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- Recomputes the revenue projection of every tenant, one tenant at a time (forced RLS keeps
-- even the owner inside one tenant). Returns the number of product rows written.
DECLARE
    v_tenant uuid;
    v_rows   integer := 0;
    v_count  integer;
    v_now    timestamptz := pg_catalog.now();
BEGIN
    FOR v_tenant IN SELECT o.tenant_id FROM tenancy.tb_organization AS o ORDER BY o.tenant_id LOOP
        PERFORM core.use_tenant(v_tenant);
        DELETE FROM orders.tb_product_revenue AS r WHERE r.tenant_id = v_tenant;
        INSERT INTO orders.tb_product_revenue (tenant_id, fk_product, units_sold, order_count, revenue, refreshed_at)
        SELECT it.tenant_id, it.fk_product, pg_catalog.sum(it.quantity), pg_catalog.count(DISTINCT it.fk_order),
               pg_catalog.sum(it.line_total), v_now
          FROM orders.tb_order_item AS it
          JOIN orders.tb_order AS o ON o.tenant_id = it.tenant_id AND o.pk_order = it.fk_order
         WHERE it.tenant_id = v_tenant AND o.status IN ('paid', 'shipped', 'delivered')
         GROUP BY it.tenant_id, it.fk_product;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_rows := v_rows + v_count;
    END LOOP;
    PERFORM core.use_tenant(NULL);
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION core.refresh_revenue() IS 'Recomputes app.v_revenue_by_product for every tenant (strata refresh); returns the rows written.';
