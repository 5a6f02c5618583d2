-- Every tenancy app function: success, each NOOP, each refusal and bad input, called as a
-- login role granted strata_app. Refusals and bad input must write nothing.
BEGIN;
SELECT plan(79);

DO $$
DECLARE
    v_tenant uuid := (core.create_tenant('Mutations Inc', 'mut', 'ann@m.test', 'Ann Admin')).id;
    v_hr     bigint;
BEGIN
    -- A custom role that may deactivate users without being admin (for the last-admin rule).
    PERFORM core.use_tenant(v_tenant);
    INSERT INTO tenancy.tb_role (tenant_id, identifier, name) VALUES (v_tenant, 'hr', 'HR') RETURNING pk_role INTO v_hr;
    INSERT INTO tenancy.tb_role_permission (tenant_id, fk_role, permission)
    VALUES (v_tenant, v_hr, 'users.deactivate'), (v_tenant, v_hr, 'roles.grant');
    PERFORM core.use_tenant(NULL);
END
$$;
CREATE TEMP TABLE counts ON COMMIT DROP AS SELECT 0::bigint AS users, 0::bigint AS grants;
GRANT ALL ON counts TO PUBLIC;
CREATE FUNCTION pg_temp.snapshot() RETURNS boolean LANGUAGE sql AS $$
    UPDATE counts SET users = (SELECT count(*) FROM app.v_users),
                      grants = (SELECT coalesce(sum(cardinality(roles)), 0) FROM app.v_users)
    RETURNING true
$$;
CREATE FUNCTION pg_temp.unchanged() RETURNS boolean LANGUAGE sql AS $$
    SELECT users = (SELECT count(*) FROM app.v_users)
       AND grants = (SELECT coalesce(sum(cardinality(roles)), 0) FROM app.v_users)
      FROM counts
$$;

SET LOCAL ROLE strata_test_app;
SELECT lives_ok($$SELECT app.set_context('mut', 'ann@m.test')$$, 'the admin takes the context');

-- create_user
SELECT is((app.create_user('{"email": "  Bea@M.test ", "name": " Bea "}')).status, 'created', 'create_user: created');
SELECT is((SELECT row(email, name, identifier, roles)::text FROM app.v_users WHERE email = 'bea@m.test'),
          row('bea@m.test', 'Bea', 'USR-000002', '{member}'::text[])::text,
          'create_user: email lower-cased, name trimmed, next identifier, member by default');
SELECT is((app.create_user('{"email": "bea@m.test", "name": "Other"}')).status, 'noop:already_exists',
          'create_user: known email is noop:already_exists');
SELECT is((SELECT name FROM app.v_users WHERE email = 'bea@m.test'), 'Bea', 'create_user: the noop changed nothing');
SELECT is((app.create_user('{"email": "vic@m.test", "name": "Vic", "role": "viewer", "preferences": {"lang": "fr"}}')).status,
          'created', 'create_user: with role and preferences');
SELECT is((SELECT data -> 'preferences' ->> 'lang' FROM app.v_users WHERE email = 'vic@m.test'), 'fr', 'create_user: preferences stored');
SELECT is((app.create_user('{"email": "hal@m.test", "name": "Hal", "role": "hr"}')).identifier, 'USR-000004', 'create_user: custom role');
SELECT ok(pg_temp.snapshot(), 'counted users and grants before the refusals');
SELECT is((app.create_user('{"email": "x@m.test", "name": "X", "role": "nope"}')).status, 'not_found:role',
          'create_user: unknown role is not_found:role');
SELECT is((app.create_user('{"name": "No Email"}')).status, 'validation:required', 'create_user: missing email');
SELECT is((app.create_user('{"email": "not-an-email", "name": "X"}')).status, 'validation:invalid_format', 'create_user: bad email');
SELECT is((app.create_user('{"email": "x@m.test", "name": 5}')).status, 'validation:invalid_type', 'create_user: name of the wrong type');
SELECT is((app.create_user(jsonb_build_object('email', 'x@m.test', 'name', repeat('n', 100000)))).status, 'validation:too_long',
          'create_user: huge string');
SELECT is((app.create_user('{"email": "x@m.test", "name": "X", "admin": true}')).status, 'validation:unknown_field',
          'create_user: unknown key');
SELECT is((app.create_user('{"email": "x@m.test", "name": "X", "preferences": [1]}')).status, 'validation:invalid_type',
          'create_user: preferences must be an object');
SELECT is((app.create_user('[]')).status, 'validation:invalid_input', 'create_user: non-object JSON');
SELECT is((app.create_user('"text"')).status, 'validation:invalid_input', 'create_user: JSON string');
SELECT is((app.create_user(NULL)).status, 'validation:invalid_input', 'create_user: NULL');
SELECT is((app.create_user('{"email": "x@m.test", "name": "X\u0007"}')).status, 'validation:invalid_format', 'create_user: control characters');
SELECT is(jsonb_array_length((app.create_user('{"email": 1, "name": null, "zz": 0}')).errors), 3,
          'create_user: every problem is reported, each with field, code and message');
