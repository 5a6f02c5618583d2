-- requires: 0002_audit_ledger

/* Sealing: committed events into signed, chained blocks, by transaction snapshot.

   Block n records a snapshot S(n) and holds every event whose transaction S(n) sees as
   committed and S(n-1) did not. Snapshots only grow (each S(n) contains S(n-1)), so each
   committed transaction is sealed exactly once whatever its isolation level or the order of
   commits, a transaction still running at seal time (in S(n)'s xip list) is sealed by a later
   block, and rolled-back events never existed. Block 1's predecessor is the snapshot '3:3:',
   which sees no transaction (3 is the first normal transaction id).

   Who seals:
   * audit.seal(), on demand (`strata audit seal`), in its own transaction.
   * Without a daemon: the first event of each transaction queues a deferred trigger, which
     runs when that transaction commits. At most once per strata.audit_seal_interval_ms
     (default 500) per session, and only if the newest block is older than half that, it
     takes a try-lock (never waits) and seals what committed before it. The sealing
     transaction's own events are still uncommitted, so its own id is added to the recorded
     snapshot's in-progress list: they go to the next block. A block it builds commits or
     rolls back with it. SERIALIZABLE transactions do not seal (reading the ledger there would
     add predicate locks); in REPEATABLE READ a block sealed since the transaction's snapshot
     is invisible to it, its insert then collides on block_no and it quietly leaves sealing
     to others. A failed opportunistic seal never fails the writer: it is logged as a warning
     and retried at the next commit.
   * Bounded: one opportunistic block takes at most about 20000 events (whole transactions:
     the snapshot is cut at a transaction id), audit.seal() 50000 per block and loops.

   In a quiet database the last transaction's events wait for the next write, for
   audit.seal(), or for `strata audit tail`, which seals every second while it watches.
   SET strata.audit_seal_on_commit = 'off' turns the commit-time seal off for a session (a bulk
   load, a test that wants blocks exactly where it seals). */

CREATE FUNCTION audit.seal_lock_key()
    RETURNS bigint
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT 6013557165336382567::bigint -- the bytes of 'StrataLg'
$$;
COMMENT ON FUNCTION audit.seal_lock_key() IS
    'The transaction-level advisory lock that serializes sealers and key rotation (never writers).';

CREATE FUNCTION audit.make_snapshot(p_xmin xid8, p_xmax xid8, p_xip xid8[])
    RETURNS pg_snapshot
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.format('%s:%s:%s', p_xmin, p_xmax,
                             coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x)
                                         FROM pg_catalog.unnest(p_xip) AS x
                                        WHERE x >= p_xmin AND x < p_xmax), ''))::pg_snapshot
$$;
COMMENT ON FUNCTION audit.make_snapshot(xid8, xid8, xid8[]) IS
    'Builds a pg_snapshot from xmin, xmax and in-progress transaction ids (those outside [xmin, xmax) are dropped).';

CREATE FUNCTION audit.block_members(p_prev pg_snapshot, p_snapshot pg_snapshot)
    RETURNS SETOF audit.events
    STABLE
    LANGUAGE sql
AS $$
    SELECT e.*
      FROM audit.events AS e
     WHERE ((e.txid >= pg_catalog.pg_snapshot_xmax(p_prev) AND e.txid < pg_catalog.pg_snapshot_xmax(p_snapshot))
            OR e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p_prev))))
       AND pg_catalog.pg_visible_in_snapshot(e.txid, p_snapshot)
       AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, p_prev)
$$;
COMMENT ON FUNCTION audit.block_members(pg_snapshot, pg_snapshot) IS
    'The events a block sealed with p_snapshot holds when the previous block was sealed with p_prev.';

CREATE FUNCTION audit.genesis_snapshot()
    RETURNS pg_snapshot
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT '3:3:'::pg_snapshot
$$;
COMMENT ON FUNCTION audit.genesis_snapshot() IS 'The snapshot before block 1: it sees no transaction.';

