-- Tenant isolation, proven as a non-superuser login role granted strata_app (RLS binds it).
BEGIN;
SELECT plan(36);

-- Fixtures, as the superuser running the suite.
CREATE FUNCTION pg_temp.rows_in(p_relation regclass)
    RETURNS bigint
    LANGUAGE plpgsql
AS $$
DECLARE v bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', p_relation) INTO v;
    RETURN v;
END
$$;
CREATE TEMP TABLE fx (tenant_a uuid, tenant_b uuid, b_user uuid, b_role uuid, b_role_pk bigint, a_user_pk bigint);
DO $$
DECLARE
    v_a uuid := (core.create_tenant('Tenant A', 'iso-a', 'alice@a.test')).id;
    v_b uuid := (core.create_tenant('Tenant B', 'iso-b', 'bob@b.test')).id;
BEGIN
    PERFORM app.set_context('iso-b', 'bob@b.test');
    PERFORM app.create_user('{"email": "shared@example.test", "name": "In B"}');
    PERFORM app.create_user('{"email": "gone@b.test", "name": "Leaver"}');
    PERFORM app.deactivate_user('{"user": "gone@b.test"}');
    INSERT INTO fx
    SELECT v_a, v_b,
           (SELECT id FROM tenancy.tb_user WHERE tenant_id = v_b AND email = 'shared@example.test'),
           (SELECT id FROM tenancy.tb_role WHERE tenant_id = v_b AND identifier = 'member'),
           (SELECT pk_role FROM tenancy.tb_role WHERE tenant_id = v_b AND identifier = 'member'),
           (SELECT pk_user FROM tenancy.tb_user WHERE tenant_id = v_a);
    PERFORM core.use_tenant(NULL);
    PERFORM set_config('strata.actor_id', '', true);
END
$$;
GRANT SELECT ON fx TO PUBLIC;
CREATE TEMP VIEW tenant_relations AS
SELECT c.oid::regclass AS rel
  FROM pg_class AS c
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('tenancy', 'orders', 'work', 'content', 'audit')
   AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
   AND has_table_privilege('strata_app', c.oid, 'SELECT')
UNION ALL
SELECT c.oid::regclass FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = 'app' AND c.relkind IN ('v', 'm');
GRANT SELECT ON tenant_relations TO PUBLIC;

-- The application role uses the app schema only: it cannot even name the tables under the
-- views (core.setup_tenant_table).
SET LOCAL ROLE strata_test_app;
SELECT throws_ok('SELECT 1 FROM tenancy.tb_user', '42501', 'permission denied for schema tenancy',
                 'strata_app cannot name the tenancy tables');
SELECT throws_ok('SELECT 1 FROM orders.tb_order', '42501', 'permission denied for schema orders',
                 'strata_app cannot name the orders tables');
-- It holds SELECT on them for the security_invoker views, so the policies must hold too. For
-- this transaction only, the test role may name the tables, and the rest proves RLS itself.
RESET ROLE;
GRANT USAGE ON SCHEMA tenancy, orders TO strata_test_app;
SET LOCAL ROLE strata_test_app;

-- No context: nothing to read, nothing to write.
SELECT isnt_empty('SELECT 1 FROM tenant_relations', 'there are tenant tables and views to check');
SELECT is_empty('SELECT rel FROM tenant_relations WHERE pg_temp.rows_in(rel) > 0',
                'no context: every tenant table and app view returns no rows');
SELECT throws_ok($$INSERT INTO tenancy.tb_user (tenant_id, identifier, email, name) VALUES ((SELECT tenant_a FROM fx), 'X-1', 'x@a.test', 'X')$$,
                 '42501', NULL, 'no context: direct INSERT is refused');
SELECT throws_ok('UPDATE tenancy.tb_user SET name = name', '42501', NULL, 'direct UPDATE is refused');
SELECT throws_ok('DELETE FROM tenancy.tb_user', '42501', NULL, 'direct DELETE is refused');
SELECT throws_ok('TRUNCATE tenancy.tb_user', '42501', NULL, 'TRUNCATE is refused');
SELECT is((app.create_user('{"email": "c@a.test", "name": "C"}')).status, 'forbidden:context',
          'no context: app mutations refuse with forbidden:context');

-- set_context checks membership.
SELECT throws_ok($$SELECT app.set_context('iso-a', 'bob@b.test')$$, '28000', 'no active tenant "iso-a" with an active user "bob@b.test"',
                 'set_context with a member of another tenant raises 28000');
SELECT throws_ok($$SELECT app.set_context('iso-b', 'gone@b.test')$$, '28000', 'no active tenant "iso-b" with an active user "gone@b.test"',
                 'set_context with a deactivated member raises 28000');
SELECT throws_ok($$SELECT app.set_context('no-such-tenant', 'bob@b.test')$$, '28000', 'no active tenant "no-such-tenant" with an active user "bob@b.test"',
                 'set_context with an unknown tenant raises 28000, in the same words');
