-- requires: 0003_tenancy

SELECT core.setup_tenant_table('tenancy.tb_organization');
SELECT core.setup_tenant_table('tenancy.tb_user');
SELECT core.setup_tenant_table('tenancy.tb_role');
SELECT core.setup_tenant_table('tenancy.tb_role_permission');
SELECT core.setup_tenant_table('tenancy.tb_user_role');
-- Framework bookkeeping: read and written only by core, never through a view.
SELECT core.setup_tenant_table('tenancy.tb_identifier_counter', false);
SELECT core.setup_tenant_table('tenancy.tb_identifier_alias', false);

/* The owner resolves a tenant by slug before any context exists (app.set_context, strata
   tenant create/list). This policy lets the owner read the organization directory, and only
   that table; the application role still sees its own organization only. */
CREATE POLICY owner_directory ON tenancy.tb_organization
    FOR SELECT
    TO strata_owner
    USING (true);
COMMENT ON POLICY owner_directory ON tenancy.tb_organization IS
    'The owner may list organizations and find one by slug; every other table stays tenant-scoped for the owner too.';
