DROP TABLE orders.tb_product_open_orders;
DROP INDEX orders.tb_product_sku_idx;
ALTER TABLE orders.tb_order_item DROP CONSTRAINT tb_order_item_product_key;