SELECT throws_ok($$SELECT app.set_context(NULL, NULL)$$, '28000', 'no active tenant "(null)" with an active user "(null)"',
                 'set_context with NULLs raises 28000');
SELECT is((SELECT tenant_id FROM app.current_context()), NULL, 'a refused set_context leaves no tenant set');

-- Tenant A's context.
SELECT lives_ok($$SELECT app.set_context('iso-a', 'ALICE@a.test')$$, 'set_context accepts slug and email (any case)');
SELECT is((SELECT tenant_slug FROM app.current_context()), 'iso-a', 'current_context names the tenant');
SELECT is((SELECT email FROM app.v_users), 'alice@a.test', 'v_users shows only tenant A''s user');
SELECT is_empty('SELECT 1 FROM tenancy.tb_user WHERE tenant_id = (SELECT tenant_b FROM fx)',
                'tenant B''s users are invisible even when asked for by tenant_id');
SELECT is_empty('SELECT 1 FROM app.v_users WHERE id = (SELECT b_user FROM fx)', 'tenant B''s user is invisible by id');
SELECT is((SELECT count(*) FROM app.v_roles)::int, 3, 'v_roles shows tenant A''s three roles only');
SELECT is((SELECT count(*) FROM app.v_organization)::int, 1, 'v_organization shows one organization');
SELECT is((app.update_user(jsonb_build_object('user', (SELECT b_user FROM fx)::text, 'name', 'hijack'))).status,
          'not_found:user', 'updating tenant B''s user by id is not_found');
SELECT is((app.deactivate_user(jsonb_build_object('user', (SELECT b_user FROM fx)::text))).status,
          'not_found:user', 'deactivating tenant B''s user is not_found');
SELECT is((app.grant_role(jsonb_build_object('user', 'alice@a.test', 'role', (SELECT b_role FROM fx)::text))).status,
          'not_found:role', 'tenant B''s role cannot be referenced');
SELECT is((app.create_user('{"email": "shared@example.test", "name": "In A"}')).status, 'created',
          'an email used in tenant B is free in tenant A: unique keys reveal nothing across tenants');
SELECT is((SELECT identifier FROM app.v_users WHERE email = 'shared@example.test'), 'USR-000002',
          'identifiers are numbered per tenant');

-- The policies bind the owner too (app functions run as the owner): forced RLS.
RESET ROLE;
SET LOCAL ROLE strata_owner;
SELECT is(set_config('strata.tenant_id', (SELECT tenant_a FROM fx)::text, true), (SELECT tenant_a FROM fx)::text, 'the owner takes tenant A''s context');
SELECT is_empty($$UPDATE tenancy.tb_user SET name = 'x' WHERE tenant_id = (SELECT tenant_b FROM fx) RETURNING 1$$,
                'even the owner cannot update tenant B''s rows from tenant A''s context');
SELECT is_empty($$DELETE FROM tenancy.tb_user_role WHERE tenant_id = (SELECT tenant_b FROM fx) RETURNING 1$$,
                'even the owner cannot delete tenant B''s rows from tenant A''s context');
SELECT throws_ok($$INSERT INTO tenancy.tb_role (tenant_id, identifier, name) VALUES ((SELECT tenant_b FROM fx), 'spy', 'Spy')$$,
                 '42501', NULL, 'rows cannot be written into tenant B from tenant A''s context');
SELECT throws_ok($$UPDATE tenancy.tb_user SET tenant_id = (SELECT tenant_b FROM fx) WHERE email = 'alice@a.test'$$,
                 NULL, NULL, 'a row cannot move to another tenant');
RESET ROLE;

-- Composite foreign keys: a tenant-A row cannot point at a tenant-B row, whoever writes it.
SELECT throws_ok($$INSERT INTO tenancy.tb_user_role (tenant_id, fk_user, fk_role)
                   SELECT tenant_a, a_user_pk, b_role_pk FROM fx$$,
                 '23503', NULL, 'a foreign key cannot reference another tenant''s row');

-- Read-only reporting role.
SET LOCAL ROLE strata_test_readonly;
SELECT lives_ok($$SELECT app.set_context('iso-a', 'alice@a.test')$$, 'strata_readonly may set a context');
SELECT is((SELECT count(*) FROM app.v_users)::int, 2, 'strata_readonly reads the tenant''s users');
SELECT throws_ok($$SELECT app.create_user('{"email": "r@a.test", "name": "R"}')$$, '42501', NULL,
                 'strata_readonly cannot call mutations');
SELECT throws_ok('SELECT 1 FROM orders.tb_order', '42501', 'permission denied for schema orders',
                 'strata_readonly cannot name the tables under the views');
SELECT * FROM finish();
ROLLBACK;
