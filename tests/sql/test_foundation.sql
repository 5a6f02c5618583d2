-- The foundation migration: schemas, roles and their boundaries.
BEGIN;
SELECT plan(21);

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
SELECT is(
    (SELECT ('x' || substr(replace(u::text, '-', ''), 1, 12))::bit(48)::bigint
       FROM core.uuid_v7('2020-01-01 00:00:00.123+00') AS u),
    1577836800123::bigint, 'core.uuid_v7(at) carries the milliseconds of at');
SELECT is(
    (SELECT array_agg(('x' || substr(replace(u::text, '-', ''), 1, 12))::bit(48)::bigint ORDER BY t)
       FROM unnest(ARRAY['2020-01-01 00:00:00.1239+00', '1999-12-31 23:59:59.9996+00']::timestamptz[]) AS t,
            LATERAL core.uuid_v7(t) AS u),
    ARRAY[946684799999, 1577836800123]::bigint[],
    'core.uuid_v7(at) carries the millisecond that has begun at at, never the next one (RFC 9562)');
SELECT is(
    (SELECT substr(u::text, 15, 1) || substr(u::text, 20, 1) ~ '^7[89ab]$' FROM core.uuid_v7('1999-12-31 23:59:59+00') AS u),
    true, 'core.uuid_v7(at) is a version-7, RFC 9562 variant UUID');
SELECT ok(
    core.uuid_v7('2024-05-01 10:00:00+00') < core.uuid_v7('2024-05-01 10:00:00.002+00')
    AND core.uuid_v7('2024-05-01 10:00:00.002+00') < core.uuid_v7(),
    'core.uuid_v7(at) values sort by at, before those of now');
SELECT * FROM finish();
ROLLBACK;
