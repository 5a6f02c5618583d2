-- requires: 0003_tenancy

/* What makes a table a tenant table, applied by one call so a new entity cannot get
   isolation wrong: core.setup_tenant_table('<schema>.tb_<entity>') enables and forces RLS,
   creates the four tenant policies, stamps versions and authors, keeps retired identifiers
   resolvable, and grants SELECT for the security_invoker views. Also here: identifiers
   (gapless per-tenant counters) and the one resolver that accepts an id or an identifier. */

CREATE FUNCTION core.next_identifier(p_scope text, p_prefix text, p_width integer DEFAULT 6)
    RETURNS text
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- Gapless: the counter row stays locked until commit and a rollback returns the number. Call
-- it as late as possible in a transaction, so same-tenant inserts queue only for its tail.
DECLARE
    v_tenant uuid := core.current_tenant_id();
    v_next   bigint;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant context for identifier %', p_scope USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    INSERT INTO tenancy.tb_identifier_counter AS c (tenant_id, scope, last_value)
    VALUES (v_tenant, p_scope, 1)
    ON CONFLICT (tenant_id, scope) DO UPDATE SET last_value = c.last_value + 1
    RETURNING c.last_value INTO v_next;
    RETURN p_prefix || pg_catalog.lpad(v_next::text, greatest(p_width, pg_catalog.length(v_next::text)), '0');
END
$$;
COMMENT ON FUNCTION core.next_identifier(text, text, integer) IS
    'The next identifier of a scope in the current tenant, e.g. next_identifier(''order'', ''ORD-'') = ORD-000042; gapless.';

CREATE FUNCTION core.tg_tenant_row__stamp()
    RETURNS trigger
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- Keeps the bookkeeping columns honest whatever the writer does: tenant_id and id never
-- change, a real change bumps version and records who and when, a no-op update does not.
-- A real change is found by comparing the rows byte for byte with the bookkeeping columns
-- set aside (record image equality): every write to a tenant table runs this, and turning
-- both rows into jsonb to compare them cost about four times as much.
DECLARE
    v_probe record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.created_by := coalesce(NEW.created_by, core.current_actor_id());
        NEW.updated_by := coalesce(NEW.updated_by, NEW.created_by);
        RETURN NEW;
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION '%.%: tenant_id and id never change', TG_TABLE_SCHEMA, TG_TABLE_NAME
              USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    v_probe := NEW;
    v_probe.version := OLD.version;
    v_probe.updated_at := OLD.updated_at;
    v_probe.updated_by := OLD.updated_by;
    IF v_probe *= OLD THEN
        NEW.version := OLD.version;
    ELSE
        NEW.version := OLD.version + 1;
        NEW.updated_at := pg_catalog.now();
        NEW.updated_by := core.current_actor_id();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION core.tg_tenant_row__stamp() IS
    'BEFORE INSERT/UPDATE on tenant tables: authors and timestamps, version + 1 on a real change, tenant_id and id immutable.';

CREATE FUNCTION core.tg_tenant_row__keep_old_identifier()
    RETURNS trigger
    VOLATILE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.identifier IS DISTINCT FROM OLD.identifier THEN
        INSERT INTO tenancy.tb_identifier_alias (tenant_id, entity, identifier, id)
        VALUES (OLD.tenant_id, TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, OLD.identifier, OLD.id)
        ON CONFLICT (tenant_id, entity, identifier) DO UPDATE SET id = EXCLUDED.id, retired_at = pg_catalog.now();
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION core.tg_tenant_row__keep_old_identifier() IS
    'AFTER UPDATE OF identifier on tenant tables: the old identifier keeps resolving to the same entity.';

