-- The audit ledger inside one transaction: its tables and rules, capture by enable_tracking,
-- explicit events, the guard, what strata_app may not do, and why a transaction's own events
-- wait for the next block.
BEGIN;
SELECT plan(29);

SELECT has_table('audit', t, format('audit.%s exists', t))
  FROM unnest(ARRAY['events', 'blocks', 'block_tenants', 'signing_keys']) AS t;
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = t::regclass),
          format('%s has row level security enabled and forced', t))
  FROM unnest(ARRAY['audit.events', 'audit.block_tenants']) AS t;
SELECT is((SELECT array_agg(DISTINCT polcmd ORDER BY polcmd) FROM pg_policy WHERE polrelid = 'audit.events'::regclass),
          '{a,d,r,w}'::"char"[], 'audit.events has policies for SELECT, INSERT, UPDATE and DELETE');
SELECT ok(NOT has_function_privilege('strata_app', 'audit.log_event(text, text, uuid, text, jsonb, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('strata_auditor', 'audit.seal()', 'EXECUTE')
          AND has_function_privilege('strata_auditor', 'audit.verify(uuid)', 'EXECUTE'),
          'log_event is the owner''s, seal is not the auditor''s, verify is');

-- A tracked table of this test's own, owned like every Strata table.
CREATE SCHEMA pgtap_ledger AUTHORIZATION strata_owner;
SET LOCAL ROLE strata_owner;
CREATE TABLE pgtap_ledger.tb_widget (
    pk_widget bigint GENERATED ALWAYS AS IDENTITY,
    id uuid NOT NULL DEFAULT core.uuid_v7(),
    identifier text NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    token text,
    PRIMARY KEY (tenant_id, pk_widget)
);
RESET ROLE;
SELECT lives_ok($$SELECT audit.enable_tracking('pgtap_ledger.tb_widget', 'widget', ARRAY['token'])$$,
                'enable_tracking attaches the ledger');
SELECT lives_ok($$SELECT audit.enable_tracking('pgtap_ledger.tb_widget', 'widget', ARRAY['token'])$$,
                'and again: it is idempotent');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'pgtap_ledger.tb_widget'::regclass AND NOT tgisinternal),
          2, 'one row trigger and one truncate trigger');

SELECT set_config('strata.tenant_id', '00000000-0000-4000-8000-0000000000f1', true),
       set_config('strata.actor_id', '00000000-0000-4000-8000-0000000000a1', true);
INSERT INTO pgtap_ledger.tb_widget (identifier, tenant_id, name, token)
VALUES ('W-1', '00000000-0000-4000-8000-0000000000f1', 'first', 's3cret'),
       ('W-2', '00000000-0000-4000-8000-0000000000f1', 'second', 's3cret');
UPDATE pgtap_ledger.tb_widget SET name = 'first!' WHERE identifier = 'W-1';
UPDATE pgtap_ledger.tb_widget SET name = name WHERE identifier = 'W-2';
UPDATE pgtap_ledger.tb_widget SET token = 'other' WHERE identifier = 'W-2';
DELETE FROM pgtap_ledger.tb_widget WHERE identifier = 'W-1';

CREATE TEMP VIEW mine AS
SELECT * FROM audit.events WHERE source_table = 'pgtap_ledger.tb_widget' OR entity_type = 'pgtap';
SELECT is((SELECT array_agg(operation || ':' || identifier ORDER BY pk_event) FROM mine),
          '{insert:W-1,insert:W-2,update:W-1,update:W-2,delete:W-1}'::text[],
          'inserts, updates and the delete are captured; the update that changed nothing is not');
SELECT is((SELECT array_agg(tx_seq ORDER BY pk_event) FROM mine), '{1,2,3,4,5}'::integer[],
          'events are numbered within their transaction');
SELECT is((SELECT count(DISTINCT correlation_id)::integer FROM mine), 1,
          'one transaction without a correlation id gets one');
SELECT ok((SELECT bool_and(NOT (coalesce(old_data, '{}') ? 'token') AND NOT (coalesce(new_data, '{}') ? 'token')) FROM mine),
          'the excluded column never reaches the ledger');
SELECT is((SELECT changed_fields FROM mine WHERE operation = 'update' AND identifier = 'W-2'), '{token}'::text[],
          'but its change is recorded by name');

-- capture_change is called as an expression (not PERFORM): it answers with the event it wrote.
-- Keys of different lengths: jsonb stores "zz" before "aaa", changed_fields sorts them by name.
CREATE TEMP TABLE captured AS
SELECT audit.capture_change('UPDATE', '[0:4]={pgtap_direct,pgtap_ledger.direct,"","",""}'::text[],
                            '{"zz": 1, "aaa": 1}', '{"zz": 1, "aaa": 1}') AS unchanged,
       audit.capture_change('UPDATE', '[0:4]={pgtap_direct,pgtap_ledger.direct,"","",""}'::text[],
                            '{"zz": 1, "aaa": 1, "b": 1}', '{"zz": 2, "aaa": 2, "b": 1}') AS changed;
SELECT ok((SELECT unchanged IS NULL FROM captured)
          AND (SELECT count(*) FROM audit.events WHERE entity_type = 'pgtap_direct') = 1,
          'capture_change writes nothing for an update that changed nothing and returns NULL');
SELECT is((SELECT e.changed_fields FROM audit.events AS e JOIN captured AS c ON e.id = c.changed
            WHERE e.entity_type = 'pgtap_direct'), '{aaa,zz}'::text[],
          'and the id of the event it wrote otherwise, whose changed fields are sorted by name');
SELECT ok((SELECT bool_and(tenant_id = '00000000-0000-4000-8000-0000000000f1' AND actor_id = '00000000-0000-4000-8000-0000000000a1'
                           AND login_role = session_user AND encoding = 1) FROM mine),
          'tenant, actor and login role are recorded');

SELECT isnt(audit.log_event('noop', 'pgtap', core.uuid_v7(), 'P-1', NULL, '{"reason": "no_changes"}'), NULL,
            'log_event records a noop and returns its id');
SELECT is((SELECT metadata ->> 'reason' FROM mine WHERE operation = 'noop'), 'no_changes', 'with its reason');
SELECT ok((SELECT bool_and(audit.event_hash(e) = e.event_hash) FROM audit.events AS e
            WHERE e.pk_event IN (SELECT pk_event FROM mine)),
          'every event''s stored hash is the hash of its columns');

-- This transaction is not committed, so no block may hold its events, even after a seal.
SELECT lives_ok($$SELECT audit.seal()$$, 'audit.seal() runs inside a writing transaction');
SELECT ok((SELECT bool_and(audit.event_block(txid) IS NULL) FROM mine), 'but does not seal that transaction''s own events');
SELECT cmp_ok((SELECT events FROM audit.unsealed()), '>=', 6::bigint, 'they are counted as unsealed');
SELECT is((SELECT ok FROM audit.verify()), true, 'the ledger verifies');

SELECT throws_ok($$UPDATE audit.events SET metadata = '{}' WHERE entity_type = 'pgtap'$$, '2F004', NULL,
                 'the ledger is append-only without the maintenance switch');
SET LOCAL strata.audit_maintenance = 'on';
UPDATE audit.events SET metadata = '{"reason": "forged"}' WHERE entity_type = 'pgtap';
SELECT matches((SELECT problem FROM audit.verify()), '^unsealed event [0-9]+ was altered',
               'a changed unsealed event is named');
RESET strata.audit_maintenance;

SET LOCAL ROLE strata_test_app;
SELECT throws_ok($$SELECT count(*) FROM audit.events$$, '42501', NULL, 'strata_app cannot read the ledger');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