CREATE FUNCTION audit.new_signing_key()
    RETURNS text
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_key_id text;
BEGIN
    SELECT 'k' || (coalesce(pg_catalog.max(pg_catalog.substr(k.key_id, 2)::bigint) FILTER (WHERE k.key_id ~ '^k[0-9]{1,18}$'), 0) + 1)
      INTO v_key_id
      FROM audit.signing_keys AS k;
    INSERT INTO audit.signing_keys (key_id, secret) VALUES (v_key_id, public.gen_random_bytes(32));
    RETURN v_key_id;
END
$$;
COMMENT ON FUNCTION audit.new_signing_key() IS 'Internal: creates the next signing key (k1, k2, ...) from 32 random bytes. Owner only.';

CREATE FUNCTION audit.seal_block(p_wait boolean, p_max_events integer, p_min_age interval)
    RETURNS audit.blocks
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_prev audit.blocks;
    v_prev_snapshot pg_snapshot := audit.genesis_snapshot();
    v_block audit.blocks;
    v_own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
    v_now pg_snapshot;
    v_xmin xid8;
    v_xmax xid8;
    v_xip xid8[];
    v_cut xid8;
    v_hashes bytea[];
    v_by_tenant uuid[];
    v_tenant_hashes bytea[];
    v_tenants uuid[];
    v_counts integer[];
    v_roots bytea[];
    v_secret bytea;
