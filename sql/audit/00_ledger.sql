-- requires: 0002_audit_ledger

/* The audit ledger (SPEC §3.4): change data capture and a tamper-evident chain in one table.

   Design, in the order data flows:

   1. Capture (20_capture.sql). audit.enable_tracking(table) attaches an AFTER ROW trigger (two
      when the table has derived columns, whose changes alone are not events); it and
      audit.log_event() both call audit.write_event(), the only INSERT into audit.events.
      Each event records tenant, actor, correlation and causation ids (transaction-local
      settings strata.*), the top-level transaction id, its position in the transaction
      (tx_seq 1..n), the time, the database and login roles, the entity, the operation, old
      and new data (columns marked secret left out), changed fields and metadata.

   2. Hash at write time (10_encoding.sql). Each event's leaf hash is computed by the writing
      backend from the event's own columns: no shared row, no lock, no chain head. The bytes
      hashed are a canonical, versioned encoding (defined there) built from each column's
      PostgreSQL binary send format with text in UTF-8, so no session setting (TimeZone,
      DateStyle, extra_float_digits, client_encoding, lc_*) can change them and an outside
      verifier can rebuild them from the stored values.

   3. Seal by snapshot (30_seal.sql). A block records the transaction snapshot it was sealed
      with; it holds exactly the events whose transaction is visible in its snapshot and was
      not visible in the previous block's snapshot (how PgQ forms batches). Snapshots only
      grow, so every committed event lands in exactly one block whatever the commit order or
      isolation level, and events of transactions that roll back never exist. Each block has
      an RFC 6962 Merkle root over its events (in pk_event order), a Merkle root over
      per-tenant entries (tenant, count, root of that tenant's events: audit.block_tenants),
      the previous block's hash, and an HMAC-SHA256 signature by a key with an id.
      Sealing needs no daemon: a deferred trigger runs at the commit of a writing transaction
      (at most every strata.audit_seal_interval_ms per session, default 500), takes a
      try-lock, and seals what committed before it, leaving its own transaction to the next
      block; audit.seal() seals on demand.

   4. Verify (40_verify.sql). audit.verify() recomputes every leaf hash, every block's event
      set from the snapshots, the Merkle roots, the chain and the signatures, and names the
      first bad block or event. `strata audit verify` does the same in Python, reading stored
      columns only. A signed checkpoint (audit.checkpoint(), `strata audit checkpoint`) pins
      the head so that a cut-off or rewritten tail is detected too.

   Threat model. Nobody but strata_owner may change ledger tables, and a guard trigger stops
   even the owner unless strata.audit_maintenance is on, so mistakes are loud. An owner who
   means harm can rewrite rows, recompute hashes and, holding the keys, re-sign blocks: an
   exported checkpoint held outside the database is what detects that. Keys are readable by
   the owner (and superusers) only; no function returns one.

   Retention. Blocks are self-contained: a block is checked from its own rows, its events and
   the previous block's hash and snapshot. To archive, export blocks 1..N with their events
   and block_tenants rows (and a checkpoint of block N), then delete them under
   strata.audit_maintenance; verification then starts from the oldest remaining block, taking
   its prev_hash on trust or from the archive's checkpoint. For partitioning, audit.events can
   become a table partitioned by range of txid (block boundaries are txid ranges) without
   changing the encoding. */

COMMENT ON TABLE audit.events IS
    'The audit ledger: one row per captured change or explicit event, hashed when written, sealed into audit.blocks.';
COMMENT ON COLUMN audit.events.pk_event IS 'Position in the ledger (insertion order); covered by the hash.';
COMMENT ON COLUMN audit.events.id IS 'The public, time-ordered id of the event.';
COMMENT ON COLUMN audit.events.tenant_id IS
    'The tenant the event belongs to; 00000000-0000-0000-0000-000000000000 for events outside any tenant.';
COMMENT ON COLUMN audit.events.encoding IS 'Version of the canonical byte encoding the hash was computed over.';
COMMENT ON COLUMN audit.events.txid IS 'Top-level transaction id of the writer; decides the block that seals the event.';
COMMENT ON COLUMN audit.events.tx_seq IS 'Position of the event within its transaction, 1..n over committed events.';
COMMENT ON COLUMN audit.events.occurred_at IS 'When the event was written (clock time of the change).';
COMMENT ON COLUMN audit.events.actor_id IS 'The acting user, from strata.actor_id.';
COMMENT ON COLUMN audit.events.correlation_id IS
    'From strata.correlation_id; when none is set, one id generated per transaction.';
