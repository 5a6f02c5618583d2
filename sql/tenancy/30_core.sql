-- requires: 0003_tenancy

/* The rules of the tenancy context. Each function checks permission, resolves references,
   decides success, NOOP or refusal, and only then writes; app.* wraps them with input
   validation. They run as the owner inside app functions, so RLS keeps them in the tenant. */

CREATE FUNCTION core.user_data(p_id uuid)
    RETURNS jsonb
    STABLE
    LANGUAGE plpgsql
AS $$
-- PL/pgSQL so the plan is cached for the session (a SQL function is re-planned per call here).
BEGIN
    RETURN (SELECT v.data FROM app.v_users AS v WHERE v.id = p_id);
END
$$;
COMMENT ON FUNCTION core.user_data(uuid) IS 'A user of the tenant in context as app.v_users renders it.';

CREATE FUNCTION core.resolve_user(p_ref text, OUT pk bigint, OUT id uuid, OUT identifier text)
    STABLE
    LANGUAGE plpgsql
AS $$
-- People refer to users by email as often as by id or identifier, so a reference with an @
-- is looked up by email (unique per tenant) before the generic resolver.
BEGIN
    IF p_ref LIKE '%@%' THEN
        SELECT u.pk_user, u.id, u.identifier INTO pk, id, identifier
          FROM tenancy.tb_user AS u
         WHERE u.tenant_id = core.current_tenant_id() AND u.email = pg_catalog.lower(p_ref);
        RETURN;
    END IF;
    SELECT r.pk, r.id, r.identifier INTO pk, id, identifier FROM core.resolve('tenancy.tb_user', p_ref) AS r;
END
$$;
COMMENT ON FUNCTION core.resolve_user(text) IS 'Finds a user of the tenant in context by id, identifier (current or retired) or email.';

CREATE FUNCTION core.organization_data()
    RETURNS jsonb
    STABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (SELECT v.data FROM app.v_organization AS v);
END
$$;
COMMENT ON FUNCTION core.organization_data() IS 'The organization in context as app.v_organization renders it.';

CREATE FUNCTION core.create_tenant(
    p_name text,
    p_slug text,
    p_admin_email text,
    p_admin_name text DEFAULT NULL,
    p_tier text DEFAULT 'free'
)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_check    jsonb;
    v_in       jsonb;
    v_existing record;
    v_tenant   uuid;
    v_admin    record;
BEGIN
    v_check := core.validate_input(
        '{"fields": [
            {"name": "name", "type": "string", "required": true, "max_length": 200},
            {"name": "slug", "type": "string", "required": true, "max_length": 63,
             "pattern": "^(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)[a-z0-9][a-z0-9-]{1,62}$",
             "pattern_message": "slug must be 2-63 lower-case letters, digits and dashes, starting with a letter or digit, and not shaped like a UUID (a tenant named in that shape is taken by its id)"},
            {"name": "admin_email", "type": "email", "required": true},
            {"name": "admin_name", "type": "string", "max_length": 200},
            {"name": "subscription_tier", "type": "enum", "values": ["free", "team", "business", "enterprise"], "default": "free"}
        ]}'::jsonb,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'name', p_name, 'slug', p_slug, 'admin_email', p_admin_email, 'admin_name', p_admin_name,
            'subscription_tier', p_tier)));
    IF v_check -> 'errors' <> '[]' THEN
        RETURN core.result_invalid(v_check -> 'errors', 'organization');
    END IF;
    v_in := v_check -> 'value';

    SELECT o.tenant_id, o.name, o.version INTO v_existing
      FROM tenancy.tb_organization AS o WHERE o.slug = v_in ->> 'slug';
    IF FOUND THEN
        PERFORM core.use_tenant(v_existing.tenant_id);
        IF v_existing.name = v_in ->> 'name' THEN
            RETURN core.result_noop('already_exists', 'organization', v_existing.tenant_id, v_in ->> 'slug',
                                    v_existing.version, core.organization_data());
        END IF;
        RETURN core.result_refused('conflict:slug_taken',
                                   pg_catalog.format('The slug %s belongs to another organization.', v_in ->> 'slug'),
                                   'organization');
    END IF;

    v_tenant := core.uuid_v7();
    PERFORM core.use_tenant(v_tenant);
    INSERT INTO tenancy.tb_organization (id, tenant_id, identifier, slug, name, subscription_tier)
    VALUES (v_tenant, v_tenant, v_in ->> 'slug', v_in ->> 'slug', v_in ->> 'name', v_in ->> 'subscription_tier');
    PERFORM core.seed_tenant_roles();
    INSERT INTO tenancy.tb_user (tenant_id, identifier, email, name)
    VALUES (v_tenant, core.next_identifier('user', 'USR-'), v_in ->> 'admin_email',
            coalesce(v_in ->> 'admin_name', pg_catalog.split_part(v_in ->> 'admin_email', '@', 1)))
    RETURNING pk_user, id, identifier INTO v_admin;
    INSERT INTO tenancy.tb_user_role (tenant_id, fk_user, fk_role)
    SELECT v_tenant, v_admin.pk_user, r.pk_role
      FROM tenancy.tb_role AS r WHERE r.tenant_id = v_tenant AND r.identifier = 'admin';
    RETURN core.result_success('created', 'organization', v_tenant, v_in ->> 'slug', 1, core.organization_data(),
                               NULL, pg_catalog.format('Organization %s created with admin %s.', v_in ->> 'slug', v_admin.identifier),
                               pg_catalog.jsonb_build_object('adminUserId', v_admin.id, 'adminIdentifier', v_admin.identifier));
