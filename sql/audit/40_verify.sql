-- requires: 0002_audit_ledger

/* Verification in SQL. `strata audit verify` runs the same checks in Python from the stored
   columns (cli/strata/ledger.py) so that it does not depend on these functions.

   Per block, in block order, the first failing check is reported:
     numbering (1, 2, 3 ... without a gap), block_hash against the block's columns, prev_hash
     against the previous block, the signature (key known, HMAC matches), the snapshot
     containing the previous one, the running total; then its events: every leaf hash against
     the event's columns, the event count, pk_event range and position within the transaction
     (to name an added or missing event where possible), events_root, each tenant's count and
     root against audit.block_tenants, and tenants_root over those entries.
   Events that no block holds yet are checked leaf by leaf and reported as unsealed.
   With a tenant, only that tenant's events are read; blocks, chain and signatures are still
   checked in full, and the tenant's roots are checked against the signed tenants_root. */

CREATE FUNCTION audit.block_signature_status(p_block_no bigint)
    RETURNS text
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE sql
AS $$
    SELECT CASE
        WHEN k.key_id IS NULL THEN 'unknown_key'
        WHEN public.hmac(b.block_hash, k.secret, 'sha256') = b.signature THEN 'valid'
        ELSE 'invalid'
    END
      FROM audit.blocks AS b
      LEFT JOIN audit.signing_keys AS k ON k.key_id = b.key_id
     WHERE b.block_no = p_block_no
$$;
COMMENT ON FUNCTION audit.block_signature_status(bigint) IS
    'Whether a stored block''s signature verifies: valid, invalid, or unknown_key. Checks with the key, never returns it.';

CREATE FUNCTION audit.event_block(p_txid xid8)
    RETURNS bigint
    STABLE
    LANGUAGE sql
AS $$
    SELECT b.block_no
      FROM audit.blocks AS b
     WHERE b.snap_xmax > p_txid
       AND pg_catalog.pg_visible_in_snapshot(p_txid, b.snapshot)
     ORDER BY b.snap_xmax, b.block_no
     LIMIT 1
$$;
COMMENT ON FUNCTION audit.event_block(xid8) IS
    'The block that seals the events of a transaction (the first block whose snapshot sees it), or NULL while unsealed.';

CREATE FUNCTION audit.unsealed(
    OUT events bigint,
    OUT oldest timestamptz,
    OUT oldest_age interval
)
    STABLE
    LANGUAGE sql
AS $$
    WITH last AS (
        SELECT coalesce((SELECT b.snapshot FROM audit.blocks AS b ORDER BY b.block_no DESC LIMIT 1),
                        audit.genesis_snapshot()) AS s
    )
    SELECT pg_catalog.count(*), pg_catalog.min(e.occurred_at), pg_catalog.clock_timestamp() - pg_catalog.min(e.occurred_at)
      FROM audit.events AS e, last
     WHERE (e.txid >= pg_catalog.pg_snapshot_xmax(last.s) OR e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(last.s))))
       AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, last.s)
$$;
COMMENT ON FUNCTION audit.unsealed() IS 'How many committed events no block holds yet, and the age of the oldest.';

CREATE FUNCTION audit.verify(tenant uuid DEFAULT NULL)
    RETURNS TABLE (
        ok boolean,
        blocks bigint,
        events bigint,
        unsealed bigint,
        unsealed_age interval,
        bad_block bigint,
        bad_event bigint,
        bad_event_id uuid,
        problem text
    )
    STABLE
    LANGUAGE plpgsql
AS $$
-- The parameter is named tenant, as SPEC §3.4 writes the signature; it is always qualified here.
DECLARE
    v_block audit.blocks;
    v_prev_snapshot pg_snapshot := audit.genesis_snapshot();
    v_prev_hash bytea := pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
    v_prev_total bigint := 0;
    v_status text;
    v_count bigint;
    v_first bigint;
    v_last bigint;
    v_bad bigint;
    v_root bytea;
    v_tenant uuid;
    v_n bigint;
    v_stored bigint;
    v_by_tenant uuid[];
    v_tenant_hashes bytea[];
    -- tenant mode: the tenant's events grouped by block, in block order
    v_g_block bigint[];
    v_g_count bigint[];
    v_g_first bigint[];
    v_g_last bigint[];
    v_g_root bytea[];
    v_g_bad bigint[];
    v_g integer := 1;
