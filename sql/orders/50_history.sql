-- requires: 0005_open_orders

/* An order's history comes from the audit ledger, not from a second log: every change to
   the order row, its items and its payments, every domain event (order.paid, order.cancelled …)
   and every NOOP, in the order they were written. Folding the order's own insert and update
   events from the first rebuilds its current row, which tests/sql/test_orders_history.sql checks.

   The ledger keeps whole rows, internal keys included (pk_order, fk_customer …). They never
   leave through app (SPEC: pk_<entity> is internal), and would tell a tenant how many rows all
   tenants together have written, since the key sequences are shared: the history shows the
   rows without them, and a change that moved only an internal key lists no changed field. */

CREATE FUNCTION core.without_internal_keys(p_data jsonb)
    RETURNS jsonb
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_data) = 'object'
                THEN p_data - ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(p_data) AS k WHERE k ~ '^(pk|fk)_')
                ELSE p_data END
$$;
COMMENT ON FUNCTION core.without_internal_keys(jsonb) IS
    'A row as jsonb without its internal keys (pk_* and fk_* columns): what app may show of a ledger event''s data.';

CREATE FUNCTION app.order_history("order" text)
    RETURNS TABLE (
        event_id uuid,
        occurred_at timestamptz,
        operation text,
        entity_type text,
        identifier text,
        actor_id uuid,
        changed_fields text[],
        data jsonb,
        metadata jsonb
    )
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant uuid := core.current_tenant_id();
    v_order  record := core.resolve_order(order_history."order");
    v_parts  uuid[];
BEGIN
    IF v_order.pk IS NULL THEN
        RETURN;
    END IF;
    SELECT pg_catalog.array_agg(x.id) INTO v_parts
      FROM (SELECT it.id FROM orders.tb_order_item AS it WHERE it.tenant_id = v_tenant AND it.fk_order = v_order.pk
            UNION ALL
            SELECT pm.id FROM orders.tb_payment AS pm WHERE pm.tenant_id = v_tenant AND pm.fk_order = v_order.pk) AS x;
    RETURN QUERY
    SELECT e.id, e.occurred_at, e.operation, e.entity_type, e.identifier, e.actor_id,
           CASE WHEN e.changed_fields IS NOT NULL
                THEN ARRAY(SELECT f FROM pg_catalog.unnest(e.changed_fields) AS f WHERE f !~ '^(pk|fk)_') END,
           core.without_internal_keys(coalesce(e.new_data, e.old_data)), e.metadata
      FROM audit.events AS e
     WHERE e.tenant_id = v_tenant
       AND (e.entity_id = v_order.id OR e.entity_id = ANY (coalesce(v_parts, '{}')))
     ORDER BY e.pk_event;
END
$$;
COMMENT ON FUNCTION app.order_history(text) IS
    'The ledger events of one order (id or identifier) and of its items and payments, oldest first: changes, domain events and NOOPs; '
    'data and changed_fields leave out internal keys (pk_*, fk_*).';
GRANT EXECUTE ON FUNCTION app.order_history(text) TO strata_app, strata_readonly;
