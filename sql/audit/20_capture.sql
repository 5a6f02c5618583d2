-- requires: 0002_audit_ledger

/* Writing events: change data capture on tracked tables and explicit events from core.

   Every event goes through audit.write_event(), which fills the context (tenant, actor,
   correlation and causation ids from the transaction-local strata.* settings), numbers the
   event within its transaction, hashes it and inserts it. No shared row is read or locked:
   concurrent writers only meet in the indexes of audit.events.

   Transaction-local state, kept in custom settings so that it follows savepoints:
     strata.audit_tx_seq      events this transaction has written so far. A rolled-back
                              savepoint restores the count, so tx_seq numbers the committed
                              events of a transaction 1..n without gaps.
     strata.correlation_id    set here to a new id on the first event when the caller set none,
                              so every event of one transaction shares one correlation id.

   Capture runs as strata_owner (SECURITY DEFINER), so a login that may write a tracked table,
   through an app function or a direct grant, always produces events, and nobody needs any
   privilege on the ledger itself. Attaching it is not a privilege escalation: enable_tracking
   runs with the caller's rights (the table's owner, normally strata_owner in a sql/ file),
   and creating a trigger needs EXECUTE on the trigger function, which only strata_owner has. */

CREATE FUNCTION audit.platform_tenant()
    RETURNS uuid
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT '00000000-0000-0000-0000-000000000000'::uuid
$$;
COMMENT ON FUNCTION audit.platform_tenant() IS
    'The tenant_id of events that belong to no tenant (the nil UUID).';
GRANT EXECUTE ON FUNCTION audit.platform_tenant() TO strata_auditor;

CREATE FUNCTION audit.write_event(
    p_tenant_id uuid,
    p_source_table text,
    p_entity_type text,
    p_entity_id uuid,
    p_identifier text,
    p_operation text,
    p_old_data jsonb,
    p_new_data jsonb,
    p_changed_fields text[],
    p_metadata jsonb
)
    RETURNS uuid
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_event audit.events;
BEGIN
    -- The event is built in one expression and inserted by a statement with no expression of
    -- its own: each INSERT statement compiles its expressions when it starts, so the hash is
    -- kept out of it. pk_event is part of the hash, so it is drawn from the sequence here.
    -- set_config returns what it sets: tx_seq counts this transaction's events, and a
    -- correlation id is made when the caller set none.
    v_event := ROW(
        pg_catalog.nextval('audit.events_pk_event_seq'::regclass),
        core.uuid_v7(),
        coalesce(p_tenant_id, audit.platform_tenant()),
        1,
        pg_catalog.pg_current_xact_id(),
        pg_catalog.set_config('strata.audit_tx_seq',
            (coalesce(nullif(pg_catalog.current_setting('strata.audit_tx_seq', true), '')::integer, 0) + 1)::text,
            true)::integer,
        pg_catalog.clock_timestamp(),
        nullif(pg_catalog.current_setting('strata.actor_id', true), '')::uuid,
        coalesce(nullif(pg_catalog.current_setting('strata.correlation_id', true), ''),
                 pg_catalog.set_config('strata.correlation_id', core.uuid_v7()::text, true))::uuid,
        nullif(pg_catalog.current_setting('strata.causation_id', true), '')::uuid,
        current_user,
        session_user,
        p_source_table,
        p_entity_type,
        p_entity_id,
        p_identifier,
        p_operation,
        p_old_data,
        p_new_data,
        p_changed_fields,
        p_metadata,
        NULL)::audit.events;
    v_event.event_hash := audit.event_hash(v_event);
    INSERT INTO audit.events OVERRIDING SYSTEM VALUE VALUES (v_event.*);
    RETURN v_event.id;
END
$$;
COMMENT ON FUNCTION audit.write_event(uuid, text, text, uuid, text, text, jsonb, jsonb, text[], jsonb) IS
    'Internal: appends one event with the current context, numbered within its transaction and hashed. Owner only.';

/* Capture. The trigger functions attached to tracked tables, audit.tg_tracked__capture_change()
   and audit.tg_tracked__capture_truncate(), are defined in migrations (0002; the row trigger's
   body is replaced by 0007), not here: a user's or a test's table may be tracked too, and
   rebuilding the code layer must never have to drop triggers it did not create. They only
   hand the row, as jsonb, to this function.

   Trigger arguments, written by audit.enable_tracking():
     0 entity type, 1 the table's qualified name, 2 tenant column ('' when the table has
     none), 3 id column (''), 4 identifier column (''), 5.. excluded columns.
   An UPDATE that changes nothing writes no event. An update that changes only excluded
   columns writes one, naming them in changed_fields without their values. An update that
   changes only derived columns (enable_tracking's p_derived) never reaches these functions:
   a WHEN clause on the table's update trigger, audit_ledger_update, filters it out.
   Returns the id of the event written (NULL: none), and must keep returning a uuid: the row
   trigger (0007) assigns the result rather than PERFORM the call, because PL/pgSQL runs a
   PERFORM as a query, with an executor started for it, and this runs for every captured row.
   (The truncate trigger, once per statement, still PERFORMs it.) */
