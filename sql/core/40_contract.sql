-- requires: 0003_tenancy

/* Input contracts. Every app function declares its input once, as the result of an
   IMMUTABLE function core.contract__<name>() placed next to it; core.validate_input() enforces
   that declaration and app.describe('<name>') returns it, so the documentation and the
   validator cannot disagree.

   A contract is {"description", "permission", "fields": [field, ...]}; a field is
   {"name", "type", "required"?, "default"?, limits...} with type one of:
     string    trimmed; min_length (1 if required), max_length (default 1000), pattern,
               case ("upper" or "lower")
     email     trimmed and lower-cased; at most 254 characters
     integer   a JSON number without fraction; min, max (default: the int4 range)
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
        RETURN pg_catalog.jsonb_build_object('value', p_value);
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
    IF (p_input - v_known) = '{}' THEN
        RETURN pg_catalog.jsonb_build_object('value', v_value, 'errors', v_errors);
    END IF;
    FOR v_key IN SELECT k FROM pg_catalog.jsonb_object_keys(p_input - v_known) AS k ORDER BY k LOOP
        v_errors := v_errors || pg_catalog.jsonb_build_array(core.field_error(p_prefix || v_key, 'unknown_field',
                        pg_catalog.format('%s is not a field of this input', p_prefix || pg_catalog.left(v_key, 100))));
    END LOOP;
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
