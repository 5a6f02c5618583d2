-- Rolls back 0008: core.uuid_v7(timestamptz) rounds to the millisecond again, as in 0006.
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
                        pg_catalog.int8send((extract(epoch FROM p_at) * 1000)::bigint)
                        FROM 3)
                    FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;
