-- Derived columns (enable_tracking's p_derived): an update that changes only them writes no
-- event, any other change does and records them, and the filter follows the table's columns.
BEGIN;
SELECT plan(27);

CREATE SCHEMA pgtap_derived AUTHORIZATION strata_owner;
SET LOCAL ROLE strata_owner;
CREATE DOMAIN pgtap_derived.counted AS integer NOT NULL;
CREATE DOMAIN pgtap_derived.counted_again AS pgtap_derived.counted;
CREATE DOMAIN pgtap_derived.checked AS integer CHECK (VALUE IS NOT NULL);
CREATE TABLE pgtap_derived.tb_gauge (
    pk_gauge bigint GENERATED ALWAYS AS IDENTITY,
    id uuid NOT NULL DEFAULT core.uuid_v7(),
    identifier text NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    note text,
    token text,
    hits integer NOT NULL DEFAULT 0,
    ratio double precision,
    seen_at timestamptz,
    "odd'name" integer,
    must_count pgtap_derived.counted NOT NULL DEFAULT 0,
    must_count_again pgtap_derived.counted_again NOT NULL DEFAULT 0,
    must_check pgtap_derived.checked NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, pk_gauge)
);
RESET ROLE;
CREATE TEMP VIEW gauge_events AS
SELECT * FROM audit.events WHERE source_table = 'pgtap_derived.tb_gauge';
CREATE FUNCTION pg_temp.last_changed() RETURNS text[] LANGUAGE sql AS $$
    SELECT changed_fields FROM gauge_events WHERE operation = 'update' ORDER BY pk_event DESC LIMIT 1
$$;

-- What enable_tracking refuses.
SELECT throws_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits', 'nope'])$$,
                 '42703', 'audit.enable_tracking: pgtap_derived.tb_gauge has no column nope',
                 'a derived column the table does not have is refused');
SELECT throws_ok(format($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits', %L])$$, c),
                 '22023', NULL, format('so is %s, whose domain refuses NULL (the rest of the row is compared with it NULL)', c))
  FROM unnest(ARRAY['must_count', 'must_count_again', 'must_check']) AS c;
SELECT throws_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_exclude => ARRAY['token'], p_derived => ARRAY['token'])$$,
                 '22023', 'audit.enable_tracking: token cannot be both excluded and derived',
                 'and a column both excluded (its change is recorded by name) and derived');
SELECT throws_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits', NULL])$$,
                 '22023', 'audit.enable_tracking: the derived columns must not include NULL', 'and a NULL name');

SELECT lives_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', 'gauge', ARRAY['token'],
                                               p_derived => ARRAY['seen_at', 'hits', 'ratio', 'hits', 'odd''name'])$$,
                'enable_tracking takes derived columns');
SELECT is((SELECT ARRAY[derived_columns::text, derived_current::text] FROM audit.tracked_tables()
            WHERE table_name = 'pgtap_derived.tb_gauge'::regclass),
          ARRAY['{hits,odd''name,ratio,seen_at}', 'true'], 'tracked_tables() lists them');
SELECT is((SELECT array_agg(tgname ORDER BY tgname) FROM pg_trigger
            WHERE tgrelid = 'pgtap_derived.tb_gauge'::regclass AND NOT tgisinternal),
          '{audit_ledger,audit_ledger_truncate,audit_ledger_update}'::name[],
          'updates get a trigger of their own');

SELECT set_config('strata.tenant_id', '00000000-0000-4000-8000-0000000000f2', true);
INSERT INTO pgtap_derived.tb_gauge (identifier, tenant_id, name, token)
VALUES ('G-1', '00000000-0000-4000-8000-0000000000f2', 'first', 's3cret');
-- Values that must not make equal rows differ: a third in binary floating point, and a time
-- with microseconds, written under another time zone, date style and float precision.
SET LOCAL TimeZone = 'Asia/Kolkata';
SET LOCAL DateStyle = 'SQL, DMY';
SET LOCAL extra_float_digits = -3;
UPDATE pgtap_derived.tb_gauge SET hits = hits + 1, ratio = 1 / 3.0::double precision,
                                  seen_at = '2026-11-23 10:11:12.345678+05:30';
UPDATE pgtap_derived.tb_gauge SET hits = hits + 1, ratio = ratio * 7, seen_at = seen_at + interval '1 microsecond',
                                  "odd'name" = 1;
RESET TimeZone;
RESET DateStyle;
RESET extra_float_digits;
SELECT is((SELECT array_agg(operation ORDER BY pk_event) FROM gauge_events), '{insert}'::text[],
          'updates of derived columns only write no event, whatever the session''s settings');