BEGIN
    IF p_wait THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(audit.seal_lock_key());
    ELSIF NOT pg_catalog.pg_try_advisory_xact_lock(audit.seal_lock_key()) THEN
        RETURN NULL;
    END IF;

    SELECT * INTO v_prev FROM audit.blocks ORDER BY block_no DESC LIMIT 1;
    IF v_prev.block_no IS NOT NULL THEN
        IF p_min_age IS NOT NULL AND v_prev.sealed_at > pg_catalog.clock_timestamp() - p_min_age THEN
            RETURN NULL;
        END IF;
        v_prev_snapshot := v_prev.snapshot;
    END IF;

    -- Taken after the previous block was read, so it contains that block's snapshot.
    v_now := pg_catalog.pg_current_snapshot();
    v_xmin := pg_catalog.pg_snapshot_xmin(v_now);
    v_xmax := pg_catalog.pg_snapshot_xmax(v_now);
    v_xip := ARRAY(SELECT pg_catalog.pg_snapshot_xip(v_now));
    -- Our own transaction is not committed: its events belong to a later block.
    IF v_own IS NOT NULL AND v_own < v_xmax THEN
        v_xip := v_xip || v_own;
        v_xmin := least(v_xmin, v_own);
    END IF;
    IF v_xmax < pg_catalog.pg_snapshot_xmax(v_prev_snapshot)
       OR EXISTS (SELECT 1 FROM pg_catalog.unnest(v_xip) AS x
                   WHERE pg_catalog.pg_visible_in_snapshot(x, v_prev_snapshot)) THEN
        RETURN NULL; -- an older snapshot than the last block's (REPEATABLE READ): leave it to others
    END IF;
    v_block.snapshot := audit.make_snapshot(v_xmin, v_xmax, v_xip);

    -- Bound the block by cutting the snapshot after the transaction of the p_max_events-th event.
    IF p_max_events IS NOT NULL THEN
        SELECT m.txid INTO v_cut
          FROM audit.block_members(v_prev_snapshot, v_block.snapshot) AS m
         ORDER BY m.txid
         OFFSET p_max_events LIMIT 1;
        IF v_cut IS NOT NULL THEN
            v_cut := ((v_cut::text)::numeric + 1)::text::xid8;
            v_block.snapshot := audit.make_snapshot(least(v_xmin, v_cut), v_cut, v_xip);
        END IF;
    END IF;

    SELECT pg_catalog.count(*), pg_catalog.min(m.pk_event), pg_catalog.max(m.pk_event),
           pg_catalog.array_agg(m.event_hash ORDER BY m.pk_event),
           pg_catalog.array_agg(m.tenant_id ORDER BY m.tenant_id, m.pk_event),
           pg_catalog.array_agg(m.event_hash ORDER BY m.tenant_id, m.pk_event)
      INTO v_block.event_count, v_block.first_event, v_block.last_event, v_hashes, v_by_tenant, v_tenant_hashes
      FROM audit.block_members(v_prev_snapshot, v_block.snapshot) AS m;
    IF v_block.event_count = 0 THEN
        RETURN NULL;
    END IF;

    v_block.events_root := audit.merkle_root(v_hashes);
    IF v_by_tenant[1] = v_by_tenant[v_block.event_count] THEN
        -- One tenant (the list is sorted by tenant): its events are the block's, in the same
        -- order, so its root is the events root. Half the hashing of a block, the usual case
        -- of a single-tenant database and of a quiet multi-tenant one.
        v_tenants := ARRAY[v_by_tenant[1]];
        v_counts := ARRAY[v_block.event_count];
        v_roots := ARRAY[v_block.events_root];
    ELSE
        SELECT pg_catalog.array_agg(r.group_id ORDER BY r.group_id), pg_catalog.array_agg(r.leaf_count ORDER BY r.group_id),
               pg_catalog.array_agg(r.root ORDER BY r.group_id)
          INTO v_tenants, v_counts, v_roots
          FROM audit.merkle_roots(v_by_tenant, v_tenant_hashes) AS r;
    END IF;

    SELECT k.key_id, k.secret INTO v_block.key_id, v_secret
      FROM audit.signing_keys AS k
     WHERE k.retired_at IS NULL;
    IF v_block.key_id IS NULL THEN
        v_block.key_id := audit.new_signing_key();
        SELECT k.secret INTO v_secret FROM audit.signing_keys AS k WHERE k.key_id = v_block.key_id;
    END IF;

    v_block.block_no := coalesce(v_prev.block_no, 0) + 1;
    v_block.encoding := 1;
    v_block.prev_hash := coalesce(v_prev.block_hash, pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex'));
    v_block.sealed_at := pg_catalog.clock_timestamp();
    v_block.sealed_by := session_user;
    v_block.total_events := coalesce(v_prev.total_events, 0) + v_block.event_count;
    v_block.tenant_count := pg_catalog.cardinality(v_tenants);
    v_block.tenants_root := audit.merkle_root(ARRAY(
        SELECT audit.tenant_entry_hash(t.tenant_id, t.n, t.root)
          FROM ROWS FROM (pg_catalog.unnest(v_tenants), pg_catalog.unnest(v_counts), pg_catalog.unnest(v_roots))
               WITH ORDINALITY AS t (tenant_id, n, root, o)
         ORDER BY t.o));
    v_block.block_hash := audit.block_hash(v_block);
    v_block.signature := public.hmac(v_block.block_hash, v_secret, 'sha256');

    INSERT INTO audit.blocks (block_no, encoding, prev_hash, snapshot, sealed_at, sealed_by, event_count,
                              total_events, first_event, last_event, events_root, tenant_count,
                              tenants_root, key_id, block_hash, signature)
    VALUES (v_block.block_no, v_block.encoding, v_block.prev_hash, v_block.snapshot, v_block.sealed_at,
            v_block.sealed_by, v_block.event_count, v_block.total_events, v_block.first_event,
            v_block.last_event, v_block.events_root, v_block.tenant_count, v_block.tenants_root,
            v_block.key_id, v_block.block_hash, v_block.signature);
    INSERT INTO audit.block_tenants (tenant_id, block_no, event_count, root)
    SELECT t.tenant_id, v_block.block_no, t.n, t.root
      FROM ROWS FROM (pg_catalog.unnest(v_tenants), pg_catalog.unnest(v_counts), pg_catalog.unnest(v_roots))
           AS t (tenant_id, n, root);
    PERFORM pg_catalog.pg_notify('strata_audit', v_block.block_no::text);
    RETURN v_block;
END
$$;
COMMENT ON FUNCTION audit.seal_block(boolean, integer, interval) IS
    'Internal: seals the events committed since the last block into one signed block, or returns NULL when there '
    'is nothing to seal, the seal lock is busy (p_wait false) or the last block is younger than p_min_age. Owner only.';

CREATE FUNCTION audit.seal(
    OUT blocks integer,
    OUT events bigint,
    OUT last_block bigint
)
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '10s'
    LANGUAGE plpgsql
AS $$
DECLARE
    v_block audit.blocks;
    v_limit constant integer := 50000;
BEGIN
    blocks := 0;
    events := 0;
    LOOP
        v_block := audit.seal_block(true, v_limit, NULL);
        EXIT WHEN v_block.block_no IS NULL;
        blocks := blocks + 1;
        events := events + v_block.event_count;
        last_block := v_block.block_no;
        EXIT WHEN v_block.event_count < v_limit;
    END LOOP;
    IF last_block IS NULL THEN
        SELECT pg_catalog.max(b.block_no) INTO last_block FROM audit.blocks AS b;
    END IF;
END
$$;
COMMENT ON FUNCTION audit.seal() IS
    'Seals every event committed so far into new blocks now; returns how many blocks and events, and the newest block.';

CREATE FUNCTION audit.rotate_key()
    RETURNS text
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '10s'
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(audit.seal_lock_key());
    UPDATE audit.signing_keys SET retired_at = pg_catalog.clock_timestamp() WHERE retired_at IS NULL;
    RETURN audit.new_signing_key();
END
$$;
COMMENT ON FUNCTION audit.rotate_key() IS
    'Retires the signing key and creates the next one, which signs blocks from now on; returns its id. Retired keys '
    'are kept so older blocks stay verifiable.';

CREATE FUNCTION audit.signing_key_ids()
    RETURNS TABLE (
        key_id text,
        created_at timestamptz,
        retired_at timestamptz,
        blocks bigint
    )
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE sql
AS $$
    SELECT k.key_id, k.created_at, k.retired_at,
           (SELECT pg_catalog.count(*) FROM audit.blocks AS b WHERE b.key_id = k.key_id)
      FROM audit.signing_keys AS k
     ORDER BY k.created_at, k.key_id
$$;
COMMENT ON FUNCTION audit.signing_key_ids() IS
    'The signing keys the ledger knows, by id, with when they were created and retired and how many blocks each signed. Never the secrets.';

/* The commit-time seal. The first event of a transaction (tx_seq = 1) queues it; it runs at
   commit and returns at once unless this session's seal interval has passed. (The check is
   not in the trigger's WHEN clause: a function call there is planned again for every INSERT
   statement, which costs more than the deferred call it would save.) */
CREATE FUNCTION audit.seal_due()
    RETURNS boolean
    VOLATILE
    LANGUAGE sql
AS $$
    SELECT coalesce(nullif(pg_catalog.current_setting('strata.audit_next_seal', true), '')::double precision, 0)
           <= pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())