SELECT ok(pg_temp.unchanged(), 'create_user: refusals wrote nothing');
SELECT lives_ok($$SELECT app.set_context('mut', 'vic@m.test')$$, 'the viewer takes the context');
SELECT is((app.create_user('{"email": "y@m.test", "name": "Y"}')).status, 'forbidden:users.create', 'create_user: viewer is forbidden');
SELECT ok(pg_temp.unchanged(), 'create_user: forbidden wrote nothing');

-- update_user
SELECT lives_ok($$SELECT app.set_context('mut', 'ann@m.test')$$, 'back to the admin');
SELECT results_eq($$SELECT status, version, updated_fields FROM app.update_user('{"user": "bea@m.test", "name": "Beatrice", "version": 1}')$$,
                  $$VALUES ('updated', 2, '{name}'::text[])$$, 'update_user: updated, version 2, updated_fields');
SELECT results_eq($$SELECT status, version FROM app.update_user('{"user": "USR-000002", "name": "Beatrice"}')$$,
                  $$VALUES ('noop:no_changes', 2)$$, 'update_user: same values are noop:no_changes without a version bump');
SELECT is((app.update_user('{"user": "USR-000002", "name": "Bee", "version": 1}')).status, 'conflict:stale_version',
          'update_user: stale version');
SELECT is((SELECT name FROM app.v_users WHERE identifier = 'USR-000002'), 'Beatrice', 'update_user: the stale update changed nothing');
SELECT is((app.update_user('{"user": "USR-999999", "name": "Nobody"}')).status, 'not_found:user', 'update_user: unknown user');
SELECT is((app.update_user('{"user": "bea@m.test", "email": "vic@m.test"}')).status, 'conflict:email_taken', 'update_user: email taken');
SELECT is((app.update_user('{"user": "bea@m.test", "preferences": {"theme": "dark", "tz": "UTC"}}')).updated_fields,
          '{preferences}'::text[], 'update_user: preferences merged');
SELECT is((app.update_user('{"user": "bea@m.test", "preferences": {"theme": null}}')).object_data -> 'preferences',
          '{"tz": "UTC"}'::jsonb, 'update_user: a preference set to null is removed');
SELECT is((app.update_user(jsonb_build_object('user', 'bea@m.test', 'preferences', jsonb_build_object('a', repeat('x', 10000))))).status,
          'updated', 'update_user: 10 kB of preferences');
SELECT results_eq($$SELECT status, errors #>> '{0,field}', (SELECT octet_length((data -> 'preferences')::text) FROM app.v_users WHERE email = 'bea@m.test') < 16384
                     FROM app.update_user(jsonb_build_object('user', 'bea@m.test', 'preferences', jsonb_build_object('b', repeat('y', 10000))))$$,
                  $$VALUES ('validation:too_long', 'preferences', true)$$,
                  'update_user: preferences merged past 16 kB are refused, and stay as they were');
SELECT is((app.update_user('{"name": "X"}')).status, 'validation:required', 'update_user: missing user');
SELECT is((app.update_user('{"user": "bea@m.test", "version": "2"}')).status, 'validation:invalid_type', 'update_user: version must be a number');
SELECT is((app.update_user('{"user": "bea@m.test", "version": 0}')).status, 'validation:out_of_range', 'update_user: version must be positive');
SELECT is((app.update_user('{"user": "bea@m.test", "name": ""}')).status, 'validation:required', 'update_user: empty name');
SELECT lives_ok($$SELECT app.set_context('mut', 'bea@m.test')$$, 'a member takes the context');
SELECT is((app.update_user('{"user": "vic@m.test", "name": "Hacked"}')).status, 'forbidden:users.update',
          'update_user: a member cannot edit someone else');
SELECT is((app.update_user('{"user": "bea@m.test", "name": "Bea"}')).status, 'updated', 'update_user: a member can edit themselves');

-- deactivate_user
SELECT is((app.deactivate_user('{"user": "vic@m.test"}')).status, 'forbidden:users.deactivate', 'deactivate_user: member is forbidden');
SELECT lives_ok($$SELECT app.set_context('mut', 'ann@m.test')$$, 'back to the admin');
SELECT is((app.deactivate_user('{"user": "vic@m.test", "version": 7}')).status, 'conflict:stale_version', 'deactivate_user: stale version');
SELECT results_eq($$SELECT status, updated_fields FROM app.deactivate_user('{"user": "vic@m.test", "version": 1}')$$,
                  $$VALUES ('updated', '{status}'::text[])$$, 'deactivate_user: updated');
SELECT is((app.deactivate_user('{"user": "vic@m.test"}')).status, 'noop:already_deactivated', 'deactivate_user: already deactivated');
SELECT is((app.deactivate_user('{"user": "ann@m.test"}')).status, 'conflict:cannot_deactivate_self', 'deactivate_user: not yourself');
SELECT is((app.deactivate_user('{"user": "nobody@m.test"}')).status, 'not_found:user', 'deactivate_user: unknown user');
SELECT is((app.deactivate_user('{"user": 42}')).status, 'validation:invalid_type', 'deactivate_user: reference must be a string');
SELECT lives_ok($$SELECT app.set_context('mut', 'hal@m.test')$$, 'HR takes the context');
SELECT is((app.deactivate_user('{"user": "ann@m.test"}')).status, 'conflict:last_admin', 'deactivate_user: never the last admin');
SELECT throws_ok($$SELECT app.set_context('mut', 'vic@m.test')$$, '28000', NULL, 'a deactivated user can no longer take a context');
SELECT is((SELECT actor_email FROM app.current_context()), 'hal@m.test', 'a refused set_context leaves the context as it was');