BEGIN
    ok := true;
    blocks := 0;
    events := 0;
    SELECT u.events, u.oldest_age INTO unsealed, unsealed_age FROM audit.unsealed() AS u;

    IF verify.tenant IS NOT NULL THEN
        SELECT pg_catalog.array_agg(g.blk ORDER BY g.blk), pg_catalog.array_agg(g.n ORDER BY g.blk),
               pg_catalog.array_agg(g.first ORDER BY g.blk), pg_catalog.array_agg(g.last ORDER BY g.blk),
               pg_catalog.array_agg(g.root ORDER BY g.blk), pg_catalog.array_agg(g.bad ORDER BY g.blk)
          INTO v_g_block, v_g_count, v_g_first, v_g_last, v_g_root, v_g_bad
          FROM (SELECT x.blk, pg_catalog.count(*) AS n, pg_catalog.min(x.pk_event) AS first,
                       pg_catalog.max(x.pk_event) AS last,
                       audit.merkle_root(pg_catalog.array_agg(x.event_hash ORDER BY x.pk_event)) AS root,
                       pg_catalog.min(x.pk_event) FILTER (WHERE x.bad) AS bad
                  FROM (SELECT e.pk_event, e.event_hash, audit.event_block(e.txid) AS blk,
                               audit.event_hash(e) IS DISTINCT FROM e.event_hash AS bad
                          FROM audit.events AS e
                         WHERE e.tenant_id = verify.tenant) AS x
                 WHERE x.blk IS NOT NULL
                 GROUP BY x.blk) AS g;
        v_g_block := coalesce(v_g_block, '{}');
    END IF;

    FOR v_block IN SELECT * FROM audit.blocks AS b ORDER BY b.block_no LOOP
        bad_block := v_block.block_no;
        IF v_block.block_no <> blocks + 1 THEN
            bad_block := blocks + 1;
            problem := pg_catalog.format('block %s is missing: the block after %s is %s', blocks + 1, blocks, v_block.block_no);
        ELSIF audit.block_hash(v_block) IS DISTINCT FROM v_block.block_hash THEN
            problem := pg_catalog.format('block %s was altered: its hash does not match its columns', v_block.block_no);
        ELSIF v_block.prev_hash IS DISTINCT FROM v_prev_hash THEN
            problem := pg_catalog.format('block %s does not chain to block %s: prev_hash differs', v_block.block_no, blocks);
        ELSE
            v_status := audit.block_signature_status(v_block.block_no);
            IF v_status = 'unknown_key' THEN
                problem := pg_catalog.format('block %s is signed with key %s, which the ledger does not know',
                                             v_block.block_no, v_block.key_id);
            ELSIF v_status IS DISTINCT FROM 'valid' THEN
                problem := pg_catalog.format('block %s has an invalid signature for key %s', v_block.block_no, v_block.key_id);
            ELSIF v_block.snap_xmax < pg_catalog.pg_snapshot_xmax(v_prev_snapshot)
                  OR EXISTS (SELECT 1 FROM pg_catalog.pg_snapshot_xip(v_block.snapshot) AS x
                              WHERE pg_catalog.pg_visible_in_snapshot(x, v_prev_snapshot)) THEN
                problem := pg_catalog.format('block %s''s snapshot does not contain block %s''s', v_block.block_no, blocks);
            ELSIF v_block.total_events <> v_prev_total + v_block.event_count THEN
                problem := pg_catalog.format('block %s''s running total %s should be %s', v_block.block_no,
                                             v_block.total_events, v_prev_total + v_block.event_count);
            END IF;
        END IF;
        IF problem IS NOT NULL THEN
            ok := false;
            RETURN NEXT;
            RETURN;
        END IF;

        IF verify.tenant IS NULL THEN
            SELECT pg_catalog.count(*), pg_catalog.min(m.pk_event), pg_catalog.max(m.pk_event),
                   audit.merkle_root(pg_catalog.array_agg(m.event_hash ORDER BY m.pk_event)),
                   pg_catalog.min(m.pk_event) FILTER (WHERE audit.event_hash(m) IS DISTINCT FROM m.event_hash),
                   pg_catalog.array_agg(m.tenant_id ORDER BY m.tenant_id, m.pk_event),
                   pg_catalog.array_agg(m.event_hash ORDER BY m.tenant_id, m.pk_event)
              INTO v_count, v_first, v_last, v_root, v_bad, v_by_tenant, v_tenant_hashes
              FROM audit.block_members(v_prev_snapshot, v_block.snapshot) AS m;
        ELSIF v_g <= pg_catalog.cardinality(v_g_block) AND v_g_block[v_g] = v_block.block_no THEN
            v_count := v_g_count[v_g];
            v_first := v_g_first[v_g];
            v_last := v_g_last[v_g];
            v_root := v_g_root[v_g];
            v_bad := v_g_bad[v_g];
            v_g := v_g + 1;
        ELSE
            v_count := 0;
            v_bad := NULL;
        END IF;

        IF v_bad IS NOT NULL THEN
            bad_event := v_bad;
            problem := pg_catalog.format('event %s in block %s was altered: its hash does not match its columns',
                                         v_bad, v_block.block_no);
        ELSIF verify.tenant IS NULL AND v_count <> v_block.event_count THEN
            -- Name the event when it stands out: outside the block's range, or a repeated or
            -- missing position within its transaction.
            SELECT m.pk_event INTO bad_event
              FROM audit.block_members(v_prev_snapshot, v_block.snapshot) AS m
             WHERE m.pk_event NOT BETWEEN v_block.first_event AND v_block.last_event
             ORDER BY m.pk_event LIMIT 1;
            IF bad_event IS NULL THEN
                SELECT d.pk_event INTO bad_event
                  FROM (SELECT m.pk_event,
                               pg_catalog.row_number() OVER (PARTITION BY m.txid, m.tx_seq ORDER BY m.pk_event) AS k
                          FROM audit.block_members(v_prev_snapshot, v_block.snapshot) AS m) AS d
                 WHERE d.k > 1
                 ORDER BY d.pk_event LIMIT 1;
            END IF;
            IF bad_event IS NOT NULL THEN
                problem := pg_catalog.format('event %s was added to block %s after it was sealed', bad_event, v_block.block_no);
            ELSIF v_count > v_block.event_count THEN
                problem := pg_catalog.format('block %s holds %s events but was sealed with %s: events were added',
                                             v_block.block_no, v_count, v_block.event_count);
            ELSE
                problem := pg_catalog.format('block %s holds %s events but was sealed with %s: events were deleted',
                                             v_block.block_no, v_count, v_block.event_count);
                -- A gap in a transaction's positions names where one was.
                SELECT problem || pg_catalog.format(' (event %s of transaction %s is missing)', s.seq, g.txid)
                  INTO problem
                  FROM (SELECT m.txid, pg_catalog.array_agg(m.tx_seq) AS seqs, pg_catalog.max(m.tx_seq) AS top
                          FROM audit.block_members(v_prev_snapshot, v_block.snapshot) AS m
                         GROUP BY m.txid) AS g
                 CROSS JOIN LATERAL pg_catalog.generate_series(1, g.top) AS s (seq)
                 WHERE NOT s.seq = ANY (g.seqs)
                 ORDER BY g.txid, s.seq
                 LIMIT 1;
                problem := coalesce(problem, pg_catalog.format(
                    'block %s holds %s events but was sealed with %s: events were deleted',
                    v_block.block_no, v_count, v_block.event_count));
            END IF;
        ELSIF verify.tenant IS NULL AND (v_first <> v_block.first_event OR v_last <> v_block.last_event) THEN
            problem := pg_catalog.format('block %s''s events span %s..%s but it was sealed over %s..%s',
                                         v_block.block_no, v_first, v_last, v_block.first_event, v_block.last_event);
        ELSIF verify.tenant IS NULL AND v_root IS DISTINCT FROM v_block.events_root THEN
            problem := pg_catalog.format('block %s''s events do not match its Merkle root: events were changed, swapped or replaced',
                                         v_block.block_no);
        END IF;
        IF problem IS NULL THEN
            -- Each tenant's events against the block's tenant entries.
            SELECT coalesce(c.tenant_id, s.tenant_id), c.n, s.event_count
              INTO v_tenant, v_n, v_stored
              FROM (SELECT r.group_id AS tenant_id, r.leaf_count::bigint AS n, r.root
                      FROM audit.merkle_roots(v_by_tenant, v_tenant_hashes) AS r
                     WHERE verify.tenant IS NULL
                    UNION ALL
                    SELECT verify.tenant, v_count, v_root
                     WHERE verify.tenant IS NOT NULL AND v_count > 0) AS c
              FULL JOIN (SELECT t.tenant_id, t.event_count, t.root
                           FROM audit.block_tenants AS t
                          WHERE t.block_no = v_block.block_no
                            AND (verify.tenant IS NULL OR t.tenant_id = verify.tenant)) AS s
                ON s.tenant_id = c.tenant_id
             WHERE c.n IS DISTINCT FROM s.event_count OR c.root IS DISTINCT FROM s.root
             ORDER BY 1
             LIMIT 1;
            IF FOUND THEN
                problem := pg_catalog.format('block %s: tenant %s has %s events there but the block records %s%s',
                                             v_block.block_no, v_tenant, coalesce(v_n, 0), coalesce(v_stored, 0),
                                             CASE WHEN v_n IS NOT DISTINCT FROM v_stored THEN ' with a different root' ELSE '' END);
            ELSIF (SELECT pg_catalog.count(*) FROM audit.block_tenants AS t WHERE t.block_no = v_block.block_no)
                  <> v_block.tenant_count
               OR (SELECT audit.merkle_root(coalesce(pg_catalog.array_agg(
                              audit.tenant_entry_hash(t.tenant_id, t.event_count, t.root) ORDER BY t.tenant_id), '{}'))
                     FROM audit.block_tenants AS t WHERE t.block_no = v_block.block_no)
                  IS DISTINCT FROM v_block.tenants_root THEN
                problem := pg_catalog.format('block %s''s tenant entries do not match its tenants_root', v_block.block_no);
            END IF;
        END IF;
        IF problem IS NOT NULL THEN
            ok := false;
            SELECT e.id INTO bad_event_id FROM audit.events AS e WHERE e.pk_event = bad_event LIMIT 1;
            RETURN NEXT;
            RETURN;
        END IF;

        blocks := blocks + 1;
        events := events + v_count;
        v_prev_snapshot := v_block.snapshot;
        v_prev_hash := v_block.block_hash;
        v_prev_total := v_block.total_events;
    END LOOP;
    bad_block := NULL;

    -- Events no block holds yet: their own hashes still have to match.
    SELECT pg_catalog.min(e.pk_event) INTO bad_event
      FROM audit.events AS e
     WHERE (e.txid >= pg_catalog.pg_snapshot_xmax(v_prev_snapshot)
            OR e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(v_prev_snapshot))))
       AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, v_prev_snapshot)
       AND (verify.tenant IS NULL OR e.tenant_id = verify.tenant)
       AND audit.event_hash(e) IS DISTINCT FROM e.event_hash;
    IF bad_event IS NOT NULL THEN
        ok := false;
        SELECT e.id INTO bad_event_id FROM audit.events AS e WHERE e.pk_event = bad_event LIMIT 1;
        problem := pg_catalog.format('unsealed event %s was altered: its hash does not match its columns', bad_event);
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION audit.verify(uuid) IS
    'Verifies the ledger (or one tenant''s part of it): hashes, Merkle roots, chain and signatures. One row: ok, '
    'what was checked, unsealed events, and the first bad block or event with the problem in one sentence.';

