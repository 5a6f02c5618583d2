-- depends: 0006_uuid_v7_at
-- 0007 The capture trigger hands each row to audit.capture_change() in an assignment instead
-- of PERFORM. PL/pgSQL runs a PERFORM as a query, with an executor started and stopped for
-- every captured row; an assignment of a plain function call is evaluated as an expression.
-- capture_change() returns the id of the event it wrote (NULL when an update changed nothing).
-- The function stays state, not code layer, for the reason given in 0002.

CREATE OR REPLACE FUNCTION audit.tg_tracked__capture_change()
    RETURNS trigger
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_event uuid;  -- the id of the event written; only the call matters here
BEGIN
    IF tg_op = 'INSERT' THEN
        v_event := audit.capture_change(tg_op, tg_argv, NULL, pg_catalog.to_jsonb(NEW));
    ELSIF tg_op = 'UPDATE' THEN
        v_event := audit.capture_change(tg_op, tg_argv, pg_catalog.to_jsonb(OLD), pg_catalog.to_jsonb(NEW));
    ELSE
        v_event := audit.capture_change(tg_op, tg_argv, pg_catalog.to_jsonb(OLD), NULL);
    END IF;
    RETURN NULL;
END
$$;
