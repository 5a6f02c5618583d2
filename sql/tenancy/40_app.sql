-- requires: 0003_tenancy

/* The tenancy API. Each app function: its contract (core.contract__<name>, also what
   app.describe returns) compiled into its input check (core.prepare__<name>), then the
   function itself: validate the JSON, call core with typed arguments. Errors caused by data
   become refusals; serialization failures and deadlocks propagate so the client retries. */

CREATE FUNCTION core.contract__create_user()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Creates a user in the organization in context and grants one role.",
        "permission": "users.create",
        "fields": [
            {"name": "email", "type": "email", "required": true},
            {"name": "name", "type": "string", "required": true, "max_length": 200},
            {"name": "role", "type": "reference", "entity": "role", "default": "member"},
            {"name": "preferences", "type": "object", "max_bytes": 16384, "default": {}}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__create_user() IS 'Input contract of app.create_user.';
SELECT core.compile_contract('create_user');

CREATE FUNCTION app.create_user(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__create_user(input, 'user');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.create_user(
        p_email       => v_in.value ->> 'email',
        p_name        => v_in.value ->> 'name',
        p_role        => v_in.value ->> 'role',
        p_preferences => v_in.value -> 'preferences');
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'user');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.create_user(jsonb) IS
    'Creates a user: {"email", "name", "role"?, "preferences"?}. created, noop:already_exists, not_found:role, forbidden:users.create, validation:*.';

CREATE FUNCTION core.contract__update_user()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Changes a user''s name, email or preferences (merged; a key set to null is removed). Users may edit themselves.",
        "permission": "users.update",
        "fields": [
            {"name": "user", "type": "reference", "entity": "user", "required": true, "description": "id, identifier or email"},
            {"name": "name", "type": "string", "max_length": 200, "min_length": 1},
            {"name": "email", "type": "email"},
            {"name": "preferences", "type": "object", "max_bytes": 16384},
            {"name": "version", "type": "integer", "min": 1}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__update_user() IS 'Input contract of app.update_user.';
SELECT core.compile_contract('update_user');

CREATE FUNCTION app.update_user(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__update_user(input, 'user');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.update_user(
        p_user        => v_in.value ->> 'user',
        p_name        => v_in.value ->> 'name',
        p_email       => v_in.value ->> 'email',
        p_preferences => v_in.value -> 'preferences',
        p_version     => (v_in.value ->> 'version')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'user');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.update_user(jsonb) IS
    'Updates a user: {"user", "name"?, "email"?, "preferences"?, "version"?}. updated, noop:no_changes, not_found:user, conflict:stale_version, conflict:email_taken, forbidden:users.update, validation:*.';

CREATE FUNCTION core.contract__deactivate_user()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Deactivates a user: they keep their history but can no longer act. Not yourself, not the last admin.",
        "permission": "users.deactivate",
        "fields": [
            {"name": "user", "type": "reference", "entity": "user", "required": true, "description": "id, identifier or email"},
            {"name": "version", "type": "integer", "min": 1}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__deactivate_user() IS 'Input contract of app.deactivate_user.';
SELECT core.compile_contract('deactivate_user');

CREATE FUNCTION app.deactivate_user(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__deactivate_user(input, 'user');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.deactivate_user(p_user => v_in.value ->> 'user', p_version => (v_in.value ->> 'version')::integer);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'user');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.deactivate_user(jsonb) IS
    'Deactivates a user: {"user", "version"?}. updated, noop:already_deactivated, not_found:user, conflict:stale_version, conflict:cannot_deactivate_self, conflict:last_admin, forbidden:users.deactivate, validation:*.';

CREATE FUNCTION core.contract__grant_role()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Grants a role to a user.",
        "permission": "roles.grant",
        "fields": [
            {"name": "user", "type": "reference", "entity": "user", "required": true, "description": "id, identifier or email"},
            {"name": "role", "type": "reference", "entity": "role", "required": true}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__grant_role() IS 'Input contract of app.grant_role.';
SELECT core.compile_contract('grant_role');

CREATE FUNCTION app.grant_role(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__grant_role(input, 'user');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.change_role(p_user => v_in.value ->> 'user', p_role => v_in.value ->> 'role', p_grant => true);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'user');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.grant_role(jsonb) IS
    'Grants a role: {"user", "role"}. updated, noop:already_granted, not_found:user, not_found:role, conflict:user_deactivated, forbidden:roles.grant, validation:*.';

CREATE FUNCTION core.contract__revoke_role()
    RETURNS jsonb
    IMMUTABLE
    LANGUAGE sql
AS $$
    SELECT '{
        "description": "Revokes a role from a user; the last active admin keeps admin.",
        "permission": "roles.grant",
        "fields": [
            {"name": "user", "type": "reference", "entity": "user", "required": true, "description": "id, identifier or email"},
            {"name": "role", "type": "reference", "entity": "role", "required": true}
        ]}'::jsonb
$$;
COMMENT ON FUNCTION core.contract__revoke_role() IS 'Input contract of app.revoke_role.';
SELECT core.compile_contract('revoke_role');

CREATE FUNCTION app.revoke_role(input jsonb)
    RETURNS app.mutation_result
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_in     core.prepared_input;
    v_result app.mutation_result;
BEGIN
    v_in := core.prepare__revoke_role(input, 'user');
    IF (v_in.refusal).status IS NOT NULL THEN
        RETURN v_in.refusal;
    END IF;
    RETURN core.change_role(p_user => v_in.value ->> 'user', p_role => v_in.value ->> 'role', p_grant => false);
EXCEPTION WHEN OTHERS THEN
    v_result := core.result_from_error(SQLSTATE, SQLERRM, 'user');
    IF v_result.status IS NULL THEN
        RAISE;
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION app.revoke_role(jsonb) IS
    'Revokes a role: {"user", "role"}. updated, noop:not_granted, not_found:user, not_found:role, conflict:last_admin, forbidden:roles.grant, validation:*.';

GRANT EXECUTE ON FUNCTION app.create_user(jsonb), app.update_user(jsonb), app.deactivate_user(jsonb),
    app.grant_role(jsonb), app.revoke_role(jsonb) TO strata_app;
