-- 0001 foundation: pgcrypto, the four Strata roles, and one schema per layer and context.
--
-- Roles are cluster-wide and a cluster may hold several Strata databases, so they are created
-- only when missing and never dropped by a rollback. Schemas belong to strata_owner; the
-- migration runner creates every later object as strata_owner.

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

DO $roles$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['strata_owner', 'strata_app', 'strata_readonly', 'strata_auditor'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', v_role);
        END IF;
    END LOOP;
    -- The migrating user must be able to act as the owner; a superuser already can.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_catalog.pg_has_role(current_user, 'strata_owner', 'MEMBER') THEN
        EXECUTE pg_catalog.format('GRANT strata_owner TO %I', current_user);
    END IF;
END
$roles$;

COMMENT ON ROLE strata_owner IS 'Owns every Strata object. No login; migrations act as it.';
COMMENT ON ROLE strata_app IS 'Granted to the application''s login role: EXECUTE on app functions, SELECT on app views.';
COMMENT ON ROLE strata_readonly IS 'Read-only reporting: SELECT on app views.';
COMMENT ON ROLE strata_auditor IS 'Verifies the audit ledger and reads it for every tenant; changes nothing.';

CREATE SCHEMA core AUTHORIZATION strata_owner;
COMMENT ON SCHEMA core IS 'Typed business rules and helpers; called by app functions, never by the application directly.';
CREATE SCHEMA app AUTHORIZATION strata_owner;
COMMENT ON SCHEMA app IS 'The API: JSONB-in mutation functions returning app.mutation_result, and read views.';
CREATE SCHEMA audit AUTHORIZATION strata_owner;
COMMENT ON SCHEMA audit IS 'The tamper-evident audit ledger.';
CREATE SCHEMA tenancy AUTHORIZATION strata_owner;
COMMENT ON SCHEMA tenancy IS 'Tables of the tenancy context: organizations, users, roles and permissions.';
CREATE SCHEMA orders AUTHORIZATION strata_owner;
COMMENT ON SCHEMA orders IS 'Tables of the orders context: customers, products, orders, payments.';
CREATE SCHEMA work AUTHORIZATION strata_owner;
COMMENT ON SCHEMA work IS 'Tables of the workspace context: projects, tasks, documents, notifications.';
CREATE SCHEMA content AUTHORIZATION strata_owner;
COMMENT ON SCHEMA content IS 'Tables of the content context: posts, comments, tags, categories.';

GRANT USAGE ON SCHEMA app TO strata_app, strata_readonly, strata_auditor;
GRANT USAGE ON SCHEMA audit TO strata_auditor;

-- Functions are created without EXECUTE for PUBLIC; each file grants what its API needs.
ALTER DEFAULT PRIVILEGES FOR ROLE strata_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Time-ordered UUIDs (RFC 9562 version 7) for every public id. Defined here, not in sql/,
-- because table defaults depend on it. PostgreSQL 18 has uuidv7(); 15 does not.
-- overlay/substring/extract are SQL syntax, not functions, so they take no schema.
CREATE FUNCTION core.uuid_v7()
    RETURNS uuid
    VOLATILE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.encode(
        pg_catalog.set_bit(
            pg_catalog.set_bit(
                overlay(
                    pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                    PLACING substring(
                        pg_catalog.int8send((extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint)
                        FROM 3)
                    FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;
ALTER FUNCTION core.uuid_v7() OWNER TO strata_owner;
-- Created before the owner's default privileges apply, so revoke explicitly.
REVOKE EXECUTE ON FUNCTION core.uuid_v7() FROM PUBLIC;
COMMENT ON FUNCTION core.uuid_v7() IS 'A new version-7 UUID: 48-bit millisecond timestamp then random bits, so ids sort by creation time.';