COMMENT ON COLUMN audit.events.causation_id IS 'The event or request that caused this one, from strata.causation_id.';
COMMENT ON COLUMN audit.events.db_role IS 'current_user when the event was written (strata_owner inside app functions).';
COMMENT ON COLUMN audit.events.login_role IS 'session_user: the login role of the connection that wrote the event.';
COMMENT ON COLUMN audit.events.source_table IS 'The tracked table for captured changes; NULL for explicit events.';
COMMENT ON COLUMN audit.events.entity_type IS 'What the event is about, such as user or order.';
COMMENT ON COLUMN audit.events.entity_id IS 'The entity''s public id.';
COMMENT ON COLUMN audit.events.identifier IS 'The entity''s business identifier at the time of the event.';
COMMENT ON COLUMN audit.events.operation IS 'insert, update, delete, truncate, noop, or a domain event such as order.cancelled.';
COMMENT ON COLUMN audit.events.old_data IS 'The row before the change, without excluded columns.';
COMMENT ON COLUMN audit.events.new_data IS 'The row after the change, or the payload of an explicit event.';
COMMENT ON COLUMN audit.events.changed_fields IS 'Columns an update changed, excluded (secret) columns included by name only.';
COMMENT ON COLUMN audit.events.metadata IS 'Extra context, such as the reason of a noop.';
COMMENT ON COLUMN audit.events.event_hash IS 'RFC 6962 leaf hash: sha256(0x00 || audit.event_encoding(event)).';

COMMENT ON TABLE audit.blocks IS
    'Sealed blocks of committed events: snapshot, Merkle roots, hash chain and HMAC signature.';
COMMENT ON COLUMN audit.blocks.snapshot IS
    'The snapshot the block was sealed with: it holds the events whose transaction this snapshot sees and the previous block''s does not.';
COMMENT ON COLUMN audit.blocks.snap_xmax IS 'xmax of the snapshot, to find the block of a transaction quickly.';
COMMENT ON COLUMN audit.blocks.prev_hash IS 'block_hash of the previous block (32 zero bytes for block 1).';
COMMENT ON COLUMN audit.blocks.total_events IS 'Events in this block and every block before it.';
COMMENT ON COLUMN audit.blocks.first_event IS 'Smallest pk_event in the block.';
COMMENT ON COLUMN audit.blocks.last_event IS 'Largest pk_event in the block.';
COMMENT ON COLUMN audit.blocks.events_root IS 'RFC 6962 Merkle root over the event hashes in pk_event order.';
COMMENT ON COLUMN audit.blocks.tenants_root IS 'RFC 6962 Merkle root over the block''s tenant entries in tenant_id order.';
COMMENT ON COLUMN audit.blocks.key_id IS 'The signing key that signed this block.';
COMMENT ON COLUMN audit.blocks.block_hash IS 'sha256 of audit.block_encoding(block); covers every other column.';
COMMENT ON COLUMN audit.blocks.signature IS 'HMAC-SHA256 of block_hash with the key key_id.';

COMMENT ON TABLE audit.block_tenants IS
    'Per block and tenant: the number of the tenant''s events and their Merkle root, so a tenant can be verified alone.';
COMMENT ON TABLE audit.signing_keys IS
    'HMAC keys that sign blocks. Owner only: never granted, never returned by any function.';

/* Who may do what. strata_app gets nothing here: events are written by triggers and core
   functions running as strata_owner. strata_auditor reads everything and runs verification.
   The owner's UPDATE/DELETE policies exist so that maintenance (archiving) is possible; the
   guard trigger below makes even that deliberate, and verification detects any change. */
REVOKE ALL ON audit.events, audit.blocks, audit.block_tenants, audit.signing_keys FROM PUBLIC;
GRANT SELECT ON audit.events, audit.blocks, audit.block_tenants TO strata_auditor;
-- NOTE: no grant on audit.signing_keys to anyone: only its owner may read keys.

CREATE POLICY events_select ON audit.events
    FOR SELECT TO strata_owner, strata_auditor
    USING (true);
CREATE POLICY events_insert ON audit.events
    FOR INSERT TO strata_owner
    WITH CHECK (true);
CREATE POLICY events_update ON audit.events
    FOR UPDATE TO strata_owner
    USING (true);
CREATE POLICY events_delete ON audit.events
    FOR DELETE TO strata_owner
    USING (true);

CREATE POLICY block_tenants_select ON audit.block_tenants
    FOR SELECT TO strata_owner, strata_auditor
    USING (true);
CREATE POLICY block_tenants_insert ON audit.block_tenants
    FOR INSERT TO strata_owner
    WITH CHECK (true);
CREATE POLICY block_tenants_update ON audit.block_tenants
    FOR UPDATE TO strata_owner
    USING (true);
CREATE POLICY block_tenants_delete ON audit.block_tenants
    FOR DELETE TO strata_owner
    USING (true);

/* Append-only guard: UPDATE, DELETE and TRUNCATE of ledger tables fail unless the session
   says, with SET LOCAL strata.audit_maintenance = 'on', that it means it. This stops
   mistakes, not the owner; verification is what catches a deliberate change. */
CREATE FUNCTION audit.tg_ledger__append_only()
    RETURNS trigger
    VOLATILE
    LANGUAGE plpgsql
AS $$
BEGIN
    IF pg_catalog.current_setting('strata.audit_maintenance', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'the audit ledger is append-only: % on % is refused', tg_op, tg_table_name
            USING ERRCODE = '2F004',
                  HINT = 'Archiving is deliberate maintenance: SET LOCAL strata.audit_maintenance = ''on'' first.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION audit.tg_ledger__append_only() IS
    'Refuses UPDATE, DELETE and TRUNCATE on ledger tables unless strata.audit_maintenance is on.';
-- Attached in 50_triggers.sql: the code layer is dropped file by file, so a trigger lives in a
-- later file than its function.