EXCEPTION
    WHEN unique_violation THEN
        -- Another session created the same slug a moment ago.
        RETURN core.result_refused('conflict:slug_taken',
                                   pg_catalog.format('The slug %s was just taken.', v_in ->> 'slug'), 'organization');
END
$$;
COMMENT ON FUNCTION core.create_tenant(text, text, text, text, text) IS
    'Creates an organization with the admin, member and viewer roles and its first admin user; noop:already_exists when the same slug and name exist. Owner only (strata tenant create).';

CREATE FUNCTION core.tenants()
    RETURNS TABLE (id uuid, slug text, name text, subscription_tier text, status text, created_at timestamptz)
    STABLE
    LANGUAGE sql
AS $$
    SELECT o.id, o.slug, o.name, o.subscription_tier, o.status, o.created_at
      FROM tenancy.tb_organization AS o
     ORDER BY o.slug
$$;
COMMENT ON FUNCTION core.tenants() IS 'Every organization in the database (owner only: strata tenant list).';

CREATE FUNCTION core.create_user(
    p_email text,
    p_name text,
    p_role text DEFAULT 'member',
    p_preferences jsonb DEFAULT '{}'
)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant   uuid := core.current_tenant_id();
    v_existing record;
    v_role     record;
    v_user     record;
BEGIN
    IF NOT core.has_permission('users.create') THEN
        RETURN core.forbidden('users.create', 'user');
    END IF;
    SELECT u.id, u.identifier, u.version INTO v_existing
      FROM tenancy.tb_user AS u WHERE u.tenant_id = v_tenant AND u.email = p_email;
    IF FOUND THEN
        RETURN core.result_noop('already_exists', 'user', v_existing.id, v_existing.identifier, v_existing.version,
                                core.user_data(v_existing.id), 'A user with this email already exists.');
    END IF;
    v_role := core.resolve('tenancy.tb_role', coalesce(p_role, 'member'));
    IF v_role.pk IS NULL THEN
        RETURN core.result_refused('not_found:role', pg_catalog.format('No role %s in this organization.', p_role), 'user');
    END IF;
    BEGIN
        INSERT INTO tenancy.tb_user (tenant_id, identifier, email, name, preferences)
        VALUES (v_tenant, core.next_identifier('user', 'USR-'), p_email, p_name, coalesce(p_preferences, '{}'))
        RETURNING pk_user, id, identifier, version INTO v_user;
        INSERT INTO tenancy.tb_user_role (tenant_id, fk_user, fk_role) VALUES (v_tenant, v_user.pk_user, v_role.pk);
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent call created the same email first; its number is given back (gapless).
        SELECT u.id, u.identifier, u.version INTO v_existing
          FROM tenancy.tb_user AS u WHERE u.tenant_id = v_tenant AND u.email = p_email;
        IF NOT FOUND THEN
            RETURN core.result_refused('conflict:already_exists', 'A user with this email was created concurrently.', 'user');
        END IF;
        RETURN core.result_noop('already_exists', 'user', v_existing.id, v_existing.identifier, v_existing.version,
                                core.user_data(v_existing.id), 'A user with this email already exists.');
    END;
    RETURN core.result_success('created', 'user', v_user.id, v_user.identifier, v_user.version, core.user_data(v_user.id));
