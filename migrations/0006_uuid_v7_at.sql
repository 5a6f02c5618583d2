-- depends: 0005_open_orders
-- 0006 core.uuid_v7(timestamptz): a version-7 UUID for a given time, for rows that record a
-- past moment (a bulk load of last year's orders, a backfill) so that their ids still sort by
-- that time. core.uuid_v7() becomes the one of clock_timestamp(); both are SQL functions that
-- PostgreSQL inlines into the caller, so a table default costs what it cost before.

CREATE FUNCTION core.uuid_v7(p_at timestamptz)
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
                        pg_catalog.int8send((extract(epoch FROM p_at) * 1000)::bigint)
                        FROM 3)
                    FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;
ALTER FUNCTION core.uuid_v7(timestamptz) OWNER TO strata_owner;
REVOKE EXECUTE ON FUNCTION core.uuid_v7(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION core.uuid_v7(timestamptz) IS
    'A new version-7 UUID for the time p_at (1970 or later; NULL gives NULL): its 48-bit millisecond timestamp then random bits, so ids of past events sort by their time.';

CREATE OR REPLACE FUNCTION core.uuid_v7()
    RETURNS uuid
    VOLATILE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT core.uuid_v7(pg_catalog.clock_timestamp())
$$;
