-- requires: 0005_open_orders

SELECT core.setup_tenant_table('orders.tb_customer');
SELECT core.setup_tenant_table('orders.tb_product');
SELECT core.setup_tenant_table('orders.tb_order');
SELECT core.setup_tenant_table('orders.tb_order_item');
SELECT core.setup_tenant_table('orders.tb_payment');
SELECT core.setup_tenant_table('orders.tb_product_revenue');
SELECT core.setup_tenant_table('orders.tb_product_open_orders');