END
$$;
COMMENT ON FUNCTION core.create_user(text, text, text, jsonb) IS
    'Creates a user with one role (member by default); noop:already_exists for a known email; needs users.create.';

CREATE FUNCTION core.update_user(
    p_user text,
    p_name text DEFAULT NULL,
    p_email text DEFAULT NULL,
    p_preferences jsonb DEFAULT NULL,
    p_version integer DEFAULT NULL
)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_ref     record := core.resolve_user(p_user);
    v_row     tenancy.tb_user;
    v_prefs   jsonb;
    v_limit   integer;
    v_size    integer;
    v_changed text[] := '{}';
BEGIN
    IF v_ref.pk IS NULL THEN
        RETURN core.result_refused('not_found:user', pg_catalog.format('No user %s in this organization.', p_user), 'user');
    END IF;
    -- People may edit themselves, while they are active members (the plain context settings
    -- skip app.set_context's check); editing others needs users.update.
    IF v_ref.id IS DISTINCT FROM core.current_actor_id() THEN
        IF NOT core.has_permission('users.update') THEN
            RETURN core.forbidden('users.update', 'user');
        END IF;
    ELSIF NOT core.is_active_actor() THEN
        RETURN core.result_refused('forbidden:context',
                                   'The acting user is not an active member of an active organization.', 'user');
    END IF;
    SELECT * INTO v_row FROM tenancy.tb_user AS u
     WHERE u.tenant_id = core.current_tenant_id() AND u.pk_user = v_ref.pk
       FOR UPDATE;
    IF p_version IS NOT NULL AND p_version <> v_row.version THEN
        RETURN core.result_refused('conflict:stale_version',
                                   pg_catalog.format('The user is at version %s, not %s; reload and retry.', v_row.version, p_version),
                                   'user', NULL, v_row.id, v_row.identifier, v_row.version);
    END IF;
    -- Preferences merge: given keys replace, a key given as null is removed.
    v_prefs := v_row.preferences;
    IF p_preferences IS NOT NULL THEN
        v_prefs := (v_prefs || p_preferences)
                   - coalesce((SELECT pg_catalog.array_agg(e.key) FROM pg_catalog.jsonb_each(p_preferences) AS e
                                WHERE e.value = 'null'::jsonb), '{}');
        -- Each input is capped by the contract; the merged whole is held to the same cap, or
        -- repeated merges would grow it without end (a merge that shrinks is always let through).
        v_limit := (core.contract_field(core.contract__update_user(), 'preferences') ->> 'max_bytes')::integer;
        v_size := pg_catalog.octet_length(v_prefs::text);
        IF v_size > v_limit AND v_size > pg_catalog.octet_length(v_row.preferences::text) THEN
            RETURN core.result_refused('validation:too_long',
                                       pg_catalog.format('The merged preferences would take %s bytes; at most %s are kept.',
                                                         v_size, v_limit),
                                       'user',
                                       pg_catalog.jsonb_build_array(core.field_error('preferences', 'too_long',
                                           pg_catalog.format('preferences merged with those stored must be at most %s bytes; '
                                                             'remove keys by setting them to null', v_limit))),
                                       v_row.id, v_row.identifier, v_row.version);
        END IF;
    END IF;
    IF p_name IS NOT NULL AND p_name <> v_row.name THEN v_changed := v_changed || 'name'::text; END IF;
    IF p_email IS NOT NULL AND p_email <> v_row.email THEN v_changed := v_changed || 'email'::text; END IF;
    IF v_prefs <> v_row.preferences THEN v_changed := v_changed || 'preferences'::text; END IF;
    IF pg_catalog.cardinality(v_changed) = 0 THEN
        RETURN core.result_noop('no_changes', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id));
    END IF;
    IF 'email' = ANY (v_changed) AND EXISTS (
           SELECT 1 FROM tenancy.tb_user AS u
            WHERE u.tenant_id = v_row.tenant_id AND u.email = p_email AND u.pk_user <> v_row.pk_user) THEN
        RETURN core.result_refused('conflict:email_taken', 'Another user of this organization has that email.', 'user',
                                   NULL, v_row.id, v_row.identifier, v_row.version);
    END IF;
    UPDATE tenancy.tb_user AS u
       SET name = coalesce(p_name, u.name),
           email = coalesce(p_email, u.email),
           preferences = v_prefs
     WHERE u.tenant_id = v_row.tenant_id AND u.pk_user = v_row.pk_user
    RETURNING u.version INTO v_row.version;
    RETURN core.result_success('updated', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id), v_changed);
