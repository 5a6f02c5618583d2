-- requires: 0003_tenancy

/* Read views of the tenancy context. security_invoker, so the reader's own RLS applies:
   a reader sees the tenant in its context and nothing without one. data is the entity as the
   API returns it (camelCase); times are ISO 8601 in UTC whatever the session's TimeZone. */

CREATE VIEW app.v_organization
WITH (security_invoker = true) AS
SELECT o.id,
       o.identifier,
       o.name,
       o.slug,
       o.subscription_tier,
       o.status,
       o.version,
       pg_catalog.jsonb_build_object(
           'id', o.id,
           'identifier', o.identifier,
           'name', o.name,
           'slug', o.slug,
           'subscriptionTier', o.subscription_tier,
           'settings', o.settings,
           'status', o.status,
           'version', o.version,
           'createdAt', pg_catalog.to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'updatedAt', pg_catalog.to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
       ) AS data
  FROM tenancy.tb_organization AS o
 WHERE o.tenant_id = NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid;
COMMENT ON VIEW app.v_organization IS 'The organization (tenant) in context: name, slug, tier, settings.';

CREATE VIEW app.v_users
WITH (security_invoker = true) AS
SELECT u.id,
       u.identifier,
       u.email,
       u.name,
       u.status,
       coalesce(r.roles, '{}') AS roles,
       u.version,
       u.created_at,
       u.updated_at,
       pg_catalog.jsonb_build_object(
           'id', u.id,
           'identifier', u.identifier,
           'email', u.email,
           'name', u.name,
           'status', u.status,
           'roles', pg_catalog.to_jsonb(coalesce(r.roles, '{}')),
           'preferences', u.preferences,
           'version', u.version,
           'createdAt', pg_catalog.to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'updatedAt', pg_catalog.to_char(u.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
       ) AS data
  FROM tenancy.tb_user AS u
  LEFT JOIN LATERAL (
        SELECT pg_catalog.array_agg(ro.identifier ORDER BY ro.identifier) AS roles
          FROM tenancy.tb_user_role AS ur
          JOIN tenancy.tb_role AS ro ON ro.tenant_id = ur.tenant_id AND ro.pk_role = ur.fk_role
         WHERE ur.tenant_id = u.tenant_id AND ur.fk_user = u.pk_user
       ) AS r ON true;
COMMENT ON VIEW app.v_users IS 'Users of the tenant in context with their roles; data is the API shape (camelCase).';

CREATE VIEW app.v_roles
WITH (security_invoker = true) AS
SELECT ro.id,
       ro.identifier,
       ro.name,
       ro.description,
       ro.grants_all,
       ro.is_system,
       coalesce(p.permissions, '{}') AS permissions,
       coalesce(m.members, 0) AS member_count,
       ro.version,
       pg_catalog.jsonb_build_object(
           'id', ro.id,
           'identifier', ro.identifier,
           'name', ro.name,
           'description', ro.description,
           'grantsAll', ro.grants_all,
           'isSystem', ro.is_system,
           'permissions', pg_catalog.to_jsonb(coalesce(p.permissions, '{}')),
           'memberCount', coalesce(m.members, 0),
           'version', ro.version
       ) AS data
  FROM tenancy.tb_role AS ro
  LEFT JOIN LATERAL (
        SELECT pg_catalog.array_agg(rp.permission ORDER BY rp.permission) AS permissions
          FROM tenancy.tb_role_permission AS rp
         WHERE rp.tenant_id = ro.tenant_id AND rp.fk_role = ro.pk_role
       ) AS p ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*)::integer AS members
          FROM tenancy.tb_user_role AS ur
         WHERE ur.tenant_id = ro.tenant_id AND ur.fk_role = ro.pk_role
       ) AS m ON true;
COMMENT ON VIEW app.v_roles IS 'Roles of the tenant in context with their permissions and member counts; admin (grantsAll) holds every permission.';

GRANT SELECT ON app.v_organization, app.v_users, app.v_roles TO strata_app, strata_readonly;