CREATE FUNCTION audit.checkpoint()
    RETURNS jsonb
    STABLE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'format', 'strata-ledger-checkpoint/1',
        'database', pg_catalog.current_database(),
        'block', b.block_no,
        'hash', pg_catalog.encode(b.block_hash, 'hex'),
        'size', b.total_events,
        'root', pg_catalog.encode(b.events_root, 'hex'),
        'tenants_root', pg_catalog.encode(b.tenants_root, 'hex'),
        'time', pg_catalog.to_char(b.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'key_id', b.key_id,
        'signature', pg_catalog.encode(b.signature, 'hex'))
      FROM audit.blocks AS b
     ORDER BY b.block_no DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION audit.checkpoint() IS
    'The signed head of the ledger (newest block: number, hash, size in events, root, time, key id, signature) as JSON, '
    'to keep outside the database; NULL before the first block.';

CREATE FUNCTION audit.verify_checkpoint(p_checkpoint jsonb)
    RETURNS TABLE (
        ok boolean,
        problem text
    )
    STABLE
    LANGUAGE plpgsql
AS $$
-- A document that is not a whole checkpoint is refused with an error, as `strata audit
-- verify --checkpoint` refuses it: compared as it is, a missing or mistyped field would read as
-- a rewritten or truncated ledger, a tamper alarm about a typo.
DECLARE
    v_block audit.blocks;
    v_no bigint;
    v_last bigint;
    v_problem text;
