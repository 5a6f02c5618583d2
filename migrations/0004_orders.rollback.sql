DROP INDEX audit.events_entity_idx;
-- Role grants of these permissions go with them (ON DELETE CASCADE).
DELETE FROM tenancy.tb_permission WHERE code LIKE ANY (ARRAY['orders.%', 'customers.%', 'products.%']);
DO $$
DECLARE
    v_tenant uuid;
BEGIN
    FOR v_tenant IN SELECT o.tenant_id FROM tenancy.tb_organization AS o LOOP
        PERFORM pg_catalog.set_config('strata.tenant_id', v_tenant::text, true);
        DELETE FROM tenancy.tb_identifier_counter
         WHERE tenant_id = v_tenant AND scope IN ('customer', 'order', 'payment');
        DELETE FROM tenancy.tb_identifier_alias WHERE tenant_id = v_tenant AND entity LIKE 'orders.%';
    END LOOP;
    PERFORM pg_catalog.set_config('strata.tenant_id', '', true);
END
$$;
DROP TABLE orders.tb_product_revenue;
DROP TABLE orders.tb_payment;
DROP TABLE orders.tb_order_item;
DROP TABLE orders.tb_order;
DROP TABLE orders.tb_product;
DROP TABLE orders.tb_customer;
