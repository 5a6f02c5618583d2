-- requires: 0003_tenancy

/* Input contracts. Every app function declares its input once, as the result of an
   IMMUTABLE function core.contract__<name>() placed next to it; core.validate_input() enforces
   that declaration (core.compile_contract below makes a faster check of it for each app
   function) and app.describe('<name>') returns it, so the documentation and the validator
   cannot disagree.

   A contract is {"description", "permission", "fields": [field, ...]}; a field is
   {"name", "type", "required"?, "default"?, limits...} with type one of:
     string    trimmed; min_length (1 if required), max_length (default 1000), pattern,
               case ("upper" or "lower")
     email     trimmed and lower-cased; at most 254 characters
     integer   a JSON number without fraction (2.0 counts, cleaned to 2); min, max (default:
               the int4 range)
     decimal   a JSON number; min, max, scale (most digits after the point)
     boolean, uuid
     reference an entity's id or identifier: a non-empty string of at most 200 characters
     enum      one of "values"
     object    a JSON object of at most max_bytes (default 16384) bytes
     array     min_items, max_items (default 100); "items" is a nested contract for objects
     timestamp an ISO 8601 time with a UTC offset
   Keys not declared are refused (unknown_field); JSON null counts as absent. */

CREATE FUNCTION core.validate_value(p_field jsonb, p_value jsonb, p_path text)
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE plpgsql
AS $$
-- Returns {"value": sanitized} or {"error": {field, code, message}}.
DECLARE
    v_type  text := p_field ->> 'type';
    v_kind  text := pg_catalog.jsonb_typeof(p_value);
    v_text  text;
    v_num   numeric;
    v_max   integer;
    v_min   integer;
    v_items jsonb;
    v_check jsonb;
    v_out   jsonb := '[]';
    v_errors jsonb := '[]';
