-- Derived columns (enable_tracking's p_derived): an update that changes only them writes no
-- event, any other change does and records them, and the filter follows the table's columns.
BEGIN;
SELECT plan(16);

CREATE SCHEMA pgtap_derived AUTHORIZATION strata_owner;
SET LOCAL ROLE strata_owner;
CREATE DOMAIN pgtap_derived.counted AS integer NOT NULL;
CREATE TABLE pgtap_derived.tb_gauge (
    pk_gauge bigint GENERATED ALWAYS AS IDENTITY,
    id uuid NOT NULL DEFAULT core.uuid_v7(),
    identifier text NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    token text,
    hits integer NOT NULL DEFAULT 0,
    ratio double precision,
    seen_at timestamptz,
    "odd'name" integer,
    must_count pgtap_derived.counted NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, pk_gauge)
);
RESET ROLE;
CREATE TEMP VIEW gauge_events AS
SELECT * FROM audit.events WHERE source_table = 'pgtap_derived.tb_gauge';

SELECT throws_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits', 'nope'])$$,
                 '42703', 'audit.enable_tracking: pgtap_derived.tb_gauge has no column nope',
                 'a derived column the table does not have is refused');
SELECT throws_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits', 'must_count'])$$,
                 '22023', 'audit.enable_tracking: derived column must_count of pgtap_derived.tb_gauge has a NOT NULL domain type',
                 'so is one whose domain does not allow NULL (the rest of the row is compared with it set to NULL)');
SELECT lives_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', 'gauge', ARRAY['token'],
                                               p_derived => ARRAY['seen_at', 'hits', 'ratio', 'hits', 'odd''name'])$$,
                'enable_tracking takes derived columns');
SELECT is((SELECT derived_columns FROM audit.tracked_tables() WHERE table_name = 'pgtap_derived.tb_gauge'::regclass),
          '{hits,odd''name,ratio,seen_at}'::text[], 'tracked_tables() lists them');
SELECT is((SELECT array_agg(tgname ORDER BY tgname) FROM pg_trigger
            WHERE tgrelid = 'pgtap_derived.tb_gauge'::regclass AND NOT tgisinternal),
          '{audit_ledger,audit_ledger_truncate,audit_ledger_update}'::name[],
          'updates get a trigger of their own');

SELECT set_config('strata.tenant_id', '00000000-0000-4000-8000-0000000000f2', true);
INSERT INTO pgtap_derived.tb_gauge (identifier, tenant_id, name, token)
VALUES ('G-1', '00000000-0000-4000-8000-0000000000f2', 'first', 's3cret');
-- Values that must survive the trip through jsonb exactly: a third in binary floating point,
-- and a time with microseconds, written under another time zone and date style.
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
SELECT is((SELECT changed_fields FROM gauge_events WHERE operation = 'update'), '{hits,name}'::text[],
          'a change to another column writes one, naming the derived columns that changed with it');
SELECT is((SELECT (new_data ->> 'hits')::integer FROM gauge_events WHERE operation = 'update'), 3,
          'and records their values as they now are');

UPDATE pgtap_derived.tb_gauge SET token = 'other';
SELECT is((SELECT changed_fields FROM gauge_events WHERE operation = 'update' ORDER BY pk_event DESC LIMIT 1),
          '{token}'::text[], 'a change to an excluded column alone is still an event');

ALTER TABLE pgtap_derived.tb_gauge ADD COLUMN colour text;
UPDATE pgtap_derived.tb_gauge SET colour = 'red';
SELECT is((SELECT changed_fields FROM gauge_events WHERE operation = 'update' ORDER BY pk_event DESC LIMIT 1),
          '{colour}'::text[], 'a column added after enable_tracking is compared too');
ALTER TABLE pgtap_derived.tb_gauge DROP COLUMN seen_at;
SELECT is((SELECT derived_columns FROM audit.tracked_tables() WHERE table_name = 'pgtap_derived.tb_gauge'::regclass),
          '{hits,odd''name,ratio}'::text[], 'a dropped derived column is no longer listed');

DELETE FROM pgtap_derived.tb_gauge;
SELECT is((SELECT array_agg(operation ORDER BY pk_event) FROM gauge_events),
          '{insert,update,update,update,delete}'::text[], 'inserts and deletes are captured as before');

SELECT lives_ok($$SELECT audit.enable_tracking('pgtap_derived.tb_gauge', 'gauge', ARRAY['token'])$$,
                'enable_tracking without derived columns');
SELECT is((SELECT count(*)::integer FROM pg_trigger
            WHERE tgrelid = 'pgtap_derived.tb_gauge'::regclass AND tgname = 'audit_ledger_update'),
          0, 'removes the update trigger');
INSERT INTO pgtap_derived.tb_gauge (identifier, tenant_id, name)
VALUES ('G-2', '00000000-0000-4000-8000-0000000000f2', 'second');
UPDATE pgtap_derived.tb_gauge SET hits = hits + 1;
SELECT is((SELECT changed_fields FROM gauge_events WHERE operation = 'update' ORDER BY pk_event DESC LIMIT 1),
          '{hits}'::text[], 'and every change is an event again');

SELECT audit.enable_tracking('pgtap_derived.tb_gauge', p_derived => ARRAY['hits']);
SELECT audit.disable_tracking('pgtap_derived.tb_gauge');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'pgtap_derived.tb_gauge'::regclass AND NOT tgisinternal),
          0, 'disable_tracking removes all three triggers');

SELECT * FROM finish();
ROLLBACK;
