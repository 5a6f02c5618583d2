-- requires: 0001_foundation

/* The schema rules of SPEC §3.2–3.3 as one catalog query, so `strata verify`, the pgTAP file
   tests/sql/test_schema_rules.sql and a DBA in psql get the same answer:

       SELECT * FROM core.verify_schema() WHERE NOT ok;

   A tenant table is any table outside the system schemas with a tenant_id column. Each row
   names the object and, when it fails, the statement that fixes it. A unique key without
   tenant_id is accepted only when its comment starts with 'Global:' (a deliberate, documented
   exception such as the tenant slug). */

CREATE FUNCTION core.verify_schema()
    RETURNS TABLE ("check" text, object text, ok boolean, message text, fix text)
    STABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH user_ns AS (
        SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace AS n
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'strata_meta')
           AND n.nspname !~ '^pg_(toast|temp)'
    ),
    tenant_tables AS (
        SELECT c.oid, c.oid::pg_catalog.regclass::text AS name, c.relrowsecurity, c.relforcerowsecurity, a.attnum AS tenant_col
          FROM pg_catalog.pg_class AS c
          JOIN user_ns AS n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ),
    commands(cmd, code) AS (
        VALUES ('SELECT', 'r'), ('INSERT', 'a'), ('UPDATE', 'w'), ('DELETE', 'd')
    ),
    policy_gaps AS (
        SELECT t.name, pg_catalog.string_agg(cm.cmd, ', ' ORDER BY cm.code) AS missing
          FROM tenant_tables AS t
         CROSS JOIN commands AS cm
         WHERE NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_policy AS p
                 WHERE p.polrelid = t.oid AND p.polpermissive AND p.polcmd IN (cm.code, '*'))
         GROUP BY t.name
    )
    SELECT 'RLS enabled', t.name, t.relrowsecurity,
           CASE WHEN t.relrowsecurity THEN 'ok' ELSE 'row level security is disabled' END,
           CASE WHEN t.relrowsecurity THEN '' ELSE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY;', t.name) END
      FROM tenant_tables AS t
    UNION ALL
    SELECT 'RLS forced', t.name, t.relforcerowsecurity,
           CASE WHEN t.relforcerowsecurity THEN 'ok' ELSE 'row level security is not forced, so the owner bypasses it' END,
           CASE WHEN t.relforcerowsecurity THEN '' ELSE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.name) END
      FROM tenant_tables AS t
    UNION ALL
    SELECT 'policies for every command', t.name, g.missing IS NULL,
           CASE WHEN g.missing IS NULL THEN 'ok' ELSE 'no policy for ' || g.missing || ', so that command is decided by accident' END,
           CASE WHEN g.missing IS NULL THEN ''
                ELSE pg_catalog.format('create the missing policies, e.g. SELECT core.setup_tenant_table(%L);', t.name) END
      FROM tenant_tables AS t LEFT JOIN policy_gaps AS g ON g.name = t.name
    UNION ALL
    SELECT 'tenant-leading index', t.name, x.found,
           CASE WHEN x.found THEN 'ok' ELSE 'no index starts with tenant_id' END,
           CASE WHEN x.found THEN '' ELSE pg_catalog.format('CREATE INDEX ON %s (tenant_id, …);', t.name) END
      FROM tenant_tables AS t
     CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index AS i
                                         WHERE i.indrelid = t.oid AND i.indkey[0] = t.tenant_col) AS found) AS x
    UNION ALL
    SELECT 'unique keys include tenant_id', i.indexrelid::pg_catalog.regclass::text,
           false, pg_catalog.format('unique index on %s lacks tenant_id, so it can reveal other tenants'' rows', t.name),
           'add tenant_id to the key, or document a deliberate exception with a comment starting ''Global:'''
      FROM tenant_tables AS t
      JOIN pg_catalog.pg_index AS i ON i.indrelid = t.oid AND i.indisunique
      LEFT JOIN pg_catalog.pg_constraint AS k ON k.conindid = i.indexrelid AND k.conrelid = t.oid
     WHERE NOT t.tenant_col = ANY (i.indkey::smallint[])
       AND coalesce(pg_catalog.obj_description(k.oid, 'pg_constraint'), pg_catalog.obj_description(i.indexrelid, 'pg_class'), '') NOT LIKE 'Global:%'
    UNION ALL
    SELECT 'foreign keys include tenant_id', pg_catalog.format('%I ON %s', k.conname, t.name),
           false, pg_catalog.format('foreign key to %s does not pair tenant_id with tenant_id', k.confrelid::pg_catalog.regclass),
           'make it composite: FOREIGN KEY (tenant_id, fk_…) REFERENCES … (tenant_id, pk_…)'
      FROM tenant_tables AS t
      JOIN pg_catalog.pg_constraint AS k ON k.conrelid = t.oid AND k.contype = 'f'
      JOIN tenant_tables AS r ON r.oid = k.confrelid
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.generate_subscripts(k.conkey, 1) AS s(i)
                        WHERE k.conkey[s.i] = t.tenant_col AND k.confkey[s.i] = r.tenant_col);

    RETURN QUERY
    WITH RECURSIVE user_ns AS (
        SELECT n.oid FROM pg_catalog.pg_namespace AS n
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'strata_meta') AND n.nspname !~ '^pg_(toast|temp)'
    ),
    tenant_rel AS (
        SELECT c.oid FROM pg_catalog.pg_class AS c
          JOIN user_ns AS n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p')
    ),
    -- Views and materialized views that read tenant tables, directly or through other views.
    over_tenant(oid) AS (
        SELECT DISTINCT rw.ev_class
          FROM pg_catalog.pg_rewrite AS rw
          JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
          JOIN tenant_rel AS t ON t.oid = d.refobjid
         WHERE d.refobjid <> rw.ev_class
        UNION
        SELECT rw.ev_class
          FROM pg_catalog.pg_rewrite AS rw
          JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
          JOIN over_tenant AS o ON o.oid = d.refobjid
         WHERE d.refobjid <> rw.ev_class
    )
    SELECT 'views are security_invoker', c.oid::pg_catalog.regclass::text, x.invoker,
           CASE WHEN x.invoker THEN 'ok' ELSE 'reads tenant data with its owner''s rights, bypassing the reader''s RLS' END,
           CASE WHEN x.invoker THEN '' ELSE pg_catalog.format('ALTER VIEW %s SET (security_invoker = true);', c.oid::pg_catalog.regclass) END
      FROM pg_catalog.pg_class AS c
      JOIN over_tenant AS o ON o.oid = c.oid
     CROSS JOIN LATERAL (SELECT coalesce(c.reloptions && ARRAY['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false) AS invoker) AS x
     WHERE c.relkind = 'v'
    UNION ALL
    SELECT 'materialized views closed to app roles', c.oid::pg_catalog.regclass::text, NOT x.readable,
           CASE WHEN x.readable THEN 'materialized view over tenant data is readable by ' || x.who ELSE 'ok' END,
           CASE WHEN x.readable THEN pg_catalog.format('REVOKE SELECT ON %s FROM strata_app, strata_readonly, PUBLIC; expose it through a tenant-filtered view', c.oid::pg_catalog.regclass) ELSE '' END
      FROM pg_catalog.pg_class AS c
      JOIN over_tenant AS o ON o.oid = c.oid
     CROSS JOIN LATERAL (
            SELECT pg_catalog.string_agg(r.rolname, ', ') IS NOT NULL AS readable, pg_catalog.string_agg(r.rolname, ', ') AS who
              FROM pg_catalog.pg_roles AS r
             WHERE r.rolname IN ('strata_app', 'strata_readonly')
               AND pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')) AS x
     WHERE c.relkind = 'm';

    RETURN QUERY
    SELECT 'SECURITY DEFINER pins search_path', p.oid::pg_catalog.regprocedure::text, x.pinned,
           CASE WHEN x.pinned THEN 'ok' ELSE 'runs as its owner with the caller''s search_path' END,
           CASE WHEN x.pinned THEN '' ELSE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::pg_catalog.regprocedure) END
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%') AS pinned) AS x
     WHERE p.prosecdef
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'no PUBLIC EXECUTE in core and audit', p.oid::pg_catalog.regprocedure::text, NOT x.public_exec,
           CASE WHEN x.public_exec THEN 'any role may execute it' ELSE 'ok' END,
           CASE WHEN x.public_exec THEN pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;', p.oid::pg_catalog.regprocedure) ELSE '' END
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     CROSS JOIN LATERAL (
            SELECT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
                            WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_exec) AS x
     WHERE n.nspname IN ('core', 'audit')
    UNION ALL
    SELECT 'strata_app executes only app functions', p.oid::pg_catalog.regprocedure::text, false,
           'strata_app holds EXECUTE outside the app schema',
           pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM strata_app;', p.oid::pg_catalog.regprocedure)
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE n.nspname IN ('core', 'audit', 'tenancy', 'orders', 'work', 'content')
       AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) AS a
                    JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
                   WHERE r.rolname = 'strata_app' AND a.privilege_type = 'EXECUTE');

    RETURN QUERY
    WITH app_roles AS (
        SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls
          FROM pg_catalog.pg_roles AS r
         WHERE r.rolname IN ('strata_app', 'strata_readonly', 'strata_auditor')
    ), findings AS (
        SELECT a.rolname::text AS role,
               pg_catalog.array_remove(ARRAY[
                   CASE WHEN a.rolsuper THEN 'is superuser' END,
                   CASE WHEN a.rolbypassrls THEN 'bypasses RLS' END,
                   CASE WHEN pg_catalog.pg_has_role(a.oid, 'strata_owner', 'MEMBER') THEN 'is a member of strata_owner' END,
                   CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c WHERE c.relowner = a.oid)
                          OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc AS p WHERE p.proowner = a.oid)
                          OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace AS n WHERE n.nspowner = a.oid)
                        THEN 'owns objects in this database' END
               ], NULL) AS problems
          FROM app_roles AS a
    )
    SELECT 'role matrix', f.role, pg_catalog.cardinality(f.problems) = 0,
           CASE WHEN pg_catalog.cardinality(f.problems) = 0 THEN 'ok' ELSE pg_catalog.array_to_string(f.problems, '; ') END,
           CASE WHEN pg_catalog.cardinality(f.problems) = 0 THEN ''
                ELSE pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOBYPASSRLS; REVOKE strata_owner FROM %I; reassign what it owns to strata_owner', f.role, f.role) END
      FROM findings AS f
    UNION ALL
    SELECT 'role matrix', 'strata_owner', NOT (r.rolsuper OR r.rolbypassrls),
           CASE WHEN r.rolsuper OR r.rolbypassrls THEN 'strata_owner bypasses RLS, so forced policies mean nothing in app functions' ELSE 'ok' END,
           CASE WHEN r.rolsuper OR r.rolbypassrls THEN 'ALTER ROLE strata_owner NOSUPERUSER NOBYPASSRLS;' ELSE '' END
      FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'strata_owner'
    UNION ALL
    SELECT 'role matrix', m.rolname::text, false,
           'a login role granted ' || g.rolname || ' is superuser or bypasses RLS, so tenant isolation does not hold for it',
           pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOBYPASSRLS;', m.rolname)
      FROM pg_catalog.pg_auth_members AS am
      JOIN pg_catalog.pg_roles AS g ON g.oid = am.roleid AND g.rolname IN ('strata_app', 'strata_readonly')
      JOIN pg_catalog.pg_roles AS m ON m.oid = am.member
     WHERE m.rolcanlogin AND (m.rolsuper OR m.rolbypassrls)
    UNION ALL
    SELECT 'app roles do not write tables', pg_catalog.format('%s on %s', x.privilege_type, c.oid::pg_catalog.regclass), false,
           r.rolname || ' may write the table directly instead of through app functions',
           pg_catalog.format('REVOKE %s ON %s FROM %I;', x.privilege_type, c.oid::pg_catalog.regclass, r.rolname)
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) AS x
      JOIN pg_catalog.pg_roles AS r ON r.oid = x.grantee
     WHERE n.nspname IN ('core', 'app', 'audit', 'tenancy', 'orders', 'work', 'content')
       AND r.rolname IN ('strata_app', 'strata_readonly', 'strata_auditor')
       AND x.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
    UNION ALL
    -- They hold SELECT on the tables under app's security_invoker views; without USAGE on
    -- the tables' schemas they reach those tables only through the views.
    SELECT 'app roles use the app schema only', pg_catalog.format('%s on schema %s', r.rolname, n.nspname), false,
           r.rolname || ' may name the tables under the app views and read them directly',
           CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) AS x
                              WHERE x.grantee = r.oid AND x.privilege_type = 'USAGE')
                THEN pg_catalog.format('REVOKE USAGE ON SCHEMA %I FROM %I;', n.nspname, r.rolname)
                ELSE pg_catalog.format('REVOKE USAGE ON SCHEMA %I FROM PUBLIC, or from the role through which %I has it', n.nspname, r.rolname)
           END
      FROM pg_catalog.pg_namespace AS n
     CROSS JOIN pg_catalog.pg_roles AS r
     WHERE n.nspname IN ('core', 'audit', 'tenancy', 'orders', 'work', 'content')
       AND r.rolname IN ('strata_app', 'strata_readonly')
       AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE');

    RETURN QUERY
    WITH strata_ns AS (
        SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace AS n
         WHERE n.nspname IN ('core', 'app', 'audit', 'tenancy', 'orders', 'work', 'content')
    ), objects AS (
        SELECT 'table' AS kind, c.oid::pg_catalog.regclass::text AS name, c.relowner AS owner,
               pg_catalog.obj_description(c.oid, 'pg_class') AS description, true AS public
          FROM pg_catalog.pg_class AS c JOIN strata_ns AS n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm')
        UNION ALL
        SELECT 'function', p.oid::pg_catalog.regprocedure::text, p.proowner,
               pg_catalog.obj_description(p.oid, 'pg_proc'), n.nspname IN ('app', 'audit')
          FROM pg_catalog.pg_proc AS p JOIN strata_ns AS n ON n.oid = p.pronamespace
    )
    SELECT 'owned by strata_owner', o.name, o.owner = x.owner_oid,
           CASE WHEN o.owner = x.owner_oid THEN 'ok' ELSE 'owned by ' || pg_catalog.pg_get_userbyid(o.owner) END,
           CASE WHEN o.owner = x.owner_oid THEN ''
                ELSE pg_catalog.format('ALTER %s %s OWNER TO strata_owner;', CASE o.kind WHEN 'function' THEN 'FUNCTION' ELSE 'TABLE' END, o.name) END
      FROM objects AS o
     CROSS JOIN (SELECT r.oid AS owner_oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'strata_owner') AS x
    UNION ALL
    SELECT 'documented', o.name, o.description IS NOT NULL AND o.description <> '',
           CASE WHEN o.description IS NULL OR o.description = '' THEN 'no COMMENT ON it, so \d+ and \df+ explain nothing' ELSE 'ok' END,
           CASE WHEN o.description IS NULL OR o.description = '' THEN pg_catalog.format('COMMENT ON %s %s IS ''…'';', upper(o.kind), o.name) ELSE '' END
      FROM objects AS o
     WHERE o.public;

    -- The ledger's filter of derived columns names them (audit.enable_tracking): after a rename
    -- it no longer matches the table. audit is built after core, hence the guard.
    IF pg_catalog.to_regprocedure('audit.tracked_tables()') IS NOT NULL THEN
        RETURN QUERY
        SELECT 'ledger derived columns current', t.table_name::text, t.derived_current,
               CASE WHEN t.derived_current THEN 'ok'
                    ELSE 'a derived column was renamed, so the ledger''s update filter no longer names it' END,
               CASE WHEN t.derived_current THEN ''
                    ELSE pg_catalog.format('SELECT audit.enable_tracking(%L, %L, %L, %L, %L);', t.table_name, t.entity_type,
                                           t.excluded_columns, coalesce(t.tenant_column, 'tenant_id'), t.derived_columns) END
          FROM audit.tracked_tables() AS t
         WHERE t.derived_columns <> '{}';
    END IF;

    -- Strata's triggers keep the ledger, the version stamps and the projections: one disabled
    -- by ALTER TABLE … DISABLE TRIGGER (or made replica-only) lets writes skip it silently.
    RETURN QUERY
    SELECT 'triggers enabled', pg_catalog.format('%I on %s', t.tgname, t.tgrelid::pg_catalog.regclass),
           t.tgenabled IN ('O', 'A'),
           CASE WHEN t.tgenabled IN ('O', 'A') THEN 'ok'
                ELSE CASE t.tgenabled WHEN 'R' THEN 'it fires only under session_replication_role = replica'
                                      ELSE 'it is disabled' END
                     || CASE WHEN p.proname LIKE 'tg\_tracked\_\_%' THEN ', so writes to the table leave no ledger event'
                             WHEN p.proname = 'tg_ledger__append_only' THEN ', so the ledger can be rewritten'
                             WHEN p.proname = 'tg_events__seal_on_commit' THEN ', so commits no longer seal the ledger'
                             ELSE pg_catalog.format(', so writes skip %s', p.oid::pg_catalog.regproc) END END,
           CASE WHEN t.tgenabled IN ('O', 'A') THEN ''
                ELSE pg_catalog.format('ALTER TABLE %s ENABLE TRIGGER %I;', t.tgrelid::pg_catalog.regclass, t.tgname) END
      FROM pg_catalog.pg_trigger AS t
      JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE n.nspname IN ('core', 'audit') AND NOT t.tgisinternal;
END
$$;
COMMENT ON FUNCTION core.verify_schema() IS
    'Checks the schema rules (RLS enabled, forced and complete; tenant keys and indexes; security_invoker views; pinned search_path; grants; role matrix; ownership; comments; the ledger''s derived columns; Strata''s triggers enabled): one row per object and rule, with the fix when it fails.';
GRANT EXECUTE ON FUNCTION core.verify_schema() TO strata_auditor;