BEGIN
    IF v_type IN ('string', 'email', 'reference', 'enum', 'uuid', 'timestamp') THEN
        IF v_kind <> 'string' THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_type', p_path || ' must be a string'));
        END IF;
        v_text := p_value #>> '{}';
        IF v_text ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format', p_path || ' contains control characters'));
        END IF;
        IF coalesce((p_field ->> 'trim')::boolean, true) THEN
            v_text := pg_catalog.btrim(v_text, E' \t\r\n');
        END IF;
        IF p_field ->> 'case' = 'upper' THEN
            v_text := pg_catalog.upper(v_text);
        ELSIF p_field ->> 'case' = 'lower' THEN
            v_text := pg_catalog.lower(v_text);
        END IF;
        v_max := coalesce((p_field ->> 'max_length')::integer,
                          CASE v_type WHEN 'email' THEN 254 WHEN 'reference' THEN 200 ELSE 1000 END);
        v_min := coalesce((p_field ->> 'min_length')::integer,
                          CASE WHEN coalesce((p_field ->> 'required')::boolean, false) OR v_type <> 'string' THEN 1 ELSE 0 END);
        IF pg_catalog.length(v_text) > v_max THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'too_long',
                   pg_catalog.format('%s must be at most %s characters', p_path, v_max)));
        END IF;
        IF pg_catalog.length(v_text) < v_min THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path,
                   CASE WHEN v_text = '' THEN 'required' ELSE 'too_short' END,
                   CASE WHEN v_text = '' THEN p_path || ' must not be empty'
                        ELSE pg_catalog.format('%s must be at least %s characters', p_path, v_min) END));
        END IF;
        IF v_type = 'email' THEN
            v_text := pg_catalog.lower(v_text);
            IF v_text !~ '^[^@\s]+@[^@\s]+\.[^@\s.]+$' THEN
                RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format', p_path || ' must be an email address'));
            END IF;
        ELSIF v_type = 'uuid' AND NOT core.is_uuid(v_text) THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format', p_path || ' must be a UUID'));
        ELSIF v_type = 'enum' AND NOT (p_field -> 'values') ? v_text THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_value',
                   pg_catalog.format('%s must be one of %s', p_path,
                       (SELECT pg_catalog.string_agg(v, ', ') FROM pg_catalog.jsonb_array_elements_text(p_field -> 'values') AS v))));
        ELSIF v_type = 'timestamp' THEN
            IF v_text !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$' THEN
                RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format',
                       p_path || ' must be an ISO 8601 time with a UTC offset'));
            END IF;
            BEGIN
                v_text := pg_catalog.to_char(v_text::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
            EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
                RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format', p_path || ' is not a valid time'));
            END;
        ELSIF p_field ? 'pattern' AND v_text !~ (p_field ->> 'pattern') THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format',
                   coalesce(p_field ->> 'pattern_message', p_path || ' has the wrong format')));
        END IF;
        RETURN pg_catalog.jsonb_build_object('value', pg_catalog.to_jsonb(v_text));
    ELSIF v_type IN ('integer', 'decimal') THEN
        IF v_kind <> 'number' THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_type', p_path || ' must be a number'));
        END IF;
        v_num := (p_value #>> '{}')::numeric;
        IF v_type = 'integer' AND v_num <> pg_catalog.trunc(v_num) THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_type', p_path || ' must be a whole number'));
        END IF;
        IF v_type = 'decimal' AND p_field ? 'scale' AND pg_catalog.scale(v_num) > (p_field ->> 'scale')::integer
           AND v_num <> pg_catalog.round(v_num, (p_field ->> 'scale')::integer) THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_format',
                   pg_catalog.format('%s must have at most %s decimal places', p_path, p_field ->> 'scale')));
        END IF;
        IF v_num < coalesce((p_field ->> 'min')::numeric, CASE v_type WHEN 'integer' THEN -2147483648 END)
           OR v_num > coalesce((p_field ->> 'max')::numeric, CASE v_type WHEN 'integer' THEN 2147483647 ELSE 1e15 END) THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'out_of_range',
                   pg_catalog.format('%s must be between %s and %s', p_path,
                       coalesce(p_field ->> 'min', CASE v_type WHEN 'integer' THEN '-2147483648' ELSE '-infinity' END),
                       coalesce(p_field ->> 'max', CASE v_type WHEN 'integer' THEN '2147483647' ELSE '1e15' END))));
        END IF;
        -- A whole number written with a fraction (2.0, as some JSON writers put it) is cleaned
        -- to 2, so the code behind the contract can cast it to integer.
        RETURN pg_catalog.jsonb_build_object('value', CASE WHEN v_type = 'integer' THEN pg_catalog.to_jsonb(pg_catalog.trunc(v_num))
                                                            ELSE p_value END);
    ELSIF v_type = 'boolean' THEN
        IF v_kind <> 'boolean' THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_type', p_path || ' must be true or false'));
        END IF;
        RETURN pg_catalog.jsonb_build_object('value', p_value);
    ELSIF v_type = 'object' THEN
        IF v_kind <> 'object' THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_type', p_path || ' must be an object'));
        END IF;
        IF pg_catalog.octet_length(p_value::text) > coalesce((p_field ->> 'max_bytes')::integer, 16384) THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'too_long',
                   pg_catalog.format('%s must be at most %s bytes', p_path, coalesce((p_field ->> 'max_bytes')::integer, 16384))));
        END IF;
        IF p_field ? 'fields' THEN
            v_check := core.validate_input(p_field, p_value, p_path || '.');
            IF v_check -> 'errors' <> '[]' THEN
                RETURN pg_catalog.jsonb_build_object('errors', v_check -> 'errors');
            END IF;
            RETURN pg_catalog.jsonb_build_object('value', v_check -> 'value');
        END IF;
        RETURN pg_catalog.jsonb_build_object('value', p_value);
    ELSIF v_type = 'array' THEN
        IF v_kind <> 'array' THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'invalid_type', p_path || ' must be an array'));
        END IF;
        v_max := coalesce((p_field ->> 'max_items')::integer, 100);
        v_min := coalesce((p_field ->> 'min_items')::integer, 0);
        IF pg_catalog.jsonb_array_length(p_value) > v_max THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, 'too_long',
                   pg_catalog.format('%s must have at most %s items', p_path, v_max)));
        END IF;
        IF pg_catalog.jsonb_array_length(p_value) < v_min THEN
            RETURN pg_catalog.jsonb_build_object('error', core.field_error(p_path, CASE WHEN v_min = 1 THEN 'required' ELSE 'too_short' END,
                   pg_catalog.format('%s must have at least %s item(s)', p_path, v_min)));
        END IF;
        v_items := p_field -> 'items';
        IF v_items IS NULL THEN
            RETURN pg_catalog.jsonb_build_object('value', p_value);
        END IF;
        FOR v_index IN 0 .. pg_catalog.jsonb_array_length(p_value) - 1 LOOP
            v_check := core.validate_value(v_items, p_value -> v_index, p_path || '[' || v_index || ']');
            IF v_check ? 'error' THEN
                v_errors := v_errors || pg_catalog.jsonb_build_array(v_check -> 'error');
            ELSIF v_check ? 'errors' THEN
                v_errors := v_errors || (v_check -> 'errors');
            ELSE
                v_out := v_out || pg_catalog.jsonb_build_array(v_check -> 'value');
            END IF;
        END LOOP;
        IF v_errors <> '[]' THEN
            RETURN pg_catalog.jsonb_build_object('errors', v_errors);
        END IF;
        RETURN pg_catalog.jsonb_build_object('value', v_out);
    END IF;
    RAISE EXCEPTION 'contract field % has unknown type %', p_path, v_type USING ERRCODE = 'invalid_parameter_value';
