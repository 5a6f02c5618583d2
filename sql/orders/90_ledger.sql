-- requires: 0005_open_orders

/* Every change to orders data is an audit event, but a change to derived data alone (below);
   a customer's personal details (name, email, phone, address) stay out of the append-only
   ledger. The revenue projection is derived data and is not tracked.

   A product's reserved stock is derived too: it is the quantity of the product on the lines
   of pending and paid orders, and the ledger records each of those lines and every status
   change. So a reservation or its release, which changes stock_reserved (and, through the
   stamp, version, updated_at and updated_by), is not an event of its own; it would add one
   event per line to a create or cancel order and nothing that the order's events do not say
   (tests/sql/test_orders_history.sql rebuilds every product's reservation from the ledger).
   Shipping takes stock off hand, and restocking adds to it: those are product events, and
   they record the reservation as it then is. The price of the rule: a write of nothing but
   these columns, such as a repair that back-dates updated_at, is not an event either. */
SELECT audit.enable_tracking('orders.tb_customer', p_exclude => ARRAY['name', 'email', 'phone', 'address']);
SELECT audit.enable_tracking('orders.tb_product',
                             p_derived => ARRAY['stock_reserved', 'version', 'updated_at', 'updated_by']);
SELECT audit.enable_tracking('orders.tb_order');
SELECT audit.enable_tracking('orders.tb_order_item');
SELECT audit.enable_tracking('orders.tb_payment');
