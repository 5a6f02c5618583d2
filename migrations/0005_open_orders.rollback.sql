DROP TABLE orders.tb_product_open_orders;
ALTER TABLE orders.tb_order_item DROP CONSTRAINT tb_order_item_product_key;
