-- depends: 0007_capture_by_expression
-- 0008 core.uuid_v7(timestamptz) takes the millisecond of p_at by truncating, not rounding.
-- RFC 9562 puts the Unix time in milliseconds in a version-7 UUID's first 48 bits: the
-- millisecond that has begun. Rounding gave a moment in the last half millisecond of its
-- millisecond the next one, so its id named a time that had not come yet (and 23:59:59.9996
-- the next day). extract() gives an exact numeric, so floor() is exact too. The function stays
-- a single SELECT, which PostgreSQL inlines into table defaults as before.

CREATE OR REPLACE FUNCTION core.uuid_v7(p_at timestamptz)
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
                        pg_catalog.int8send(pg_catalog.floor(extract(epoch FROM p_at) * 1000)::bigint)
                        FROM 3)
                    FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;