CREATE FUNCTION core.setup_tenant_table(p_table regclass, p_readable boolean DEFAULT true)
    RETURNS void
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_schema   text;
    v_has      text[];
    v_cmd      text;
    v_rule     constant text := 'tenant_id = NULLIF(pg_catalog.current_setting(''strata.tenant_id'', true), '''')::uuid';
BEGIN
    SELECT n.nspname INTO v_schema
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    SELECT pg_catalog.array_agg(a.attname::text) INTO v_has
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT 'tenant_id' = ANY (v_has) THEN
        RAISE EXCEPTION '% has no tenant_id column', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The app roles may use no schema but app, and this revokes USAGE on the table's schema.
    IF v_schema = 'app' THEN
        RAISE EXCEPTION '% is in the app schema; tenant tables belong in a bounded context''s schema (tenancy, orders, …)', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    -- One policy per command: the application and the owner (app functions run as the owner)
    -- see and write only the tenant in context; reporting reads it. No context, no rows.
    EXECUTE pg_catalog.format('CREATE POLICY tenant_select ON %s FOR SELECT TO strata_app, strata_readonly, strata_owner USING (%s)', p_table, v_rule);
    EXECUTE pg_catalog.format('CREATE POLICY tenant_insert ON %s FOR INSERT TO strata_app, strata_owner WITH CHECK (%s)', p_table, v_rule);
    EXECUTE pg_catalog.format('CREATE POLICY tenant_update ON %s FOR UPDATE TO strata_app, strata_owner USING (%s) WITH CHECK (%s)', p_table, v_rule, v_rule);
    EXECUTE pg_catalog.format('CREATE POLICY tenant_delete ON %s FOR DELETE TO strata_app, strata_owner USING (%s)', p_table, v_rule);
    FOREACH v_cmd IN ARRAY ARRAY['select', 'insert', 'update', 'delete'] LOOP
        EXECUTE pg_catalog.format('COMMENT ON POLICY tenant_%s ON %s IS %L', v_cmd, p_table,
                                  'Tenant isolation: rows of the tenant in strata.tenant_id only; none without a context.');
    END LOOP;

    IF ARRAY['version', 'updated_at', 'updated_by', 'id'] <@ v_has THEN
        EXECUTE pg_catalog.format('CREATE TRIGGER tg_10_stamp BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION core.tg_tenant_row__stamp()', p_table);
    END IF;
    IF ARRAY['identifier', 'id'] <@ v_has THEN
        EXECUTE pg_catalog.format('CREATE TRIGGER tg_20_keep_old_identifier AFTER UPDATE OF identifier ON %s FOR EACH ROW EXECUTE FUNCTION core.tg_tenant_row__keep_old_identifier()', p_table);
    END IF;

    -- NOTE: app views are security_invoker, so their readers need SELECT on the tables under
    -- them; RLS limits that to the tenant in context. They get no USAGE on the table's schema
    -- (revoked, not just left out: earlier versions granted it), so they cannot name the
    -- table and reach it only through the views. PostgreSQL checks USAGE when a name is
    -- looked up, and a view's names were looked up when it was created. Writes go only
    -- through app functions.
    EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA %I FROM strata_app, strata_readonly', v_schema);
    IF p_readable THEN
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO strata_app, strata_readonly', p_table);
    END IF;
END
$$;
COMMENT ON FUNCTION core.setup_tenant_table(regclass, boolean) IS
    'Makes a table a tenant table: RLS enabled and forced, tenant policies for every command, version/author stamping, identifier history, and (when p_readable) SELECT for the app roles.';

CREATE FUNCTION core.resolve(p_table regclass, p_ref text, OUT pk bigint, OUT id uuid, OUT identifier text)
    STABLE
    LANGUAGE plpgsql
AS $$
-- The one resolver: a reference is an entity's id (a UUID) or its identifier, current or
-- retired, always within the current tenant. Each lookup is a unique-index scan.
DECLARE
    v_tenant uuid := core.current_tenant_id();
    v_pk     text;
BEGIN
    IF p_ref IS NULL OR v_tenant IS NULL THEN
        RETURN;
    END IF;
    SELECT 'pk_' || pg_catalog.regexp_replace(c.relname, '^tb_', '') INTO v_pk
      FROM pg_catalog.pg_class AS c WHERE c.oid = p_table;
    IF core.is_uuid(p_ref) THEN
        EXECUTE pg_catalog.format('SELECT t.%I, t.id, t.identifier FROM %s AS t WHERE t.tenant_id = $1 AND t.id = $2', v_pk, p_table)
           INTO pk, id, identifier USING v_tenant, p_ref::uuid;
        RETURN;
    END IF;
    EXECUTE pg_catalog.format('SELECT t.%I, t.id, t.identifier FROM %s AS t WHERE t.tenant_id = $1 AND t.identifier = $2', v_pk, p_table)
       INTO pk, id, identifier USING v_tenant, p_ref;
    IF pk IS NULL THEN
        EXECUTE pg_catalog.format(
            'SELECT t.%I, t.id, t.identifier FROM tenancy.tb_identifier_alias AS a
               JOIN %s AS t ON t.tenant_id = a.tenant_id AND t.id = a.id
              WHERE a.tenant_id = $1 AND a.entity = $2 AND a.identifier = $3', v_pk, p_table)
           INTO pk, id, identifier USING v_tenant, p_table::text, p_ref;
    END IF;
END
$$;
COMMENT ON FUNCTION core.resolve(regclass, text) IS
    'Finds an entity of the current tenant by id or identifier (current or retired): its pk, id and current identifier, or NULLs.';
