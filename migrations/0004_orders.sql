-- depends: 0003_tenancy
-- 0004 orders: the CQRS reference domain. Customers, products with stock on hand and
-- reserved, orders with their items and payments, and the revenue projection that
-- `strata refresh` recomputes. Money is numeric(12,2); no card data is ever stored.

CREATE TABLE orders.tb_customer (
    pk_customer bigint GENERATED ALWAYS AS IDENTITY,
    id          uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id   uuid NOT NULL,
    identifier  text NOT NULL,
    name        text NOT NULL,
    email       text NOT NULL,
    phone       text,
    address     jsonb,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  uuid,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  uuid,
    CONSTRAINT tb_customer_pkey PRIMARY KEY (tenant_id, pk_customer),
    CONSTRAINT tb_customer_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_customer_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_customer_email_key UNIQUE (tenant_id, email),
    CONSTRAINT tb_customer_email_is_normalized CHECK (email = pg_catalog.lower(email)),
    CONSTRAINT tb_customer_organization_fkey FOREIGN KEY (tenant_id) REFERENCES tenancy.tb_organization (tenant_id)
);
COMMENT ON TABLE orders.tb_customer IS 'A customer of one tenant; identifier CUS-000001, email unique per tenant.';

CREATE TABLE orders.tb_product (
    pk_product          bigint GENERATED ALWAYS AS IDENTITY,
    id                  uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id           uuid NOT NULL,
    -- The SKU is what people type, so it is the identifier; a changed SKU keeps the old one resolvable.
    identifier          text NOT NULL,
    sku                 text NOT NULL,
    name                text NOT NULL,
    price               numeric(12, 2) NOT NULL,
    stock_on_hand       integer NOT NULL DEFAULT 0,
    stock_reserved      integer NOT NULL DEFAULT 0,
    low_stock_threshold integer NOT NULL DEFAULT 5,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          uuid,
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by          uuid,
    CONSTRAINT tb_product_pkey PRIMARY KEY (tenant_id, pk_product),
    CONSTRAINT tb_product_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_product_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_product_identifier_is_sku CHECK (identifier = sku),
    CONSTRAINT tb_product_price CHECK (price >= 0),
    -- The invariant that makes overselling impossible, whatever the code above it does.
    CONSTRAINT tb_product_stock CHECK (stock_on_hand >= 0 AND stock_reserved >= 0 AND stock_reserved <= stock_on_hand),
    CONSTRAINT tb_product_low_stock_threshold CHECK (low_stock_threshold >= 0),
    CONSTRAINT tb_product_organization_fkey FOREIGN KEY (tenant_id) REFERENCES tenancy.tb_organization (tenant_id)
);
COMMENT ON TABLE orders.tb_product IS 'A product with its price and stock: on hand, and reserved by open orders (available = on hand - reserved).';