END
$$;
COMMENT ON FUNCTION core.update_user(text, text, text, jsonb, integer) IS
    'Changes a user''s name, email or preferences (merged, at most as large as one input may be); optimistic lock on version; noop:no_changes when nothing differs.';

CREATE FUNCTION core.admin_count_after(p_without_user bigint)
    RETURNS integer
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- Active admins other than p_without_user. Locks the tenant's admin role row first, so two
-- sessions removing different admins cannot both see the other one still there.
DECLARE
    v_admin_role bigint;
    v_count      integer;
BEGIN
    SELECT r.pk_role INTO v_admin_role FROM tenancy.tb_role AS r
     WHERE r.tenant_id = core.current_tenant_id() AND r.grants_all
     ORDER BY r.pk_role
       FOR UPDATE;
    SELECT pg_catalog.count(DISTINCT u.pk_user) INTO v_count
      FROM tenancy.tb_user AS u
      JOIN tenancy.tb_user_role AS ur ON ur.tenant_id = u.tenant_id AND ur.fk_user = u.pk_user
      JOIN tenancy.tb_role AS r ON r.tenant_id = ur.tenant_id AND r.pk_role = ur.fk_role
     WHERE u.tenant_id = core.current_tenant_id() AND r.grants_all AND u.status = 'active'
       AND u.pk_user <> p_without_user;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION core.admin_count_after(bigint) IS 'How many active admins remain without the given user (locks the admin role row).';

CREATE FUNCTION core.deactivate_user(p_user text, p_version integer DEFAULT NULL)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_ref record;
    v_row tenancy.tb_user;
BEGIN
    IF NOT core.has_permission('users.deactivate') THEN
        RETURN core.forbidden('users.deactivate', 'user');
    END IF;
    v_ref := core.resolve_user(p_user);
    IF v_ref.pk IS NULL THEN
        RETURN core.result_refused('not_found:user', pg_catalog.format('No user %s in this organization.', p_user), 'user');
    END IF;
    SELECT * INTO v_row FROM tenancy.tb_user AS u
     WHERE u.tenant_id = core.current_tenant_id() AND u.pk_user = v_ref.pk
       FOR UPDATE;
    IF p_version IS NOT NULL AND p_version <> v_row.version THEN
        RETURN core.result_refused('conflict:stale_version',
                                   pg_catalog.format('The user is at version %s, not %s; reload and retry.', v_row.version, p_version),
                                   'user', NULL, v_row.id, v_row.identifier, v_row.version);
    END IF;
    IF v_row.status = 'deactivated' THEN
        RETURN core.result_noop('already_deactivated', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id));
    END IF;
    IF v_row.id = core.current_actor_id() THEN
        RETURN core.result_refused('conflict:cannot_deactivate_self', 'Users cannot deactivate themselves.', 'user',
                                   NULL, v_row.id, v_row.identifier, v_row.version);
    END IF;
    IF core.admin_count_after(v_row.pk_user) = 0 THEN
        RETURN core.result_refused('conflict:last_admin', 'The organization would have no active admin left.', 'user',
                                   NULL, v_row.id, v_row.identifier, v_row.version);
    END IF;
    UPDATE tenancy.tb_user AS u SET status = 'deactivated'
     WHERE u.tenant_id = v_row.tenant_id AND u.pk_user = v_row.pk_user
    RETURNING u.version INTO v_row.version;
    RETURN core.result_success('updated', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id),
                               ARRAY['status'], 'User deactivated.');
