-- The foundation migration: schemas, roles and their boundaries.
BEGIN;
SELECT plan(17);

SELECT has_schema(s, format('schema %s exists', s))
  FROM unnest(ARRAY['core', 'app', 'audit', 'tenancy', 'orders', 'work', 'content']) AS s;
SELECT schema_owner_is(s, 'strata_owner', format('strata_owner owns schema %s', s))
  FROM unnest(ARRAY['core', 'app', 'audit']) AS s;

SELECT has_role(r, format('role %s exists', r))
  FROM unnest(ARRAY['strata_owner', 'strata_app', 'strata_readonly', 'strata_auditor']) AS r;

SELECT ok(
    NOT EXISTS (SELECT 1 FROM pg_roles
                 WHERE rolname IN ('strata_owner', 'strata_app', 'strata_readonly', 'strata_auditor')
                   AND (rolsuper OR rolbypassrls OR rolcanlogin)),
    'no Strata role can log in, is superuser or bypasses RLS');

SELECT is(
    (SELECT count(*)::int FROM generate_series(1, 50) AS g(i), LATERAL (SELECT core.uuid_v7() AS id) AS u
      WHERE substr(u.id::text, 15, 1) = '7'),
    50, 'core.uuid_v7() produces version-7 UUIDs');

SELECT ok(
    core.uuid_v7() < (SELECT core.uuid_v7() FROM pg_sleep(0.002)),
    'core.uuid_v7() values sort by creation time');
SELECT * FROM finish();
ROLLBACK;