CREATE TABLE orders.tb_order (
    pk_order        bigint GENERATED ALWAYS AS IDENTITY,
    id              uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id       uuid NOT NULL,
    identifier      text NOT NULL,
    fk_customer     bigint NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    item_count      integer NOT NULL DEFAULT 0,
    total_amount    numeric(12, 2) NOT NULL DEFAULT 0,
    refund_amount   numeric(12, 2),
    notes           text,
    idempotency_key text,
    cancel_reason   text,
    paid_at         timestamptz,
    shipped_at      timestamptz,
    delivered_at    timestamptz,
    cancelled_at    timestamptz,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by      uuid,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by      uuid,
    CONSTRAINT tb_order_pkey PRIMARY KEY (tenant_id, pk_order),
    CONSTRAINT tb_order_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_order_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_order_status CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    CONSTRAINT tb_order_amounts CHECK (total_amount >= 0 AND item_count >= 0 AND (refund_amount IS NULL OR refund_amount >= 0)),
    CONSTRAINT tb_order_customer_fkey FOREIGN KEY (tenant_id, fk_customer) REFERENCES orders.tb_customer (tenant_id, pk_customer)
);
CREATE UNIQUE INDEX tb_order_idempotency_key ON orders.tb_order (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The summary page (newest first) and a customer's history are index range scans.
CREATE INDEX tb_order_created_idx ON orders.tb_order (tenant_id, created_at DESC, pk_order DESC);
CREATE INDEX tb_order_customer_idx ON orders.tb_order (tenant_id, fk_customer, created_at DESC);
CREATE INDEX tb_order_status_idx ON orders.tb_order (tenant_id, status, created_at DESC);
COMMENT ON TABLE orders.tb_order IS 'An order (ORD-000001): pending -> paid -> shipped -> delivered, or cancelled from pending or paid.';

CREATE TABLE orders.tb_order_item (
    pk_order_item bigint GENERATED ALWAYS AS IDENTITY,
    id            uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id     uuid NOT NULL,
    identifier    text NOT NULL,
    fk_order      bigint NOT NULL,
    fk_product    bigint NOT NULL,
    line_number   integer NOT NULL,
    quantity      integer NOT NULL,
    unit_price    numeric(12, 2) NOT NULL,
    line_total    numeric(12, 2) NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by    uuid,
    updated_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by    uuid,
    CONSTRAINT tb_order_item_pkey PRIMARY KEY (tenant_id, pk_order_item),
    CONSTRAINT tb_order_item_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_order_item_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_order_item_line_key UNIQUE (tenant_id, fk_order, line_number),
    CONSTRAINT tb_order_item_quantity CHECK (quantity > 0 AND unit_price >= 0 AND line_total = quantity * unit_price),
    CONSTRAINT tb_order_item_order_fkey FOREIGN KEY (tenant_id, fk_order) REFERENCES orders.tb_order (tenant_id, pk_order),
    CONSTRAINT tb_order_item_product_fkey FOREIGN KEY (tenant_id, fk_product) REFERENCES orders.tb_product (tenant_id, pk_product)
);
CREATE INDEX tb_order_item_product_idx ON orders.tb_order_item (tenant_id, fk_product);
COMMENT ON TABLE orders.tb_order_item IS 'A line of an order (ORD-000001-1): product, quantity and the price at the time of ordering.';

CREATE TABLE orders.tb_payment (
    pk_payment  bigint GENERATED ALWAYS AS IDENTITY,
    id          uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id   uuid NOT NULL,
    identifier  text NOT NULL,
    fk_order    bigint NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    method      text NOT NULL,
    status      text NOT NULL DEFAULT 'captured',
    refunded_at timestamptz,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  uuid,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  uuid,
    CONSTRAINT tb_payment_pkey PRIMARY KEY (tenant_id, pk_payment),
    CONSTRAINT tb_payment_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_payment_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_payment_amount CHECK (amount > 0),
    CONSTRAINT tb_payment_method CHECK (method IN ('card', 'bank_transfer', 'cash', 'wallet')),
    CONSTRAINT tb_payment_status CHECK (status IN ('captured', 'refunded')),
    CONSTRAINT tb_payment_order_fkey FOREIGN KEY (tenant_id, fk_order) REFERENCES orders.tb_order (tenant_id, pk_order)
);
CREATE INDEX tb_payment_order_idx ON orders.tb_payment (tenant_id, fk_order);
COMMENT ON TABLE orders.tb_payment IS 'A payment of an order (PAY-000001): amount and method only; card numbers never reach the database.';

-- The read side of revenue analytics, recomputed per tenant by core.refresh_revenue()
-- (`strata refresh`). A table with RLS rather than a materialized view, so app roles can
-- read their own tenant's rows and nothing else.
CREATE TABLE orders.tb_product_revenue (
    tenant_id    uuid NOT NULL,
    fk_product   bigint NOT NULL,
    units_sold   bigint NOT NULL,
    order_count  bigint NOT NULL,
    revenue      numeric(14, 2) NOT NULL,
    refreshed_at timestamptz NOT NULL,
    CONSTRAINT tb_product_revenue_pkey PRIMARY KEY (tenant_id, fk_product),
    CONSTRAINT tb_product_revenue_product_fkey FOREIGN KEY (tenant_id, fk_product)
        REFERENCES orders.tb_product (tenant_id, pk_product) ON DELETE CASCADE
);
COMMENT ON TABLE orders.tb_product_revenue IS 'Revenue per product from paid, shipped and delivered orders, as of refreshed_at (strata refresh).';

INSERT INTO tenancy.tb_permission (code, description, default_roles) VALUES
    ('orders.read', 'See customers, products and orders.', '{member,viewer}'),
    ('orders.create', 'Create orders and add items to pending orders.', '{member}'),
    ('orders.pay', 'Record payments.', '{member}'),
    ('orders.cancel', 'Cancel orders.', '{member}'),
    ('orders.fulfil', 'Ship and deliver orders.', '{member}'),
    ('customers.create', 'Create customers.', '{member}'),
    ('products.manage', 'Create products and restock them.', '{}');
-- Tenants that exist already get the new permissions on their seeded roles too. Migrations
-- run as strata_owner, which forced RLS keeps inside one tenant: visit each in turn.
DO $$
DECLARE
    v_tenant uuid;
BEGIN
    FOR v_tenant IN SELECT o.tenant_id FROM tenancy.tb_organization AS o LOOP
        PERFORM pg_catalog.set_config('strata.tenant_id', v_tenant::text, true);
        INSERT INTO tenancy.tb_role_permission (tenant_id, fk_role, permission)
        SELECT r.tenant_id, r.pk_role, p.code
          FROM tenancy.tb_role AS r
          JOIN tenancy.tb_permission AS p ON r.identifier = ANY (p.default_roles)
         WHERE r.tenant_id = v_tenant AND r.is_system
           AND p.code LIKE ANY (ARRAY['orders.%', 'customers.%', 'products.%']);
    END LOOP;
    PERFORM pg_catalog.set_config('strata.tenant_id', '', true);
END
$$;

-- An order's history (app.order_history) reads the ledger by entity: keep that an index scan.
CREATE INDEX events_entity_idx ON audit.events (tenant_id, entity_id, pk_event);