CREATE FUNCTION audit.capture_change(p_op text, p_args text[], p_old jsonb, p_new jsonb)
    RETURNS uuid
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_row jsonb := coalesce(p_new, p_old);
    v_old jsonb := p_old;
    v_new jsonb := p_new;
    v_changed text[];
BEGIN
    IF p_op = 'UPDATE' THEN
        v_changed := ARRAY(SELECT n.key
                             FROM pg_catalog.jsonb_each(p_new) AS n
                            WHERE p_old -> n.key IS DISTINCT FROM n.value
                            ORDER BY n.key);
        IF pg_catalog.cardinality(v_changed) = 0 THEN
            RETURN NULL;
        END IF;
    END IF;
    IF pg_catalog.cardinality(p_args) > 5 THEN
        v_old := v_old - p_args[5:];
        v_new := v_new - p_args[5:];
    END IF;
    RETURN audit.write_event(
        CASE WHEN p_args[2] <> '' THEN (v_row ->> p_args[2])::uuid END,
        p_args[1],
        p_args[0],
        CASE WHEN p_args[3] <> '' THEN (v_row ->> p_args[3])::uuid END,
        CASE WHEN p_args[4] <> '' THEN v_row ->> p_args[4] END,
        pg_catalog.lower(p_op),
        v_old,
        v_new,
        v_changed,
        NULL);
END
$$;
COMMENT ON FUNCTION audit.capture_change(text, text[], jsonb, jsonb) IS
    'Internal: turns one captured row change (TG_OP, trigger arguments, old and new row as jsonb) into a ledger event; returns its id (NULL: nothing changed). Owner only.';
COMMENT ON FUNCTION audit.tg_tracked__capture_change() IS
    'Trigger attached by audit.enable_tracking(): writes one ledger event per inserted, updated or deleted row '
    '(as audit_ledger_update, only for an update that changes more than the derived columns).';
COMMENT ON FUNCTION audit.tg_tracked__capture_truncate() IS
    'Trigger attached by audit.enable_tracking(): records a TRUNCATE of a tracked table as one platform event.';

CREATE FUNCTION audit.enable_tracking(
    p_table regclass,
    p_entity_type text DEFAULT NULL,
    p_exclude text[] DEFAULT '{}',
    p_tenant_column name DEFAULT 'tenant_id',
    p_derived text[] DEFAULT '{}'
)
    RETURNS void
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_kind "char";
    v_entity text;
    v_tenant text := '';
    v_id text := '';
    v_identifier text := '';
    v_missing text;
    v_args text;
    v_mask jsonb;
    v_anchors text;
    v_type text;