END
$$;
COMMENT ON FUNCTION core.validate_value(jsonb, jsonb, text) IS
    'Checks and sanitizes one value against one contract field: {"value": …} or {"error": …} / {"errors": […]}.';

CREATE FUNCTION core.validate_input(p_contract jsonb, p_input jsonb, p_prefix text DEFAULT '')
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE plpgsql
AS $$
-- Returns {"value": sanitized object with defaults, "errors": [...]}; errors in contract order.
DECLARE
    v_fields jsonb := p_contract -> 'fields';
    v_field  jsonb;
    v_name   text;
    v_known  text[] := '{}';
    v_path   text;
    v_check  jsonb;
    v_value  jsonb := '{}';
    v_errors jsonb := '[]';
    v_key    text;
    v_more   bigint;
BEGIN
    IF p_input IS NULL OR pg_catalog.jsonb_typeof(p_input) <> 'object' THEN
        RETURN pg_catalog.jsonb_build_object('value', NULL, 'errors', pg_catalog.jsonb_build_array(
            core.field_error(coalesce(NULLIF(pg_catalog.rtrim(p_prefix, '.'), ''), 'input'), 'invalid_input',
                             coalesce(NULLIF(pg_catalog.rtrim(p_prefix, '.'), ''), 'input') || ' must be a JSON object')));
    END IF;
    IF p_prefix = '' AND pg_catalog.octet_length(p_input::text) > 1048576 THEN
        RETURN pg_catalog.jsonb_build_object('value', NULL, 'errors', pg_catalog.jsonb_build_array(
            core.field_error('input', 'too_long', 'input must be at most 1 MiB')));
    END IF;
    -- Indexed loops and a key-set difference rather than queries: every app call validates,
    -- and a query costs an executor start in every transaction.
    FOR v_index IN 0 .. coalesce(pg_catalog.jsonb_array_length(v_fields), 0) - 1 LOOP
        v_field := v_fields -> v_index;
        v_name := v_field ->> 'name';
        v_known := v_known || v_name;
        v_path := p_prefix || v_name;
        IF NOT p_input ? v_name OR pg_catalog.jsonb_typeof(p_input -> v_name) = 'null' THEN
            IF coalesce((v_field ->> 'required')::boolean, false) THEN
                v_errors := v_errors || pg_catalog.jsonb_build_array(core.field_error(v_path, 'required', v_path || ' is required'));
            ELSIF v_field ? 'default' THEN
                v_value := v_value || pg_catalog.jsonb_build_object(v_name, v_field -> 'default');
            END IF;
            CONTINUE;
        END IF;
        v_check := core.validate_value(v_field, p_input -> v_name, v_path);
        IF v_check ? 'error' THEN
            v_errors := v_errors || pg_catalog.jsonb_build_array(v_check -> 'error');
        ELSIF v_check ? 'errors' THEN
            v_errors := v_errors || (v_check -> 'errors');
        ELSE
            v_value := v_value || pg_catalog.jsonb_build_object(v_name, v_check -> 'value');
        END IF;
    END LOOP;
    p_input := p_input - v_known;
    IF p_input = '{}' THEN
        RETURN pg_catalog.jsonb_build_object('value', v_value, 'errors', v_errors);
    END IF;
    -- The first 20 unknown keys by name, then one error counting the rest: 1 MiB holds about
    -- 100,000 keys, and an error each would cost the server time and the client a huge answer.
    FOR v_key IN SELECT k FROM pg_catalog.jsonb_object_keys(p_input) AS k ORDER BY k LIMIT 20 LOOP
        v_errors := v_errors || pg_catalog.jsonb_build_array(core.field_error(p_prefix || v_key, 'unknown_field',
                        pg_catalog.format('%s is not a field of this input', p_prefix || pg_catalog.left(v_key, 100))));
    END LOOP;
    v_more := (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(p_input)) - 20;
    IF v_more > 0 THEN
        v_path := coalesce(NULLIF(pg_catalog.rtrim(p_prefix, '.'), ''), 'input');
        v_errors := v_errors || pg_catalog.jsonb_build_array(core.field_error(v_path, 'unknown_field',
                        pg_catalog.format('%s has %s more keys that are not fields of this input', v_path, v_more)));
    END IF;
    RETURN pg_catalog.jsonb_build_object('value', v_value, 'errors', v_errors);
