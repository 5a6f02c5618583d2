-- requires: 0005_open_orders

/* Open orders per product (orders.tb_product_open_orders), the "in orders" column of
   app.v_product_inventory. Counting it on read costs a scan of every open order and its lines
   on each page; here the writes that change it keep it current instead, in the same
   transaction. Triggers rather than core functions, so every writer keeps it right: the app
   functions, an owner's psql session, another application on the same tables.

   An order holds a product while it is open (pending or paid) and has a line for it; one line
   per product per order is a constraint, so a count of lines is a count of orders. Row locks:
   the Strata commands lock an order's products (pk order) before they add lines or move the
   order in or out of open, so the rows here change under the product locks they already hold.
   A bulk load with triggers off must end with core.recount_open_orders(), and so must one
   statement that changes both an order's open state and its lines (a data-modifying WITH):
   each trigger fires at the end of the statement and reads the other table as the statement
   left it. Closing an order and removing its lines, the order's trigger finds no lines and
   the lines' trigger finds the order closed, so the count stays high; closing it and adding a
   line takes one too many off (or fails the CHECK at zero). */

CREATE FUNCTION core.tg_order_item__count_open_orders()
    RETURNS trigger
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- A line that leaves an open order (deleted, or moved to another order or product) and a line
-- that joins one (inserted, or moved) change its product's count. Each is one statement that
-- asks itself whether the order is open: this runs for every line of every new order.
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE orders.tb_product_open_orders AS p
           SET open_orders = p.open_orders - 1
         WHERE p.tenant_id = OLD.tenant_id AND p.fk_product = OLD.fk_product
           AND EXISTS (SELECT 1 FROM orders.tb_order AS o
                        WHERE o.tenant_id = OLD.tenant_id AND o.pk_order = OLD.fk_order AND o.status IN ('pending', 'paid'));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO orders.tb_product_open_orders AS p (tenant_id, fk_product, open_orders)
        SELECT NEW.tenant_id, NEW.fk_product, 1
         WHERE EXISTS (SELECT 1 FROM orders.tb_order AS o
                        WHERE o.tenant_id = NEW.tenant_id AND o.pk_order = NEW.fk_order AND o.status IN ('pending', 'paid'))
            ON CONFLICT (tenant_id, fk_product) DO UPDATE SET open_orders = p.open_orders + excluded.open_orders;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION core.tg_order_item__count_open_orders() IS
    'Trigger on orders.tb_order_item: keeps tb_product_open_orders current when lines of open orders come and go.';

CREATE FUNCTION core.tg_order__count_open_orders()
    RETURNS trigger
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- Fires only when the order moves in or out of open (the trigger's WHEN): each of its
-- products gains or loses one open order. Each is one statement over the order's lines: a
-- cancellation once called a helper with an array gathered by another query, a third of this
-- trigger's cost. Counts are taken down by UPDATE, not upsert, which would check the row it
-- might insert (-1) against the CHECK first; a count to take down exists, the order was open.
BEGIN
    IF NEW.status IN ('pending', 'paid') THEN
        INSERT INTO orders.tb_product_open_orders AS p (tenant_id, fk_product, open_orders)
        SELECT NEW.tenant_id, it.fk_product, 1
          FROM orders.tb_order_item AS it
         WHERE it.tenant_id = NEW.tenant_id AND it.fk_order = NEW.pk_order
         ORDER BY it.fk_product
            ON CONFLICT (tenant_id, fk_product) DO UPDATE SET open_orders = p.open_orders + excluded.open_orders;
    ELSE
        UPDATE orders.tb_product_open_orders AS p
           SET open_orders = p.open_orders - 1
         WHERE p.tenant_id = NEW.tenant_id
           AND p.fk_product IN (SELECT it.fk_product FROM orders.tb_order_item AS it
                                 WHERE it.tenant_id = NEW.tenant_id AND it.fk_order = NEW.pk_order);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION core.tg_order__count_open_orders() IS
    'Trigger on orders.tb_order: an order opening or closing (shipped, delivered, cancelled) moves its products'' open-order counts.';

CREATE TRIGGER tg_30_open_orders
    AFTER INSERT OR DELETE ON orders.tb_order_item
    FOR EACH ROW EXECUTE FUNCTION core.tg_order_item__count_open_orders();
CREATE TRIGGER tg_31_open_orders_moved
    AFTER UPDATE OF fk_order, fk_product ON orders.tb_order_item
    FOR EACH ROW WHEN (old.fk_order <> new.fk_order OR old.fk_product <> new.fk_product)
    EXECUTE FUNCTION core.tg_order_item__count_open_orders();
CREATE TRIGGER tg_30_open_orders
    AFTER UPDATE OF status ON orders.tb_order
    FOR EACH ROW WHEN ((old.status IN ('pending', 'paid')) <> (new.status IN ('pending', 'paid')))
    EXECUTE FUNCTION core.tg_order__count_open_orders();

CREATE FUNCTION core.recount_open_orders()
    RETURNS integer
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- For the tenant in context: locks its products (pk order, as the commands do), so no order
-- changes while it counts, then recounts from the orders. Returns the products counted.
DECLARE
    v_tenant uuid := core.current_tenant_id();
    v_rows   integer;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in context' USING ERRCODE = 'invalid_parameter_value',
              HINT = 'SELECT core.use_tenant(<tenant_id>) first.';
    END IF;
    PERFORM 1 FROM orders.tb_product AS p WHERE p.tenant_id = v_tenant ORDER BY p.pk_product FOR UPDATE;
    DELETE FROM orders.tb_product_open_orders AS c WHERE c.tenant_id = v_tenant;
    -- Each open order's lines by its key (OFFSET 0 keeps the lookup apart): as a plain join,
    -- planned while a bulk load's statistics still said the tables were empty, it became a
    -- nested loop of every line against every order, minutes per call at 40,000 orders.
    INSERT INTO orders.tb_product_open_orders (tenant_id, fk_product, open_orders)
    SELECT it.tenant_id, it.fk_product, pg_catalog.count(*)
      FROM orders.tb_order AS o
      CROSS JOIN LATERAL (
            SELECT i.tenant_id, i.fk_product
              FROM orders.tb_order_item AS i
             WHERE i.tenant_id = o.tenant_id AND i.fk_order = o.pk_order
            OFFSET 0
           ) AS it
     WHERE o.tenant_id = v_tenant AND o.status IN ('pending', 'paid')
     GROUP BY it.tenant_id, it.fk_product;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION core.recount_open_orders() IS
    'Recounts open orders per product for the tenant in context (after a bulk load with triggers off, or to repair); returns the products counted.';
