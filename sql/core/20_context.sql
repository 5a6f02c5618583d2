-- requires: 0003_tenancy

/* Tenant context.

   Identity travels in transaction-local settings (strata.tenant_id, strata.actor_id,
   strata.correlation_id, strata.causation_id), so it is safe behind a transaction-pooling
   proxy and is forwarded by Citus. app.set_context() is the checked way to set them: the actor
   must be an active member of the tenant. The plain form

       SET LOCAL strata.tenant_id = '<tenant uuid>';
       SET LOCAL strata.actor_id  = '<user uuid>';

   is what a proxy or Citus forwards; it skips the membership check, so mutations still check
   the actor's permissions in core (a non-member holds none), while reads are scoped only by
   tenant. Threat model: the application's login role is trusted to name the tenant, as with
   any RLS-by-setting design; it can never see a tenant it has not named, and with nothing set
   it sees nothing (every policy compares tenant_id with NULL). */

CREATE FUNCTION core.is_uuid(p_text text)
    RETURNS boolean
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT p_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;
COMMENT ON FUNCTION core.is_uuid(text) IS 'True when the text is a canonical UUID, so a reference can be told from an identifier.';

CREATE FUNCTION core.current_tenant_id()
    RETURNS uuid
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid
$$;
COMMENT ON FUNCTION core.current_tenant_id() IS 'The tenant of the current context, or NULL when none is set.';

CREATE FUNCTION core.current_actor_id()
    RETURNS uuid
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT NULLIF(pg_catalog.current_setting('strata.actor_id', true), '')::uuid
$$;
COMMENT ON FUNCTION core.current_actor_id() IS 'The acting user of the current context, or NULL when none is set.';

CREATE FUNCTION core.use_tenant(p_tenant uuid)
    RETURNS void
    VOLATILE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.set_config('strata.tenant_id', coalesce(p_tenant::text, ''), true)
$$;
COMMENT ON FUNCTION core.use_tenant(uuid) IS
    'Sets the tenant for the rest of the transaction without an actor: for owner-side maintenance such as creating a tenant.';

CREATE FUNCTION app.set_context(tenant text, actor text, is_local boolean DEFAULT true)
    RETURNS void
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant uuid;
    v_actor  uuid;
BEGIN
    -- A refused call raises, and PostgreSQL then undoes everything the statement did, settings
    -- included: the context set before it stays. The caller ends the request on the error (a
    -- pool resets the connection: RESET strata.tenant_id, strata.actor_id, or DISCARD ALL).
    SELECT o.tenant_id INTO v_tenant
      FROM tenancy.tb_organization AS o
     WHERE o.status = 'active'
       AND CASE WHEN core.is_uuid(set_context.tenant) THEN o.id = set_context.tenant::uuid
                ELSE o.slug = pg_catalog.lower(set_context.tenant) END;
    IF v_tenant IS NOT NULL THEN
        -- Users are tenant rows: look the actor up inside the tenant it claims.
        PERFORM pg_catalog.set_config('strata.tenant_id', v_tenant::text, true);
        SELECT u.id INTO v_actor
          FROM tenancy.tb_user AS u
         WHERE u.tenant_id = v_tenant
           AND u.status = 'active'
           AND CASE WHEN core.is_uuid(set_context.actor) THEN u.id = set_context.actor::uuid
                    ELSE u.email = pg_catalog.lower(pg_catalog.btrim(set_context.actor)) END;
        PERFORM pg_catalog.set_config('strata.tenant_id', '', true);
    END IF;
    -- One answer whether the tenant, the user or the membership is missing: worded so that it
    -- does not imply the tenant exists, and says nothing about which tenants do.
    IF v_actor IS NULL THEN
        RAISE EXCEPTION 'no active tenant "%" with an active user "%"',
                        coalesce(set_context.tenant, '(null)'), coalesce(set_context.actor, '(null)')
              USING ERRCODE = 'invalid_authorization_specification',
                    HINT = 'Pass the tenant''s id or slug and an active user''s id or email.';
    END IF;
    PERFORM pg_catalog.set_config('strata.tenant_id', v_tenant::text, set_context.is_local);
    PERFORM pg_catalog.set_config('strata.actor_id', v_actor::text, set_context.is_local);
END
$$;
COMMENT ON FUNCTION app.set_context(text, text, boolean) IS
    'Sets tenant (id or slug) and actor (id or email) for this transaction, or the session when is_local is false; SQLSTATE 28000 unless the actor is an active member.';

CREATE FUNCTION app.set_correlation(correlation_id uuid, causation_id uuid DEFAULT NULL)
    RETURNS void
    VOLATILE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.set_config('strata.correlation_id', coalesce(correlation_id::text, ''), true),
           pg_catalog.set_config('strata.causation_id', coalesce(causation_id::text, ''), true)
$$;
COMMENT ON FUNCTION app.set_correlation(uuid, uuid) IS
    'Tags the ledger events of this transaction with the caller''s request (correlation) and triggering event (causation) ids.';

CREATE FUNCTION app.current_context(
    OUT tenant_id uuid,
    OUT tenant_slug text,
    OUT actor_id uuid,
    OUT actor_email text,
    OUT correlation_id uuid
)
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE sql
AS $$
    SELECT t.tenant_id,
           (SELECT o.slug FROM tenancy.tb_organization AS o WHERE o.tenant_id = t.tenant_id),
           t.actor_id,
           (SELECT u.email FROM tenancy.tb_user AS u WHERE u.tenant_id = t.tenant_id AND u.id = t.actor_id),
           NULLIF(pg_catalog.current_setting('strata.correlation_id', true), '')::uuid
      FROM (SELECT core.current_tenant_id() AS tenant_id, core.current_actor_id() AS actor_id) AS t
$$;
COMMENT ON FUNCTION app.current_context() IS 'The tenant, actor and correlation id currently set (NULLs when none).';

GRANT EXECUTE ON FUNCTION app.set_context(text, text, boolean), app.current_context(),
    app.set_correlation(uuid, uuid) TO strata_app;
-- NOTE: readonly reporting needs a tenant too, or every view is empty.
GRANT EXECUTE ON FUNCTION app.set_context(text, text, boolean), app.current_context() TO strata_readonly;