END
$$;
COMMENT ON FUNCTION core.validate_input(jsonb, jsonb, text) IS
    'Validates and sanitizes a JSON input against a contract: {"value": cleaned input with defaults, "errors": [{field, code, message}]}.';

CREATE FUNCTION app.describe(function_name text)
    RETURNS jsonb
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_name     text := pg_catalog.regexp_replace(pg_catalog.lower(pg_catalog.btrim(describe.function_name)), '^app\.', '');
    v_contract jsonb;
BEGIN
    IF v_name !~ '^[a-z_][a-z0-9_]{0,50}$'
       OR pg_catalog.to_regprocedure(pg_catalog.format('core.contract__%s()', v_name)) IS NULL THEN
        RAISE EXCEPTION 'app.% has no input contract', coalesce(v_name, '(null)')
              USING ERRCODE = 'undefined_function',
                    HINT = 'SELECT * FROM core.catalog_objects() WHERE schema_name = ''app'' lists the API.';
    END IF;
    EXECUTE pg_catalog.format('SELECT core.contract__%s()', v_name) INTO v_contract;
    RETURN pg_catalog.jsonb_build_object('function', 'app.' || v_name) || v_contract;
END
$$;
COMMENT ON FUNCTION app.describe(text) IS
    'The input contract of an app function (fields, types, required, limits): the same declaration its validator enforces.';
GRANT EXECUTE ON FUNCTION app.describe(text) TO strata_app, strata_readonly;

CREATE TYPE core.prepared_input AS (
    refusal app.mutation_result,
    value   jsonb
);
COMMENT ON TYPE core.prepared_input IS 'An app mutation''s checked input: the sanitized value, or the refusal to return instead.';

CREATE FUNCTION core.contract_field(p_contract jsonb, p_name text)
    RETURNS jsonb
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    -- For a rule that must agree with a contract's limit, so the limit is written once.
    SELECT f.field FROM pg_catalog.jsonb_array_elements(p_contract -> 'fields') AS f (field) WHERE f.field ->> 'name' = p_name
$$;
COMMENT ON FUNCTION core.contract_field(jsonb, text) IS 'One field of an input contract by name (NULL when it has none).';

CREATE FUNCTION core.prepare_input(p_contract jsonb, p_input jsonb, p_entity text)
    RETURNS core.prepared_input
    STABLE
    LANGUAGE plpgsql
AS $$
-- The first step of every app mutation: a tenant and an actor must be in context, and the
-- input must satisfy the function's contract. Returns the sanitized input, or the refusal.
DECLARE
    v_check jsonb;
BEGIN
    IF core.current_tenant_id() IS NULL OR core.current_actor_id() IS NULL THEN
        RETURN ROW(core.result_refused('forbidden:context',
                       'No tenant and actor in context: call app.set_context(tenant, actor) first.', p_entity),
                   NULL)::core.prepared_input;
    END IF;
    v_check := core.validate_input(p_contract, p_input);
    IF v_check -> 'errors' <> '[]' THEN
        RETURN ROW(core.result_invalid(v_check -> 'errors', p_entity), NULL)::core.prepared_input;
    END IF;
    RETURN ROW(NULL, v_check -> 'value')::core.prepared_input;
