-- Rolls back 0007: the capture trigger calls audit.capture_change() with PERFORM again, as in 0002.
CREATE OR REPLACE FUNCTION audit.tg_tracked__capture_change()
    RETURNS trigger
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
BEGIN
    IF tg_op = 'INSERT' THEN
        PERFORM audit.capture_change(tg_op, tg_argv, NULL, pg_catalog.to_jsonb(NEW));
    ELSIF tg_op = 'UPDATE' THEN
        PERFORM audit.capture_change(tg_op, tg_argv, pg_catalog.to_jsonb(OLD), pg_catalog.to_jsonb(NEW));
    ELSE
        PERFORM audit.capture_change(tg_op, tg_argv, pg_catalog.to_jsonb(OLD), NULL);
    END IF;
    RETURN NULL;
END
$$;