-- grant_role / revoke_role
SELECT lives_ok($$SELECT app.set_context('mut', 'ann@m.test')$$, 'back to the admin');
SELECT results_eq($$SELECT status, updated_fields FROM app.grant_role('{"user": "bea@m.test", "role": "viewer"}')$$,
                  $$VALUES ('updated', '{roles}'::text[])$$, 'grant_role: updated');
SELECT is((SELECT roles FROM app.v_users WHERE email = 'bea@m.test'), '{member,viewer}'::text[], 'grant_role: the role is held');
SELECT is((app.grant_role('{"user": "bea@m.test", "role": "viewer"}')).status, 'noop:already_granted', 'grant_role: already granted');
SELECT is((app.grant_role('{"user": "bea@m.test", "role": "boss"}')).status, 'not_found:role', 'grant_role: unknown role');
SELECT is((app.grant_role('{"user": "zed@m.test", "role": "viewer"}')).status, 'not_found:user', 'grant_role: unknown user');
SELECT is((app.grant_role('{"user": "vic@m.test", "role": "member"}')).status, 'conflict:user_deactivated', 'grant_role: deactivated user');
SELECT is((app.grant_role('{"user": "bea@m.test"}')).status, 'validation:required', 'grant_role: missing role');
SELECT results_eq($$SELECT status, updated_fields FROM app.revoke_role('{"user": "bea@m.test", "role": "viewer"}')$$,
                  $$VALUES ('updated', '{roles}'::text[])$$, 'revoke_role: updated');
SELECT is((app.revoke_role('{"user": "bea@m.test", "role": "viewer"}')).status, 'noop:not_granted', 'revoke_role: not granted');
SELECT is((app.revoke_role('{"user": "ann@m.test", "role": "admin"}')).status, 'conflict:last_admin', 'revoke_role: never the last admin');
SELECT is((app.revoke_role('{"user": "ann@m.test", "role": "ghost"}')).status, 'not_found:role', 'revoke_role: unknown role');
SELECT is((app.revoke_role('{"role": "viewer"}')).status, 'validation:required', 'revoke_role: missing user');
SELECT lives_ok($$SELECT app.set_context('mut', 'bea@m.test')$$, 'a member takes the context');
SELECT is((app.grant_role('{"user": "bea@m.test", "role": "admin"}')).status, 'forbidden:roles.grant', 'grant_role: members cannot grant');
SELECT is((app.revoke_role('{"user": "ann@m.test", "role": "admin"}')).status, 'forbidden:roles.grant', 'revoke_role: members cannot revoke');

-- Results carry the view's shape and the ledger saw the noops.
SELECT lives_ok($$SELECT app.set_context('mut', 'ann@m.test')$$, 'back to the admin');
SELECT is((SELECT count(*) FROM jsonb_object_keys((app.update_user('{"user": "ann@m.test"}')).object_data) AS k
            WHERE k IN ('id', 'identifier', 'email', 'name', 'roles', 'createdAt', 'updatedAt'))::int, 7,
          'object_data is the v_users data, camelCase');

-- The plain context settings skip app.set_context's checks, so core makes them: a deactivated
-- user may not edit even themselves, and nobody acts in a suspended organization.
SELECT set_config('strata.actor_id', (SELECT id::text FROM app.v_users WHERE email = 'vic@m.test'), true);
SELECT is((app.update_user('{"user": "vic@m.test", "name": "Vic Again"}')).status, 'forbidden:context',
          'update_user: a deactivated user cannot edit themselves through the plain settings');
SELECT is((SELECT name FROM app.v_users WHERE email = 'vic@m.test'), 'Vic', 'update_user: and the name is unchanged');
RESET ROLE;
UPDATE tenancy.tb_organization SET status = 'suspended' WHERE slug = 'mut';
SET LOCAL ROLE strata_test_app;
SELECT set_config('strata.actor_id', (SELECT id::text FROM app.v_users WHERE email = 'ann@m.test'), true);
SELECT is((app.create_user('{"email": "z@m.test", "name": "Z"}')).status, 'forbidden:users.create',
          'create_user: the admin of a suspended organization is refused through the plain settings');
SELECT is((app.update_user('{"user": "ann@m.test", "name": "Ann Again"}')).status, 'forbidden:context',
          'update_user: and may not edit themselves');
SELECT ok(pg_temp.unchanged() AND (SELECT name FROM app.v_users WHERE email = 'ann@m.test') = 'Ann Admin',
          'suspended: the refusals wrote nothing');
SELECT throws_ok($$SELECT app.set_context('mut', 'ann@m.test')$$, '28000', NULL, 'and set_context refuses the suspended organization');
SELECT * FROM finish();
ROLLBACK;