END
$$;
COMMENT ON FUNCTION core.prepare_input(jsonb, jsonb, text) IS
    'Context and contract check of an app mutation''s input: the sanitized value, or the forbidden:context / validation:* refusal.';

/* Compiled contracts. core.validate_input reads a contract field by field, and in PL/pgSQL
   every expression it evaluates is prepared again in each new transaction: about 60 µs for
   cancel_order's three fields and 135 µs for create_order's input, each call in a transaction
   of its own. core.compile_contract('<name>') turns core.contract__<name>() into
   core.prepare__<name>(input, entity): straight-line checks of that contract's fields, which
   accept a valid input and return it cleaned exactly as core.prepare_input would. Anything
   else (no context, a wrong field, an unknown key) is handed to core.prepare_input, so
   refusals are worded in one place only. The generated code is only
   ever a faster "yes": tests compare both on every contract over valid and invalid inputs. */

CREATE FUNCTION core.contract_absent_code(p_source text, p_name text)
    RETURNS text
    IMMUTABLE
    LANGUAGE sql
AS $$
    -- JSON null counts as absent, as in core.validate_input.
    SELECT pg_catalog.format('coalesce(pg_catalog.jsonb_typeof(%s -> %L), ''null'') = ''null''', p_source, p_name)
$$;
COMMENT ON FUNCTION core.contract_absent_code(text, text) IS
    'Internal to core.compile_contract: the SQL that is true when a field is absent (or JSON null) from the jsonb object p_source.';

CREATE FUNCTION core.contract_value_code(p_field jsonb, p_source text, p_present text)
    RETURNS text
    IMMUTABLE
    LANGUAGE sql
