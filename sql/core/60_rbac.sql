-- requires: 0003_tenancy

/* Role-based access control. Permissions are global codes (tenancy.tb_permission); each
   tenant's roles hold some of them, admin holds all. core functions ask
   core.has_permission() before they change anything and refuse with forbidden:<permission>. */

CREATE VIEW core.v_active_actor
WITH (security_invoker = true) AS
SELECT u.tenant_id,
       u.pk_user
  FROM tenancy.tb_user AS u
 WHERE u.tenant_id = core.current_tenant_id()
   AND u.id = core.current_actor_id()
   AND u.status = 'active'
   -- app.set_context admits only active organizations; the plain settings skip it.
   AND EXISTS (SELECT 1 FROM tenancy.tb_organization AS o
                WHERE o.tenant_id = u.tenant_id AND o.status = 'active');
COMMENT ON VIEW core.v_active_actor IS
    'The actor in context, if an active user of the tenant in context and that tenant an active organization: the standing every action needs (no row: none).';

CREATE FUNCTION core.has_permission(p_permission text)
    RETURNS boolean
    STABLE
    LANGUAGE plpgsql
AS $$
-- PL/pgSQL so the plan is cached for the session: every mutation asks this once. The view is
-- planned into this query, so the actor's standing costs no call of its own.
BEGIN
    RETURN EXISTS (
        SELECT 1
          FROM core.v_active_actor AS a
          JOIN tenancy.tb_user_role AS ur ON ur.tenant_id = a.tenant_id AND ur.fk_user = a.pk_user
          JOIN tenancy.tb_role AS r ON r.tenant_id = ur.tenant_id AND r.pk_role = ur.fk_role
         WHERE r.grants_all OR EXISTS (
                   SELECT 1 FROM tenancy.tb_role_permission AS rp
                    WHERE rp.tenant_id = r.tenant_id AND rp.fk_role = r.pk_role AND rp.permission = p_permission));
END
$$;
COMMENT ON FUNCTION core.has_permission(text) IS
    'Whether the actor in context, an active user of the tenant in context, which is an active organization, holds the permission through any role.';

CREATE FUNCTION core.is_active_actor()
    RETURNS boolean
    STABLE
    LANGUAGE plpgsql
AS $$
-- What has_permission requires of the actor before any permission: for what needs none, such
-- as editing oneself.
BEGIN
    RETURN EXISTS (SELECT 1 FROM core.v_active_actor);
END
$$;
COMMENT ON FUNCTION core.is_active_actor() IS
    'Whether the actor in context is an active user of the tenant in context, and that tenant an active organization.';

CREATE FUNCTION core.forbidden(p_permission text, p_entity text DEFAULT NULL)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT core.result_refused('forbidden:' || p_permission,
                               pg_catalog.format('The acting user lacks the %s permission.', p_permission), p_entity)
$$;
COMMENT ON FUNCTION core.forbidden(text, text) IS 'The forbidden:<permission> refusal.';

CREATE FUNCTION core.seed_tenant_roles()
    RETURNS void
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- The roles every new tenant starts with; permissions added by later migrations reach
-- member and viewer through tb_permission.default_roles, and admin through grants_all.
DECLARE
    v_tenant uuid := core.current_tenant_id();
BEGIN
    INSERT INTO tenancy.tb_role (tenant_id, identifier, name, description, grants_all, is_system)
    VALUES (v_tenant, 'admin', 'Administrator', 'Every permission, including future ones.', true, true),
           (v_tenant, 'member', 'Member', 'Day-to-day work.', false, true),
           (v_tenant, 'viewer', 'Viewer', 'Read only.', false, true);
    INSERT INTO tenancy.tb_role_permission (tenant_id, fk_role, permission)
    SELECT r.tenant_id, r.pk_role, p.code
      FROM tenancy.tb_role AS r
      JOIN tenancy.tb_permission AS p ON r.identifier = ANY (p.default_roles)
     WHERE r.tenant_id = v_tenant AND r.is_system;
END
$$;
COMMENT ON FUNCTION core.seed_tenant_roles() IS 'Creates admin, member and viewer in the tenant in context, with their default permissions.';