UPDATE pgtap_derived.tb_gauge SET name = 'renamed', hits = hits + 1;
SELECT is(pg_temp.last_changed(), '{hits,name}'::text[],
          'a change to another column writes one, naming the derived columns that changed with it');
SELECT is((SELECT (new_data ->> 'hits')::integer FROM gauge_events WHERE operation = 'update'), 3,
          'and records their values as they now are');
UPDATE pgtap_derived.tb_gauge SET note = 'set';
SELECT is(pg_temp.last_changed(), '{note}'::text[], 'a column going from NULL to a value is a change');
UPDATE pgtap_derived.tb_gauge SET note = NULL;
SELECT is(pg_temp.last_changed(), '{note}'::text[], 'and back to NULL');
UPDATE pgtap_derived.tb_gauge SET token = 'other';
SELECT is(pg_temp.last_changed(), '{token}'::text[], 'a change to an excluded column alone is still an event');

ALTER TABLE pgtap_derived.tb_gauge ADD COLUMN colour text;
UPDATE pgtap_derived.tb_gauge SET colour = 'red';
SELECT is(pg_temp.last_changed(), '{colour}'::text[], 'a column added after enable_tracking is compared too');
SELECT throws_ok($$ALTER TABLE pgtap_derived.tb_gauge DROP COLUMN hits$$, '2BP01', NULL,
                 'a derived column cannot be dropped while the table is tracked');

-- A rename leaves the mask naming a column that is gone: found, and mended by running it again.
ALTER TABLE pgtap_derived.tb_gauge RENAME COLUMN seen_at TO last_seen_at;
SELECT is((SELECT ARRAY[derived_columns::text, derived_current::text] FROM audit.tracked_tables()
            WHERE table_name = 'pgtap_derived.tb_gauge'::regclass),
          ARRAY['{hits,last_seen_at,odd''name,ratio}', 'false'], 'tracked_tables() sees a renamed derived column');
SELECT is((SELECT ARRAY[ok::text, fix] FROM core.verify_schema()
            WHERE "check" = 'ledger derived columns current' AND object = 'pgtap_derived.tb_gauge'),
          ARRAY['false', 'SELECT audit.enable_tracking(''pgtap_derived.tb_gauge'', ''gauge'', ''{token}'', ''tenant_id'', '
                         '''{hits,last_seen_at,odd''''name,ratio}'');'],
          'strata verify fails on it and prints the call that mends it');
SELECT lives_ok((SELECT fix FROM core.verify_schema()
                  WHERE "check" = 'ledger derived columns current' AND object = 'pgtap_derived.tb_gauge'),
                'which runs');
UPDATE pgtap_derived.tb_gauge SET last_seen_at = now();
SELECT is((SELECT count(*)::integer FROM gauge_events WHERE operation = 'update'), 5,
          'and the renamed column is derived again');

DELETE FROM pgtap_derived.tb_gauge;
SELECT is((SELECT array_agg(operation ORDER BY pk_event) FROM gauge_events),
          '{insert,update,update,update,update,update,delete}'::text[], 'inserts and deletes are captured as before');

-- Another list replaces the first; none, or NULL, removes the update trigger.
INSERT INTO pgtap_derived.tb_gauge (identifier, tenant_id, name)
VALUES ('G-2', '00000000-0000-4000-8000-0000000000f2', 'second');
SELECT audit.enable_tracking('pgtap_derived.tb_gauge', 'gauge', ARRAY['token'], p_derived => ARRAY['ratio']);
UPDATE pgtap_derived.tb_gauge SET hits = hits + 1;
SELECT is(pg_temp.last_changed(), '{hits}'::text[], 'a column no longer in the list is compared again');
SELECT lives_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', 'gauge', ARRAY['token'], p_derived => NULL)$$,
                'enable_tracking with no derived columns');
SELECT is((SELECT count(*)::integer FROM pg_trigger
            WHERE tgrelid = 'pgtap_derived.tb_gauge'::regclass AND tgname = 'audit_ledger_update'),
          0, 'removes the update trigger');
UPDATE pgtap_derived.tb_gauge SET ratio = 2;
SELECT is(pg_temp.last_changed(), '{ratio}'::text[], 'and every change is an event again');

SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits']);
SELECT audit.disable_tracking('pgtap_derived.tb_gauge');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'pgtap_derived.tb_gauge'::regclass AND NOT tgisinternal),
          0, 'disable_tracking removes all three triggers');

SELECT * FROM finish();
ROLLBACK;
