-- requires: 0005_open_orders

/* Every change to orders data is an audit event; a customer's personal details (name,
   email, phone, address) stay out of the append-only ledger. The revenue projection is
   derived data and is not tracked. */
SELECT audit.enable_tracking('orders.tb_customer', p_exclude => ARRAY['name', 'email', 'phone', 'address']);
SELECT audit.enable_tracking('orders.tb_product');
SELECT audit.enable_tracking('orders.tb_order');
SELECT audit.enable_tracking('orders.tb_order_item');
SELECT audit.enable_tracking('orders.tb_payment');
