-- The bookkeeping every tenant table gets from core.tg_tenant_row__stamp, whoever writes:
-- authors on insert, version + 1 and who and when on a real change, nothing on a no-op
-- update (and then no ledger event either), tenant_id and id immutable.
BEGIN;
SELECT plan(14);

SELECT is((core.create_tenant('Rows Inc', 'rows', 'rae@r.test', 'Rae Rows')).status, 'created', 'a tenant to write in');
SELECT is((core.create_tenant('Uuid Co', '01a205f2-0000-7000-8000-000000000001', 'u@u.test')).status, 'validation:invalid_format',
          'a slug shaped like a UUID is refused: set_context would take it for an id');
SELECT is((core.create_tenant('Uuid Co', '01a205f2-0000-7000-8000-000000000001-eu', 'u@u.test')).status, 'created',
          'a slug that only starts like a UUID is fine');
CREATE TEMP TABLE fixture ON COMMIT DROP AS
SELECT u.tenant_id AS tenant, u.id AS admin FROM tenancy.tb_user AS u WHERE u.email = 'rae@r.test';
SELECT set_config('strata.tenant_id', tenant::text, true), set_config('strata.actor_id', admin::text, true) FROM fixture;
INSERT INTO tenancy.tb_user (tenant_id, identifier, email, name)
SELECT tenant, 'USR-ROWS', 'sam@r.test', 'Sam' FROM fixture;

SELECT is((SELECT row(version, created_by, updated_by)::text FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'),
          (SELECT row(1, admin, admin)::text FROM fixture),
          'insert: version 1, created and updated by the actor in context');

-- Back-date the row as a data repair would (no real change: the version stays), so that the
-- next stamp is visibly now().
UPDATE tenancy.tb_user SET updated_at = now() - interval '1 day' WHERE identifier = 'USR-ROWS';
CREATE TEMP TABLE before ON COMMIT DROP AS
SELECT version, updated_at, (SELECT count(*) FROM audit.events WHERE entity_id = u.id) AS events
  FROM tenancy.tb_user AS u WHERE identifier = 'USR-ROWS';

UPDATE tenancy.tb_user SET name = 'Sam', preferences = '{}' WHERE identifier = 'USR-ROWS';
SELECT is((SELECT version FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'), (SELECT version FROM before),
          'an update that writes the same values keeps the version');
SELECT is((SELECT count(*) FROM audit.events AS e JOIN tenancy.tb_user AS u ON e.entity_id = u.id WHERE u.identifier = 'USR-ROWS'),
          (SELECT events FROM before), 'and writes no ledger event');
SELECT is((SELECT updated_at FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'), now() - interval '1 day',
          'and keeps the time the row last changed (here back-dated by the writer)');

UPDATE tenancy.tb_user SET version = 99 WHERE identifier = 'USR-ROWS';
SELECT is((SELECT version FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'), (SELECT version FROM before),
          'writing only the version is no change: the version stays');

SELECT set_config('strata.actor_id', core.uuid_v7()::text, true);
UPDATE tenancy.tb_user SET name = 'Samuel', version = 99 WHERE identifier = 'USR-ROWS';
SELECT is((SELECT version FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'), (SELECT version + 1 FROM before),
          'a real change bumps the version by one, whatever version the writer set');
SELECT is((SELECT updated_by FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'),
          current_setting('strata.actor_id')::uuid, 'and records the actor in context as its author');
SELECT is((SELECT updated_at FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'), now(), 'and when');

UPDATE tenancy.tb_user SET preferences = '{"theme": "dark"}' WHERE identifier = 'USR-ROWS';
SELECT is((SELECT version FROM tenancy.tb_user WHERE identifier = 'USR-ROWS'), (SELECT version + 2 FROM before),
          'a change in a jsonb column is a real change');

SELECT throws_ok($$UPDATE tenancy.tb_user SET id = core.uuid_v7() WHERE identifier = 'USR-ROWS'$$,
                 '23000', 'tenancy.tb_user: tenant_id and id never change', 'the id never changes');

-- A tenant table in the app schema would take the app roles' USAGE on app away.
CREATE TABLE app.tb_misplaced (tenant_id uuid NOT NULL, pk_misplaced bigint PRIMARY KEY);
SELECT throws_ok($$SELECT core.setup_tenant_table('app.tb_misplaced')$$, '22023',
                 'app.tb_misplaced is in the app schema; tenant tables belong in a bounded context''s schema (tenancy, orders, …)',
                 'setup_tenant_table refuses a table in the app schema');
SELECT * FROM finish();
ROLLBACK;
