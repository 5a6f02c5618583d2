-- requires: 0003_tenancy

/* The result every app mutation returns, and the helpers core uses to build one.

   status is one of: created / updated / deleted (succeeded); noop:<reason> (succeeded, nothing
   in the domain tables changed, one 'noop' event in the ledger); validation:<code>,
   not_found:<entity>, conflict:<reason>, forbidden:<permission> (refused, nothing written). */

CREATE TYPE app.mutation_result AS (
    status         text,
    succeeded      boolean,
    message        text,
    entity         text,
    id             uuid,
    identifier     text,
    version        integer,
    object_data    jsonb,
    updated_fields text[],
    errors         jsonb,
    extra_metadata jsonb
);
COMMENT ON TYPE app.mutation_result IS
    'What every app mutation returns: status (created, updated, deleted, noop:*, validation:*, not_found:*, conflict:*, forbidden:*), the entity and its view data, or structured errors.';
GRANT USAGE ON TYPE app.mutation_result TO strata_app;

CREATE FUNCTION core.result_success(
    p_status text,
    p_entity text,
    p_id uuid,
    p_identifier text,
    p_version integer,
    p_object jsonb,
    p_updated_fields text[] DEFAULT NULL,
    p_message text DEFAULT NULL,
    p_extra jsonb DEFAULT NULL
)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF p_status NOT IN ('created', 'updated', 'deleted') THEN
        RAISE EXCEPTION 'core.result_success: % is not a success status', p_status USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN ROW(p_status, true, coalesce(p_message, pg_catalog.initcap(p_entity) || ' ' || p_status || '.'),
               p_entity, p_id, p_identifier, p_version, p_object, p_updated_fields, NULL, p_extra)::app.mutation_result;
END
$$;
COMMENT ON FUNCTION core.result_success(text, text, uuid, text, integer, jsonb, text[], text, jsonb) IS
    'A created/updated/deleted result carrying the entity''s view data.';

CREATE FUNCTION core.result_noop(
    p_reason text,
    p_entity text,
    p_id uuid,
    p_identifier text,
    p_version integer,
    p_object jsonb,
    p_message text DEFAULT NULL,
    p_extra jsonb DEFAULT NULL
)
    RETURNS app.mutation_result
    VOLATILE
    LANGUAGE plpgsql
AS $$
BEGIN
    -- A NOOP changes no domain row but is still an auditable decision.
    PERFORM audit.log_event('noop', p_entity, p_id, p_identifier, NULL,
                            pg_catalog.jsonb_build_object('reason', p_reason) || coalesce(p_extra, '{}'));
    RETURN ROW('noop:' || p_reason, true, coalesce(p_message, 'Nothing to do: ' || pg_catalog.replace(p_reason, '_', ' ') || '.'),
               p_entity, p_id, p_identifier, p_version, p_object, '{}'::text[], NULL, p_extra)::app.mutation_result;
END
$$;
COMMENT ON FUNCTION core.result_noop(text, text, uuid, text, integer, jsonb, text, jsonb) IS
    'A noop:<reason> result; records one noop event in the ledger.';

CREATE FUNCTION core.result_refused(
    p_status text,
    p_message text,
    p_entity text DEFAULT NULL,
    p_errors jsonb DEFAULT NULL,
    p_id uuid DEFAULT NULL,
    p_identifier text DEFAULT NULL,
    p_version integer DEFAULT NULL,
    p_extra jsonb DEFAULT NULL
)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF pg_catalog.split_part(p_status, ':', 1) NOT IN ('validation', 'not_found', 'conflict', 'forbidden') THEN
        RAISE EXCEPTION 'core.result_refused: % is not a refusal status', p_status USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN ROW(p_status, false, p_message, p_entity, p_id, p_identifier, p_version, NULL, NULL,
               p_errors, p_extra)::app.mutation_result;
END
$$;
COMMENT ON FUNCTION core.result_refused(text, text, text, jsonb, uuid, text, integer, jsonb) IS
    'A refusal (validation:*, not_found:*, conflict:*, forbidden:*); the caller must have written nothing.';

CREATE FUNCTION core.result_invalid(p_errors jsonb, p_entity text DEFAULT NULL)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT core.result_refused(
        'validation:' || (p_errors -> 0 ->> 'code'),
        CASE pg_catalog.jsonb_array_length(p_errors)
            WHEN 1 THEN p_errors -> 0 ->> 'message'
            ELSE (p_errors -> 0 ->> 'message') || pg_catalog.format(' (and %s more problems)', pg_catalog.jsonb_array_length(p_errors) - 1)
        END,
        p_entity, p_errors)
$$;
COMMENT ON FUNCTION core.result_invalid(jsonb, text) IS
    'A validation:<code> refusal from a non-empty list of {field, code, message} errors; the status names the first.';

CREATE FUNCTION core.field_error(p_field text, p_code text, p_message text)
    RETURNS jsonb
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.jsonb_build_object('field', p_field, 'code', p_code, 'message', p_message)
$$;
COMMENT ON FUNCTION core.field_error(text, text, text) IS 'One {field, code, message} entry of a validation result.';

CREATE FUNCTION core.changed_fields(p_old jsonb, p_new jsonb)
    RETURNS text[]
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT coalesce(pg_catalog.array_agg(k.key ORDER BY k.key), '{}')
      FROM (SELECT key FROM pg_catalog.jsonb_object_keys(coalesce(p_old, '{}')) AS key
            UNION
            SELECT key FROM pg_catalog.jsonb_object_keys(coalesce(p_new, '{}')) AS key) AS k
     WHERE (p_old -> k.key) IS DISTINCT FROM (p_new -> k.key)
$$;
COMMENT ON FUNCTION core.changed_fields(jsonb, jsonb) IS 'The keys whose values differ between two objects, sorted: updated_fields of a result.';

CREATE FUNCTION core.result_from_error(p_sqlstate text, p_message text, p_entity text DEFAULT NULL)
    RETURNS app.mutation_result
    IMMUTABLE
    LANGUAGE sql
AS $$
    -- The safety net of every app function: a database error caused by the input becomes a
    -- refusal (the subtransaction already undid any partial write).
    SELECT CASE
        WHEN p_sqlstate = '23505' THEN core.result_refused('conflict:already_exists', 'Something with the same key already exists.', p_entity)
        WHEN p_sqlstate = '23503' THEN core.result_refused('conflict:referenced', 'The change would break a reference between records.', p_entity)
        WHEN p_sqlstate IN ('23514', '23502', '22001', '22003', '22P02', '22007', '22008', '22023', '2202E', '22004')
            THEN core.result_invalid(pg_catalog.jsonb_build_array(core.field_error('', 'invalid_value', p_message)), p_entity)
        WHEN p_sqlstate = '28000' THEN core.result_refused('forbidden:context', p_message, p_entity)
        ELSE NULL
    END
$$;
COMMENT ON FUNCTION core.result_from_error(text, text, text) IS
    'Maps a data error raised under an app function to a refusal; NULL for errors that must propagate.';