BEGIN
    v_problem := CASE
        WHEN p_checkpoint IS NULL OR pg_catalog.jsonb_typeof(p_checkpoint) <> 'object'
             OR p_checkpoint ->> 'format' IS DISTINCT FROM 'strata-ledger-checkpoint/1'
            THEN 'the checkpoint is not a strata-ledger-checkpoint/1 document'
        ELSE (SELECT CASE WHEN p_checkpoint ? f.key THEN pg_catalog.format('the checkpoint''s ''%s'' is %s', f.key, f.wanted)
                          ELSE pg_catalog.format('the checkpoint has no ''%s''', f.key) END
                FROM (VALUES (1, 'block', 'number', '^[1-9][0-9]{0,17}$', 'not a block number'),
                             (2, 'hash', 'string', '^[0-9a-f]{64}$', 'not 64 hex digits'),
                             (3, 'size', 'number', '^[0-9]{1,18}$', 'not a count of events'),
                             (4, 'root', 'string', '^[0-9a-f]{64}$', 'not 64 hex digits'),
                             (5, 'key_id', 'string', '^.+$', 'not a key id'),
                             (6, 'signature', 'string', '^[0-9a-f]{64}$', 'not 64 hex digits'))
                     AS f (n, key, json_type, pattern, wanted)
               WHERE pg_catalog.jsonb_typeof(p_checkpoint -> f.key) IS DISTINCT FROM f.json_type
                  OR (p_checkpoint ->> f.key) !~ f.pattern
               ORDER BY f.n
               LIMIT 1)
    END;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Pass the document audit.checkpoint() or strata audit checkpoint wrote, unchanged.';
    END IF;
    v_no := (p_checkpoint ->> 'block')::bigint;
    SELECT * INTO v_block FROM audit.blocks AS b WHERE b.block_no = v_no;
    IF v_block.block_no IS NULL THEN
        SELECT pg_catalog.max(b.block_no) INTO v_last FROM audit.blocks AS b;
        RETURN QUERY SELECT false, pg_catalog.format(
            'the ledger was truncated: the checkpoint covers block %s (%s events) but the ledger ends at %s',
            v_no, p_checkpoint ->> 'size', coalesce('block ' || v_last, 'no block'));
    ELSIF pg_catalog.encode(v_block.block_hash, 'hex') IS DISTINCT FROM p_checkpoint ->> 'hash'
       OR v_block.total_events IS DISTINCT FROM (p_checkpoint ->> 'size')::bigint
       OR pg_catalog.encode(v_block.events_root, 'hex') IS DISTINCT FROM p_checkpoint ->> 'root'
       OR v_block.key_id IS DISTINCT FROM p_checkpoint ->> 'key_id'
       OR pg_catalog.encode(v_block.signature, 'hex') IS DISTINCT FROM p_checkpoint ->> 'signature' THEN
        RETURN QUERY SELECT false, pg_catalog.format(
            'block %s differs from the checkpoint: the history up to it was rewritten', v_no);
    ELSE
        RETURN QUERY SELECT true, pg_catalog.format('block %s matches the checkpoint', v_no);
    END IF;
END
$$;
COMMENT ON FUNCTION audit.verify_checkpoint(jsonb) IS
    'Checks a checkpoint from audit.checkpoint() against the ledger: the block it names must still exist unchanged. '
    'A document that is not a whole checkpoint is an error (22023), not a finding.';

GRANT EXECUTE ON FUNCTION audit.block_signature_status(bigint), audit.event_block(xid8), audit.unsealed(),
    audit.verify(uuid), audit.checkpoint(), audit.verify_checkpoint(jsonb) TO strata_auditor;
