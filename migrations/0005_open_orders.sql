-- depends: 0004_orders
-- 0005 open orders per product: the read side of the inventory screen's "in orders" column,
-- kept current by triggers on the order tables (sql/orders/25_open_orders.sql), so the screen
-- reads one row per product instead of counting open orders on every page.

-- One line per product per order: create_order and add_order_item already merge a repeated
-- product into its line; the constraint makes that a rule every writer keeps, and it is what
-- lets "open orders holding a product" be counted from lines.
ALTER TABLE orders.tb_order_item
    ADD CONSTRAINT tb_order_item_product_key UNIQUE (tenant_id, fk_order, fk_product);

-- The inventory page lists products by SKU: read them in that order and stop at the page.
CREATE INDEX tb_product_sku_idx ON orders.tb_product (tenant_id, sku);

CREATE TABLE orders.tb_product_open_orders (
    tenant_id   uuid NOT NULL,
    fk_product  bigint NOT NULL,
    open_orders integer NOT NULL,
    CONSTRAINT tb_product_open_orders_pkey PRIMARY KEY (tenant_id, fk_product),
    CONSTRAINT tb_product_open_orders_count CHECK (open_orders >= 0),
    CONSTRAINT tb_product_open_orders_product_fkey FOREIGN KEY (tenant_id, fk_product)
        REFERENCES orders.tb_product (tenant_id, pk_product) ON DELETE CASCADE
);
COMMENT ON TABLE orders.tb_product_open_orders IS
    'How many open (pending or paid) orders hold each product; maintained by triggers on tb_order and tb_order_item.';

-- Existing orders, every tenant at once. While migrations run the code layer (and with it the
-- tenant policies) is dropped, so forced RLS would show the owner nothing: lift FORCE for the
-- count. ALTER TABLE holds its lock to commit, so no one sees the tables unforced.
ALTER TABLE orders.tb_order NO FORCE ROW LEVEL SECURITY;
ALTER TABLE orders.tb_order_item NO FORCE ROW LEVEL SECURITY;
INSERT INTO orders.tb_product_open_orders (tenant_id, fk_product, open_orders)
SELECT it.tenant_id, it.fk_product, pg_catalog.count(*)
  FROM orders.tb_order_item AS it
  JOIN orders.tb_order AS o ON o.tenant_id = it.tenant_id AND o.pk_order = it.fk_order
 WHERE o.status IN ('pending', 'paid')
 GROUP BY it.tenant_id, it.fk_product;
ALTER TABLE orders.tb_order FORCE ROW LEVEL SECURITY;
ALTER TABLE orders.tb_order_item FORCE ROW LEVEL SECURITY;