END
$$;
COMMENT ON FUNCTION core.deactivate_user(text, integer) IS
    'Deactivates a user (they can no longer set a context); never yourself, never the last admin; needs users.deactivate.';

CREATE FUNCTION core.change_role(p_user text, p_role text, p_grant boolean)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- grant_role and revoke_role: one rule set, two directions.
DECLARE
    v_user  record;
    v_role  record;
    v_row   tenancy.tb_user;
    v_held  boolean;
BEGIN
    IF NOT core.has_permission('roles.grant') THEN
        RETURN core.forbidden('roles.grant', 'user');
    END IF;
    v_user := core.resolve_user(p_user);
    IF v_user.pk IS NULL THEN
        RETURN core.result_refused('not_found:user', pg_catalog.format('No user %s in this organization.', p_user), 'user');
    END IF;
    v_role := core.resolve('tenancy.tb_role', p_role);
    IF v_role.pk IS NULL THEN
        RETURN core.result_refused('not_found:role', pg_catalog.format('No role %s in this organization.', p_role), 'user');
    END IF;
    SELECT * INTO v_row FROM tenancy.tb_user AS u
     WHERE u.tenant_id = core.current_tenant_id() AND u.pk_user = v_user.pk
       FOR UPDATE;
    v_held := EXISTS (SELECT 1 FROM tenancy.tb_user_role AS ur
                       WHERE ur.tenant_id = v_row.tenant_id AND ur.fk_user = v_row.pk_user AND ur.fk_role = v_role.pk);
    IF p_grant THEN
        IF v_held THEN
            RETURN core.result_noop('already_granted', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id),
                                    NULL, pg_catalog.jsonb_build_object('role', v_role.identifier));
        END IF;
        IF v_row.status <> 'active' THEN
            RETURN core.result_refused('conflict:user_deactivated', 'Roles cannot be granted to a deactivated user.', 'user',
                                       NULL, v_row.id, v_row.identifier, v_row.version);
        END IF;
        INSERT INTO tenancy.tb_user_role (tenant_id, fk_user, fk_role) VALUES (v_row.tenant_id, v_row.pk_user, v_role.pk);
    ELSE
        IF NOT v_held THEN
            RETURN core.result_noop('not_granted', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id),
                                    NULL, pg_catalog.jsonb_build_object('role', v_role.identifier));
        END IF;
        IF (SELECT r.grants_all FROM tenancy.tb_role AS r WHERE r.tenant_id = v_row.tenant_id AND r.pk_role = v_role.pk)
           AND v_row.status = 'active' AND core.admin_count_after(v_row.pk_user) = 0 THEN
            RETURN core.result_refused('conflict:last_admin', 'The organization would have no active admin left.', 'user',
                                       NULL, v_row.id, v_row.identifier, v_row.version);
        END IF;
        DELETE FROM tenancy.tb_user_role AS ur
         WHERE ur.tenant_id = v_row.tenant_id AND ur.fk_user = v_row.pk_user AND ur.fk_role = v_role.pk;
    END IF;
    RETURN core.result_success('updated', 'user', v_row.id, v_row.identifier, v_row.version, core.user_data(v_row.id),
                               ARRAY['roles'],
                               pg_catalog.format('Role %s %s.', v_role.identifier, CASE WHEN p_grant THEN 'granted' ELSE 'revoked' END),
                               pg_catalog.jsonb_build_object('role', v_role.identifier));
END
$$;
COMMENT ON FUNCTION core.change_role(text, text, boolean) IS
    'Grants (p_grant) or revokes a role of a user; noop:already_granted / noop:not_granted; never removes the last admin; needs roles.grant.';
