-- requires: 0001_foundation

/* The installed Strata version, for support requests and `strata inspect`: the migrations
   recorded as applied are bookkeeping, this is what the code layer says it is. */
CREATE FUNCTION core.strata_version()
    RETURNS text
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT '0.1.0'
$$;
COMMENT ON FUNCTION core.strata_version() IS 'The Strata release whose code layer is installed.';
GRANT EXECUTE ON FUNCTION core.strata_version() TO strata_auditor;