BEGIN
    SELECT c.relkind,
           coalesce(p_entity_type, pg_catalog.regexp_replace(c.relname, '^tb_', ''))
      INTO v_kind, v_entity
      FROM pg_catalog.pg_class AS c
     WHERE c.oid = p_table;
    IF v_kind IS NULL OR v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'audit.enable_tracking: % is not a table', p_table USING ERRCODE = '42809';
    END IF;
    IF v_entity = '' THEN
        RAISE EXCEPTION 'audit.enable_tracking: the entity type must not be empty' USING ERRCODE = '22023';
    END IF;
    p_derived := coalesce(p_derived, '{}');
    IF pg_catalog.array_position(p_derived, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'audit.enable_tracking: the derived columns must not include NULL' USING ERRCODE = '22023';
    END IF;
    -- An excluded column's change is recorded by name; a derived one's alone is not an event.
    SELECT pg_catalog.string_agg(x.col, ', ' ORDER BY x.col)
      INTO v_missing
      FROM (SELECT DISTINCT d AS col FROM pg_catalog.unnest(p_derived) AS d WHERE d = ANY (p_exclude)) AS x;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'audit.enable_tracking: % cannot be both excluded and derived', v_missing USING ERRCODE = '22023';
    END IF;

    SELECT pg_catalog.string_agg(x.col, ', ')
      INTO v_missing
      FROM pg_catalog.unnest(p_exclude || p_derived) AS x (col)
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                        WHERE a.attrelid = p_table AND a.attname = x.col AND a.attnum > 0 AND NOT a.attisdropped);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'audit.enable_tracking: % has no column %', p_table, v_missing USING ERRCODE = '42703';
    END IF;
    IF pg_catalog.cardinality(p_derived) > 0 THEN
        -- The update trigger's mask and the columns its num_nulls() names (below).
        SELECT pg_catalog.jsonb_object_agg(x.d, NULL), pg_catalog.string_agg(pg_catalog.format('NEW.%I', x.d), ', ' ORDER BY x.d)
          INTO v_mask, v_anchors
          FROM (SELECT DISTINCT d FROM pg_catalog.unnest(p_derived) AS d) AS x;
        -- The rest of the row is compared with the derived columns set to NULL (below), which
        -- a domain that refuses NULL would turn into an error on every update: try it now.
        FOR v_type IN SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
                        FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = p_table AND a.attname = ANY (p_derived) AND a.attnum > 0 AND NOT a.attisdropped LOOP
            BEGIN
                EXECUTE pg_catalog.format('SELECT CAST(NULL AS %s)', v_type);
            EXCEPTION WHEN not_null_violation OR check_violation THEN
                RAISE EXCEPTION 'audit.enable_tracking: a derived column of % cannot be NULL: %', p_table, SQLERRM
                    USING ERRCODE = '22023';
            END;
        END LOOP;
    END IF;

    -- The tenant, id and identifier columns are used when present with a usable type.
    SELECT coalesce(pg_catalog.max(a.attname) FILTER (WHERE a.attname = p_tenant_column AND a.atttypid = 'uuid'::regtype), ''),
           coalesce(pg_catalog.max(a.attname) FILTER (WHERE a.attname = 'id' AND a.atttypid = 'uuid'::regtype), ''),
           coalesce(pg_catalog.max(a.attname) FILTER (WHERE a.attname = 'identifier'), '')
      INTO v_tenant, v_id, v_identifier
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped;
    IF p_tenant_column <> 'tenant_id' AND v_tenant = '' THEN
        RAISE EXCEPTION 'audit.enable_tracking: % has no uuid column %', p_table, p_tenant_column USING ERRCODE = '42703';
    END IF;

    SELECT pg_catalog.string_agg(pg_catalog.quote_literal(a), ', ' ORDER BY o)
      INTO v_args
      FROM pg_catalog.unnest(ARRAY[v_entity, p_table::text, v_tenant, v_id, v_identifier]
                             || ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(p_exclude) AS x ORDER BY x))
           WITH ORDINALITY AS u (a, o);

    IF pg_catalog.cardinality(p_derived) = 0 THEN
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS audit_ledger_update ON %s', p_table);
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER audit_ledger AFTER INSERT OR UPDATE OR DELETE ON %s '
            'FOR EACH ROW EXECUTE FUNCTION audit.tg_tracked__capture_change(%s)', p_table, v_args);
    ELSE
        -- Both rows with the derived columns set to NULL, compared byte for byte: equal when
        -- nothing else changed. A WHEN clause, so such an update queues no trigger call at all;
        -- whole rows, so a column added later is compared too; no value is converted, so no
        -- session setting can make equal rows differ. The mask names the columns; num_nulls(),
        -- always >= 0, names them as columns too, so dropping one is refused and
        -- tracked_tables() sees a renamed one (the mask would then miss it: re-run this).
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER audit_ledger AFTER INSERT OR DELETE ON %s '
            'FOR EACH ROW EXECUTE FUNCTION audit.tg_tracked__capture_change(%s)', p_table, v_args);
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER audit_ledger_update AFTER UPDATE ON %1$s FOR EACH ROW '
            'WHEN (pg_catalog.jsonb_populate_record(OLD, %2$L::jsonb) OPERATOR(pg_catalog.*<>) '
            'pg_catalog.jsonb_populate_record(NEW, %2$L::jsonb) AND pg_catalog.num_nulls(%3$s) >= 0) '
            'EXECUTE FUNCTION audit.tg_tracked__capture_change(%4$s)', p_table, v_mask, v_anchors, v_args);
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE TRIGGER audit_ledger_truncate AFTER TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_tracked__capture_truncate(%L, %L)', p_table, v_entity, p_table::text);
END
$$;
COMMENT ON FUNCTION audit.enable_tracking(regclass, text, text[], name, text[]) IS
    'Attaches the audit ledger to a table (idempotent): every insert, update, delete and truncate becomes an event, '
    'but an update that changes only derived columns. '
    'p_entity_type defaults to the table name without tb_; p_exclude lists columns (secrets) never stored; '
    'p_tenant_column names the uuid column holding the tenant (default tenant_id; none: platform events); '
    'p_derived lists columns the database keeps from changes recorded elsewhere (a reservation, a counter, the row''s '
    'version stamps): an update changing only those writes no event, and every event written records their values.';