$$;
COMMENT ON FUNCTION audit.seal_due() IS
    'Whether this session''s next opportunistic seal is due (strata.audit_next_seal, a Unix time, has passed).';

CREATE FUNCTION audit.tg_events__seal_on_commit()
    RETURNS trigger
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_interval double precision;
BEGIN
    IF NOT audit.seal_due() OR pg_catalog.current_setting('strata.audit_seal_on_commit', true) = 'off' THEN
        RETURN NULL;
    END IF;
    v_interval := coalesce(nullif(pg_catalog.current_setting('strata.audit_seal_interval_ms', true), '')::double precision,
                           500) / 1000;
    PERFORM pg_catalog.set_config('strata.audit_next_seal',
                                  (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) + v_interval)::text, false);
    IF pg_catalog.current_setting('transaction_isolation') = 'serializable' THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM audit.seal_block(false, 20000, pg_catalog.make_interval(secs => v_interval / 2));
    EXCEPTION
        WHEN unique_violation OR serialization_failure THEN
            NULL; -- a block sealed after this transaction's snapshot: someone else is sealing
        WHEN OTHERS THEN
            RAISE WARNING 'strata: the opportunistic seal failed and will be retried: %', sqlerrm;
    END;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION audit.tg_events__seal_on_commit() IS
    'Deferred to commit: seals what committed before this transaction, at most once per seal interval per session, '
    'never waiting for a lock and never failing the commit.';
-- Attached to audit.events in 50_triggers.sql.

GRANT EXECUTE ON FUNCTION audit.make_snapshot(xid8, xid8, xid8[]), audit.block_members(pg_snapshot, pg_snapshot),
    audit.genesis_snapshot(), audit.signing_key_ids() TO strata_auditor;