AS $$
    -- The jsonb fragment a field contributes: its cleaned value p_present (SQL) when given;
    -- when absent and optional, its default or nothing.
    SELECT CASE WHEN coalesce((p_field ->> 'required')::boolean, false)
                THEN pg_catalog.format('pg_catalog.jsonb_build_object(%L, %s)', p_field ->> 'name', p_present)
                ELSE pg_catalog.format('CASE WHEN %s THEN %s ELSE pg_catalog.jsonb_build_object(%L, %s) END',
                         core.contract_absent_code(p_source, p_field ->> 'name'),
                         CASE WHEN p_field ? 'default'
                              THEN pg_catalog.format('pg_catalog.jsonb_build_object(%L, %L::jsonb)',
                                                     p_field ->> 'name', p_field -> 'default')
                              ELSE '''{}''::jsonb' END,
                         p_field ->> 'name', p_present) END
$$;
COMMENT ON FUNCTION core.contract_value_code(jsonb, text, text) IS
    'Internal to core.compile_contract: the SQL of the jsonb fragment one field contributes, with its default when absent.';

CREATE FUNCTION core.contract_field_code(p_field jsonb, p_source text, OUT ok text, OUT value text)
    IMMUTABLE
    LANGUAGE plpgsql
AS $$
-- The SQL of one field read from the jsonb object p_source (an expression): ok, true when the
-- field is valid or allowed to be absent, and value, the jsonb object fragment it contributes.
-- Both NULL for a field this compiler leaves to core.validate_value (timestamps, objects with
-- fields, arrays with items).
DECLARE
    v_name     text := p_field ->> 'name';
    v_type     text := p_field ->> 'type';
    v_required boolean := coalesce((p_field ->> 'required')::boolean, false);
    v_json     text := pg_catalog.format('(%s -> %L)', p_source, v_name);
    v_text     text := pg_catalog.format('(%s ->> %L)', p_source, v_name);
    v_number   text := pg_catalog.format('(%s ->> %L)::numeric', p_source, v_name);
    v_absent   text := core.contract_absent_code(p_source, v_name);
    v_clean    text;
    v_checks   text[];
    v_kind     text;
    v_present  text;
BEGIN
    IF v_type IN ('string', 'email', 'reference', 'enum', 'uuid') THEN
        v_kind := 'string';
        v_clean := CASE WHEN coalesce((p_field ->> 'trim')::boolean, true)
                        THEN pg_catalog.format('pg_catalog.btrim(%s, E'' \t\r\n'')', v_text) ELSE v_text END;
        IF p_field ->> 'case' IN ('upper', 'lower') THEN
            v_clean := pg_catalog.format('pg_catalog.%s(%s)', p_field ->> 'case', v_clean);
        END IF;
        v_checks := ARRAY[
            pg_catalog.format('%s !~ %L', v_text, '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]'),
            pg_catalog.format('pg_catalog.length(%s) BETWEEN %s AND %s', v_clean,
                coalesce((p_field ->> 'min_length')::integer, CASE WHEN v_required OR v_type <> 'string' THEN 1 ELSE 0 END),
                coalesce((p_field ->> 'max_length')::integer,
                         CASE v_type WHEN 'email' THEN 254 WHEN 'reference' THEN 200 ELSE 1000 END))];
        IF v_type = 'email' THEN
            v_clean := pg_catalog.format('pg_catalog.lower(%s)', v_clean);
            v_checks := v_checks || pg_catalog.format('%s ~ %L', v_clean, '^[^@\s]+@[^@\s]+\.[^@\s.]+$');
        ELSIF v_type = 'uuid' THEN
            v_checks := v_checks || pg_catalog.format('core.is_uuid(%s)', v_clean);
        ELSIF v_type = 'enum' THEN
            v_checks := v_checks || pg_catalog.format('%L::jsonb ? %s', p_field -> 'values', v_clean);
        END IF;
        -- As in validate_value, whose ELSIF chain reaches the pattern for every type but email.
        IF v_type <> 'email' AND p_field ? 'pattern' THEN
            v_checks := v_checks || pg_catalog.format('%s ~ %L', v_clean, p_field ->> 'pattern');
        END IF;
        value := v_clean;
    ELSIF v_type IN ('integer', 'decimal') THEN
        v_kind := 'number';
        v_checks := ARRAY[pg_catalog.format('%s <= %L::numeric', v_number,
                                            coalesce(p_field ->> 'max', CASE v_type WHEN 'integer' THEN '2147483647' ELSE '1e15' END))];
        IF p_field ? 'min' OR v_type = 'integer' THEN
            v_checks := v_checks || pg_catalog.format('%s >= %L::numeric', v_number, coalesce(p_field ->> 'min', '-2147483648'));
        END IF;
        value := v_json;
        IF v_type = 'integer' THEN
            v_checks := v_checks || pg_catalog.format('%1$s = pg_catalog.trunc(%1$s)', v_number);
            value := pg_catalog.format('pg_catalog.to_jsonb(pg_catalog.trunc(%s))', v_number);  -- 2.0 is 2, as in validate_value
        ELSIF p_field ? 'scale' THEN
            v_checks := v_checks || pg_catalog.format('NOT (pg_catalog.scale(%1$s) > %2$s AND %1$s <> pg_catalog.round(%1$s, %2$s))',
                                                      v_number, (p_field ->> 'scale')::integer);
        END IF;
    ELSIF v_type = 'boolean' THEN
        v_kind := 'boolean';
        value := v_json;
    ELSIF v_type = 'object' AND NOT p_field ? 'fields' THEN
        v_kind := 'object';
        v_checks := ARRAY[pg_catalog.format('pg_catalog.octet_length(%s::text) <= %s', v_json,
                                            coalesce((p_field ->> 'max_bytes')::integer, 16384))];
        value := v_json;
    ELSIF v_type = 'array' AND NOT p_field ? 'items' THEN
        v_kind := 'array';
        v_checks := ARRAY[pg_catalog.format('pg_catalog.jsonb_array_length(%s) BETWEEN %s AND %s', v_json,
                                            coalesce((p_field ->> 'min_items')::integer, 0),
                                            coalesce((p_field ->> 'max_items')::integer, 100))];
        value := v_json;
    ELSE
        RETURN;
    END IF;
    -- CASE, not AND: the checks may only read the value once its JSON type is known.
    v_present := pg_catalog.format('CASE WHEN pg_catalog.jsonb_typeof(%s) = %L THEN %s ELSE false END',
                                   v_json, v_kind, coalesce(pg_catalog.array_to_string(v_checks, ' AND '), 'true'));
    ok := CASE WHEN v_required THEN v_present ELSE pg_catalog.format('(%s OR %s)', v_absent, v_present) END;
    value := core.contract_value_code(p_field, p_source, value);
END
$$;
COMMENT ON FUNCTION core.contract_field_code(jsonb, text) IS
    'Internal to core.compile_contract: the SQL that checks one contract field of a jsonb object and the SQL of its cleaned value.';

CREATE FUNCTION core.compile_contract(p_name text)
    RETURNS void
    VOLATILE
    LANGUAGE plpgsql
AS $$
-- (Re)creates core.prepare__<p_name>(p_input jsonb, p_entity text) from core.contract__<p_name>().
-- Fields the compiler has no straight-line code for are checked by core.validate_value, and an
-- array of objects is checked element by element in a loop.
DECLARE
    v_contract  jsonb;
    v_field     jsonb;
    v_items     jsonb;
    v_code      record;
    v_names     text[] := '{}';
    v_oks       text[] := '{}';
    v_values    text[] := '{}';
    v_declare   text := '';
    v_loops     text := '';
    v_item_oks  text[];
    v_item_vals text[];
    v_item_keys text[];
    v_var       text;
    v_fallback  text;
    v_body      text;
    v_absent    text;
    v_required  boolean;
BEGIN
    IF p_name !~ '^[a-z_][a-z0-9_]{0,50}$'
       OR pg_catalog.to_regprocedure(pg_catalog.format('core.contract__%s()', p_name)) IS NULL THEN
        RAISE EXCEPTION 'core.compile_contract: there is no core.contract__%()', p_name USING ERRCODE = 'undefined_function';
    END IF;
    EXECUTE pg_catalog.format('SELECT core.contract__%s()', p_name) INTO v_contract;
    v_fallback := pg_catalog.format('RETURN core.prepare_input(core.contract__%s(), p_input, p_entity);', p_name);

    FOR v_index IN 0 .. coalesce(pg_catalog.jsonb_array_length(v_contract -> 'fields'), 0) - 1 LOOP
        v_field := v_contract -> 'fields' -> v_index;
        v_names := v_names || (v_field ->> 'name');
        v_required := coalesce((v_field ->> 'required')::boolean, false);
        v_absent := core.contract_absent_code('p_input', v_field ->> 'name');
        v_code := core.contract_field_code(v_field, 'p_input');
        v_items := v_field -> 'items';
        IF v_code.ok IS NOT NULL THEN
            v_oks := v_oks || v_code.ok;
            v_values := v_values || v_code.value;
            CONTINUE;
        END IF;
        v_var := pg_catalog.format('v_field_%s', v_index);
        IF v_field ->> 'type' = 'array' AND v_items ->> 'type' = 'object' AND v_items ? 'fields' THEN
            -- Each element must be an object of the items contract: its own fields, no others.
            SELECT pg_catalog.array_agg(c.ok ORDER BY f.n), pg_catalog.array_agg(c.value ORDER BY f.n),
                   pg_catalog.array_agg(f.field ->> 'name' ORDER BY f.n)
              INTO v_item_oks, v_item_vals, v_item_keys
              FROM pg_catalog.jsonb_array_elements(v_items -> 'fields') WITH ORDINALITY AS f (field, n)
             CROSS JOIN LATERAL core.contract_field_code(f.field, 'v_element') AS c;
        ELSE
            v_item_oks := NULL;
        END IF;
        IF v_item_oks IS NOT NULL AND pg_catalog.array_position(v_item_oks, NULL) IS NULL THEN
            v_declare := v_declare || pg_catalog.format(E'\n    %s jsonb := ''[]'';', v_var);
            v_oks := v_oks || pg_catalog.format(
                '(%4$sCASE WHEN pg_catalog.jsonb_typeof(p_input -> %1$L) = ''array'' '
                'THEN pg_catalog.jsonb_array_length(p_input -> %1$L) BETWEEN %2$s AND %3$s ELSE false END)',
                v_field ->> 'name', coalesce((v_field ->> 'min_items')::integer, 0),
                coalesce((v_field ->> 'max_items')::integer, 100), CASE WHEN v_required THEN '' ELSE v_absent || ' OR ' END);
            v_loops := v_loops || pg_catalog.format(
                E'\n        FOR v_index IN 0 .. CASE WHEN pg_catalog.jsonb_typeof(p_input -> %1$L) = ''array'''
                '\n                                 THEN pg_catalog.jsonb_array_length(p_input -> %1$L) ELSE 0 END - 1 LOOP'
                '\n            v_element := p_input -> %1$L -> v_index;'
                '\n            IF (CASE WHEN pg_catalog.jsonb_typeof(v_element) = ''object'''
                '\n                    THEN pg_catalog.octet_length(v_element::text) <= %2$s AND (v_element - %3$L::text[]) = ''{}'''
                '\n                         AND %4$s'
                '\n                    ELSE false END) IS NOT TRUE THEN'
                '\n                %5$s'
                '\n            END IF;'
                '\n            %6$s := %6$s || pg_catalog.jsonb_build_array(%7$s);'
                '\n        END LOOP;',
                v_field ->> 'name', coalesce((v_items ->> 'max_bytes')::integer, 16384), v_item_keys,
                pg_catalog.array_to_string(v_item_oks, E'\n                         AND '), v_fallback, v_var,
                pg_catalog.array_to_string(v_item_vals, ' || '));
        ELSE
            v_declare := v_declare || pg_catalog.format(E'\n    %s jsonb;', v_var);
            v_loops := v_loops || pg_catalog.format(
                E'\n        %1$s := CASE WHEN %2$s THEN NULL ELSE core.validate_value(%3$L::jsonb, p_input -> %4$L, %4$L) END;'
                '\n        IF %5$s THEN'
                '\n            %6$s'
                '\n        END IF;',
                v_var, v_absent, v_field, v_field ->> 'name',
                CASE WHEN v_required THEN pg_catalog.format('%s IS NULL OR NOT %s ? ''value''', v_var, v_var)
                     ELSE pg_catalog.format('NOT coalesce(%s ? ''value'', true)', v_var) END,
                v_fallback);
            v_values := v_values || core.contract_value_code(v_field, 'p_input', v_var || ' -> ''value''');
            CONTINUE;
        END IF;
        v_values := v_values || core.contract_value_code(v_field, 'p_input', v_var);
    END LOOP;

    -- The body is passed as a quoted literal (%L), so no text of the contract can end it early.
    v_body := pg_catalog.format($f$
-- Generated by core.compile_contract('%1$s') from core.contract__%1$s(): edit the contract, not this.
DECLARE%2$s
BEGIN
    IF (CASE WHEN pg_catalog.jsonb_typeof(p_input) = 'object'
            THEN core.current_tenant_id() IS NOT NULL AND core.current_actor_id() IS NOT NULL
                 AND pg_catalog.octet_length(p_input::text) <= 1048576
                 AND (p_input - %3$L::text[]) = '{}'
                 AND %4$s
            ELSE false END) IS TRUE THEN%5$s
        RETURN ROW(NULL, %6$s)::core.prepared_input;
    END IF;
    %7$s
END
$f$,
        p_name,
        CASE WHEN v_loops LIKE '%v_element%' THEN E'\n    v_element jsonb;' ELSE '' END || v_declare,
        v_names,
        coalesce(NULLIF(pg_catalog.array_to_string(v_oks, E'\n                 AND '), ''), 'true'),
        v_loops,
        coalesce(NULLIF(pg_catalog.array_to_string(v_values, E'\n            || '), ''), '''{}''::jsonb'),
        v_fallback);
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION core.prepare__%s(p_input jsonb, p_entity text) '
                              'RETURNS core.prepared_input STABLE LANGUAGE plpgsql AS %L', p_name, v_body);
    -- Like everything of core: not for PUBLIC, whoever compiles it.
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION core.prepare__%s(jsonb, text) FROM PUBLIC', p_name);
    EXECUTE pg_catalog.format(
        'COMMENT ON FUNCTION core.prepare__%1$s(jsonb, text) IS %2$L', p_name,
        pg_catalog.format('The checked input of app.%1$s, compiled from core.contract__%1$s() by core.compile_contract: '
                          'the cleaned value of a valid input; anything else is refused by core.prepare_input.', p_name));
END
$$;
COMMENT ON FUNCTION core.compile_contract(text) IS
    'Generates core.prepare__<name>(input, entity), the fast check of an app function''s input from its contract core.contract__<name>(); call it next to the contract.';
