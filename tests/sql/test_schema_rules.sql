-- The schema rules of `strata verify --only schema`, as a pgTAP file a DBA can run on their
-- own database (`strata test`): RLS forced and complete on tenant tables, tenant keys and
-- indexes, security_invoker views, pinned search_path, grants, role matrix, comments.
BEGIN;
SELECT plan(3);
SELECT isnt_empty($$SELECT 1 FROM core.verify_schema() WHERE "check" = 'RLS forced'$$,
                  'there are tenant tables for the rules to check');
SELECT is_empty($$SELECT "check", object, message, fix FROM core.verify_schema() WHERE NOT ok$$,
                'every schema rule holds (failures are listed with their fix)');
SELECT is((SELECT count(DISTINCT "check") FROM core.verify_schema() WHERE ok)::int >= 10, true,
          'the rules cover RLS, keys, indexes, views, functions, grants, roles, ownership and comments');
SELECT * FROM finish();
ROLLBACK;
