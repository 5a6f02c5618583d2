-- requires: 0001_foundation

/* What Strata has installed, read from the catalog: one row per schema, table, view, function,
   policy and grant in Strata's schemas. `strata inspect` prints it; psql users can query it.
   SECURITY INVOKER: it reads only the catalog, which every role may read. */
CREATE FUNCTION core.catalog_objects()
    RETURNS TABLE (
        kind text,
        schema_name text,
        object_name text,
        identity text,
        details jsonb,
        description text
    )
    STABLE
    LANGUAGE sql
AS $$
    WITH strata_ns AS (
        SELECT n.oid, n.nspname
          FROM pg_catalog.pg_namespace AS n
         WHERE n.nspname IN ('core', 'app', 'audit', 'tenancy', 'orders', 'work', 'content')
    )
    SELECT 'schema', n.nspname, n.nspname, pg_catalog.quote_ident(n.nspname),
           pg_catalog.jsonb_build_object('owner', pg_catalog.pg_get_userbyid(ns.nspowner),
                                         'acl', ns.nspacl::text[]),
           pg_catalog.obj_description(n.oid, 'pg_namespace')
      FROM strata_ns AS n
      JOIN pg_catalog.pg_namespace AS ns ON ns.oid = n.oid
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
           n.nspname, c.relname, c.oid::pg_catalog.regclass::text,
           pg_catalog.jsonb_build_object(
               'owner', pg_catalog.pg_get_userbyid(c.relowner),
               'rls_enabled', c.relrowsecurity,
               'rls_forced', c.relforcerowsecurity,
               'security_invoker', coalesce('security_invoker=true' = ANY (c.reloptions)
                                            OR 'security_invoker=on' = ANY (c.reloptions), false),
               -- The planner's estimate; none for a view, or a table never vacuumed or analyzed
               -- (reltuples -1), which is not the same as empty.
               'estimated_rows', CASE WHEN c.relkind <> 'v' AND c.reltuples >= 0 THEN c.reltuples::bigint END,
               'acl', c.relacl::text[]),
           pg_catalog.obj_description(c.oid, 'pg_class')
      FROM pg_catalog.pg_class AS c
      JOIN strata_ns AS n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm')
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
           n.nspname, p.proname, p.oid::pg_catalog.regprocedure::text,
           pg_catalog.jsonb_build_object(
               'owner', pg_catalog.pg_get_userbyid(p.proowner),
               'returns', pg_catalog.pg_get_function_result(p.oid),
               'security', CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END,
               'volatility', CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
               'config', p.proconfig,
               'acl', p.proacl::text[]),
           pg_catalog.obj_description(p.oid, 'pg_proc')
      FROM pg_catalog.pg_proc AS p
      JOIN strata_ns AS n ON n.oid = p.pronamespace
    UNION ALL
    SELECT 'policy', n.nspname, pol.polname,
           pg_catalog.format('%I ON %s', pol.polname, pol.polrelid::pg_catalog.regclass),
           pg_catalog.jsonb_build_object(
               'table', pol.polrelid::pg_catalog.regclass::text,
               'command', CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                          WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
               'permissive', pol.polpermissive,
               'roles', (SELECT pg_catalog.array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(r) END)
                           FROM pg_catalog.unnest(pol.polroles) AS r),
               'using', pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
               'with_check', pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)),
           pg_catalog.obj_description(pol.oid, 'pg_policy')
      FROM pg_catalog.pg_policy AS pol
      JOIN pg_catalog.pg_class AS c ON c.oid = pol.polrelid
      JOIN strata_ns AS n ON n.oid = c.relnamespace
$$;
COMMENT ON FUNCTION core.catalog_objects() IS
    'Every schema, table, view, function and policy in Strata''s schemas, with owner, RLS flags, security, grants and comment.';
GRANT EXECUTE ON FUNCTION core.catalog_objects() TO strata_auditor;