CREATE FUNCTION audit.disable_tracking(p_table regclass)
    RETURNS void
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS audit_ledger ON %s', p_table);
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS audit_ledger_update ON %s', p_table);
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS audit_ledger_truncate ON %s', p_table);
END
$$;
COMMENT ON FUNCTION audit.disable_tracking(regclass) IS 'Detaches the audit ledger from a table; its past events stay.';

CREATE FUNCTION audit.tracked_tables()
    RETURNS TABLE (
        table_name regclass,
        entity_type text,
        tenant_column text,
        excluded_columns text[],
        derived_columns text[],
        derived_current boolean
    )
    STABLE
    SET standard_conforming_strings = on
    LANGUAGE sql
AS $$
    SELECT t.tgrelid::regclass, a.args[1], nullif(a.args[3], ''),
           coalesce(a.args[6:], '{}'), coalesce(d.current_names, '{}'),
           d.current_names IS NOT DISTINCT FROM d.mask_names
      FROM pg_catalog.pg_trigger AS t
      -- tgargs holds each argument followed by a NUL byte, which escape encoding writes as \000.
      CROSS JOIN LATERAL (
          SELECT pg_catalog.string_to_array(
                     pg_catalog.regexp_replace(pg_catalog.encode(t.tgargs, 'escape'), '\\000$', ''), '\000') AS args
      ) AS a
      -- The derived columns as the update trigger's num_nulls() names them now (by attnum), and
      -- as its mask names them (by name, as enable_tracking was given them): they differ after
      -- a rename, and the mask then misses the renamed column.
      LEFT JOIN LATERAL (
          SELECT ARRAY(SELECT at.attname::text
                         FROM pg_catalog.pg_depend AS dp
                         JOIN pg_catalog.pg_attribute AS at ON at.attrelid = u.tgrelid AND at.attnum = dp.refobjsubid
                        WHERE dp.classid = 'pg_catalog.pg_trigger'::regclass AND dp.objid = u.oid
                          AND dp.refclassid = 'pg_catalog.pg_class'::regclass AND dp.refobjid = u.tgrelid
                          AND dp.refobjsubid > 0
                        ORDER BY 1) AS current_names,
                 ARRAY(SELECT k.col
                         FROM pg_catalog.jsonb_object_keys(pg_catalog.replace(pg_catalog.substring(
                                  pg_catalog.pg_get_triggerdef(u.oid), $re$'((?:[^']|'')*)'::jsonb$re$), '''''', '''')::jsonb) AS k (col)
                        ORDER BY 1) AS mask_names
            FROM pg_catalog.pg_trigger AS u
           WHERE u.tgrelid = t.tgrelid AND u.tgname = 'audit_ledger_update'
             AND u.tgfoid = 'audit.tg_tracked__capture_change()'::regprocedure
      ) AS d ON true
     WHERE t.tgname = 'audit_ledger'
       AND t.tgfoid = 'audit.tg_tracked__capture_change()'::regprocedure
     ORDER BY 1
$$;
COMMENT ON FUNCTION audit.tracked_tables() IS
    'Every table the audit ledger is attached to, with its entity type, excluded and derived columns; derived_current '
    'is false after a derived column was renamed (re-run audit.enable_tracking).';

CREATE FUNCTION audit.log_event(
    p_operation text,
    p_entity_type text,
    p_entity_id uuid,
    p_identifier text,
    p_data jsonb DEFAULT NULL,
    p_metadata jsonb DEFAULT NULL
)
    RETURNS uuid
    VOLATILE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF p_operation IS NULL OR p_operation !~ '^[a-z][a-z0-9_]*([.][a-z][a-z0-9_]*)*$' THEN
        RAISE EXCEPTION 'audit.log_event: operation % is not a lower-case dotted name such as noop or order.cancelled',
                        coalesce(pg_catalog.quote_literal(p_operation), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_entity_type IS NULL OR p_entity_type = '' THEN
        RAISE EXCEPTION 'audit.log_event: the entity type must not be empty' USING ERRCODE = '22023';
    END IF;
    RETURN audit.write_event(
        nullif(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid,
        NULL, p_entity_type, p_entity_id, p_identifier, p_operation, NULL, p_data, NULL, p_metadata);
END
$$;
COMMENT ON FUNCTION audit.log_event(text, text, uuid, text, jsonb, jsonb) IS
    'Records an explicit event (noop, or a domain event such as order.cancelled) for the current tenant, actor and '
    'correlation; returns its id. Called from core functions, which run as strata_owner.';

GRANT EXECUTE ON FUNCTION audit.tracked_tables() TO strata_auditor;
