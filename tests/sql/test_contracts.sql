-- Input contracts: app.describe returns exactly what the validator enforces.
BEGIN;
SELECT plan(19);

SELECT is(app.describe('create_user') ->> 'function', 'app.create_user', 'describe names the function');
SELECT is(app.describe('app.create_user'), app.describe('create_user'), 'describe accepts the qualified name');
SELECT is((SELECT array_agg(f ->> 'name' ORDER BY f ->> 'name') FROM jsonb_array_elements(app.describe('create_user') -> 'fields') AS f),
          '{email,name,preferences,role}'::text[], 'describe lists create_user''s fields');
SELECT is((SELECT array_agg(f ->> 'name' ORDER BY f ->> 'name') FROM jsonb_array_elements(app.describe('create_user') -> 'fields') AS f
            WHERE (f ->> 'required')::boolean), '{email,name}'::text[], 'describe marks the required fields');
SELECT throws_ok($$SELECT app.describe('drop_database')$$, '42883', NULL, 'describe of an unknown function raises 42883');

-- Every app mutation has a contract, and every contract field names a known type.
SELECT is_empty($$
    SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
     WHERE n.nspname = 'app' AND p.prorettype = 'app.mutation_result'::regtype
       AND to_regprocedure(format('core.contract__%s()', p.proname)) IS NULL$$,
    'every app function returning mutation_result declares a contract');

-- The validator, field by field, through the contract itself.
SELECT is(core.validate_input(app.describe('create_user'), '{"email": " A@B.co ", "name": "x"}') -> 'value',
          '{"email": "a@b.co", "name": "x", "role": "member", "preferences": {}}'::jsonb, 'sanitized value with defaults');
SELECT is(core.validate_input('{"fields": [{"name": "n", "type": "integer"}]}', '{"n": 1.5}') #>> '{errors,0,code}',
          'invalid_type', 'integer refuses fractions');
SELECT is(core.validate_input('{"fields": [{"name": "n", "type": "integer", "max": 9}]}', '{"n": 10}') #>> '{errors,0,code}',
          'out_of_range', 'integer limits');
SELECT is(core.validate_input('{"fields": [{"name": "p", "type": "decimal", "scale": 2}]}', '{"p": 1.005}') #>> '{errors,0,code}',
          'invalid_format', 'decimal scale');
SELECT is(core.validate_input('{"fields": [{"name": "s", "type": "enum", "values": ["a", "b"]}]}', '{"s": "c"}') #>> '{errors,0,code}',
          'invalid_value', 'enum values');
SELECT is(core.validate_input('{"fields": [{"name": "t", "type": "timestamp"}]}', '{"t": "2026-01-02T03:04:05+02:00"}') #>> '{value,t}',
          '2026-01-02T01:04:05.000000Z', 'timestamps are normalized to UTC');
SELECT is(core.validate_input('{"fields": [{"name": "items", "type": "array", "min_items": 1, "items": {"type": "object", "fields": [{"name": "q", "type": "integer", "required": true}]}}]}',
                              '{"items": [{"q": 1}, {"x": 2}]}') -> 'errors',
          '[{"code": "required", "field": "items[1].q", "message": "items[1].q is required"}, {"code": "unknown_field", "field": "items[1].x", "message": "items[1].x is not a field of this input"}]'::jsonb,
          'nested items are validated with their path');
SELECT is(core.validate_input('{"fields": [{"name": "a", "type": "integer", "required": true}]}', '{"zeta": 1, "beta": 2, "a": "x"}') -> 'errors',
          '[{"code": "invalid_type", "field": "a", "message": "a must be a number"}, {"code": "unknown_field", "field": "beta", "message": "beta is not a field of this input"}, {"code": "unknown_field", "field": "zeta", "message": "zeta is not a field of this input"}]'::jsonb,
          'field errors in contract order, then every unknown key in name order');
SELECT is((SELECT array[jsonb_array_length(v -> 'errors')::text, v #>> '{errors,0,field}', v #>> '{errors,19,field}',
                        v #>> '{errors,20,field}', v #>> '{errors,20,message}']
             FROM core.validate_input('{"fields": [{"name": "a", "type": "integer"}]}',
                                      (SELECT jsonb_object_agg(format('k%s', lpad(i::text, 5, '0')), i) FROM generate_series(1, 50000) AS i)) AS v),
          '{21,k00001,k00020,input,"input has 49980 more keys that are not fields of this input"}'::text[],
          'the first 20 unknown keys by name, then one error counting the rest (50,000 keys answer at once)');
SELECT is((SELECT array[jsonb_array_length(v -> 'errors')::text, v #>> '{errors,20,message}']
             FROM core.validate_input('{"fields": [{"name": "items", "type": "array", "items": {"type": "object", "fields": [{"name": "q", "type": "integer"}]}}]}',
                                      jsonb_build_object('items', jsonb_build_array(
                                          (SELECT jsonb_object_agg(format('x%s', i), i) FROM generate_series(1, 30) AS i)))) AS v),
          '{21,"items[0] has 10 more keys that are not fields of this input"}'::text[],
          'in a nested object the count names the object''s path');
SELECT is(core.validate_input('{"fields": [{"name": "items", "type": "array", "items": {"type": "integer"}}]}', '{"items": []}'),
          '{"value": {"items": []}, "errors": []}'::jsonb, 'an empty array is valid when no minimum is set');
SELECT is(core.validate_input('{"fields": [{"name": "items", "type": "array", "items": {"type": "integer", "max": 5}}]}', '{"items": [1, 9, 2, 7]}') -> 'errors',
          '[{"code": "out_of_range", "field": "items[1]", "message": "items[1] must be between -2147483648 and 5"}, {"code": "out_of_range", "field": "items[3]", "message": "items[3] must be between -2147483648 and 5"}]'::jsonb,
          'each bad array element is named by its index');
SELECT is(core.validate_input('{"fields": []}', jsonb_build_object('x', repeat('y', 1100000))) #>> '{errors,0,code}',
          'too_long', 'inputs over 1 MiB are refused whole');
SELECT * FROM finish();
ROLLBACK;
