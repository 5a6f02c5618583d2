-- 0002 audit ledger: the tables of the tamper-evident ledger (SPEC §3.4).
-- depends: 0001_foundation
--
-- State only. The encoding, capture triggers, sealing, signing, verification, policies, grants
-- and comments live in sql/audit/ (see the header of sql/audit/00_ledger.sql for the design).
--
-- audit.events        one row per change or explicit event, hashed when written (leaf hash)
-- audit.blocks        sealed groups of committed events, chained by hash and signed
-- audit.block_tenants the Merkle root of each tenant's events in each block
-- audit.signing_keys  HMAC keys by id; owner only, never granted to anyone

CREATE TABLE audit.signing_keys (
    key_id text PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    secret bytea NOT NULL CHECK (octet_length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by text NOT NULL DEFAULT session_user,
    retired_at timestamptz
);
-- At most one key signs new blocks; retired keys stay so older blocks remain verifiable.
CREATE UNIQUE INDEX signing_keys_one_active_idx ON audit.signing_keys ((true)) WHERE retired_at IS NULL;

CREATE TABLE audit.blocks (
    block_no bigint PRIMARY KEY CHECK (block_no > 0),
    encoding smallint NOT NULL DEFAULT 1 CHECK (encoding = 1),
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    snapshot pg_snapshot NOT NULL,
    snap_xmax xid8 GENERATED ALWAYS AS (pg_catalog.pg_snapshot_xmax(snapshot)) STORED,
    sealed_at timestamptz NOT NULL,
    sealed_by text NOT NULL,
    event_count integer NOT NULL CHECK (event_count > 0),
    total_events bigint NOT NULL CHECK (total_events >= event_count),
    first_event bigint NOT NULL,
    last_event bigint NOT NULL CHECK (last_event >= first_event),
    events_root bytea NOT NULL CHECK (octet_length(events_root) = 32),
    tenant_count integer NOT NULL CHECK (tenant_count > 0),
    tenants_root bytea NOT NULL CHECK (octet_length(tenants_root) = 32),
    key_id text NOT NULL REFERENCES audit.signing_keys (key_id),
    block_hash bytea NOT NULL UNIQUE CHECK (octet_length(block_hash) = 32),
    signature bytea NOT NULL CHECK (octet_length(signature) = 32)
);
-- Finds the block that holds a transaction: the first block whose snapshot sees it.
CREATE INDEX blocks_snap_xmax_idx ON audit.blocks (snap_xmax, block_no);

CREATE TABLE audit.block_tenants (
    tenant_id uuid NOT NULL,
    block_no bigint NOT NULL REFERENCES audit.blocks (block_no),
    event_count integer NOT NULL CHECK (event_count > 0),
    root bytea NOT NULL CHECK (octet_length(root) = 32),
    PRIMARY KEY (tenant_id, block_no)
);
CREATE INDEX block_tenants_block_no_idx ON audit.block_tenants (block_no);
ALTER TABLE audit.block_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.block_tenants FORCE ROW LEVEL SECURITY;

-- No CHECK constraints here: PostgreSQL parses and compiles a table's CHECK expressions for
-- every INSERT statement, and every event is its own statement. audit.write_event() is the
-- only writer and builds valid rows (audit.log_event() validates what callers pass), and
-- verification rejects any row that is not what was hashed.
CREATE TABLE audit.events (
    pk_event bigint GENERATED ALWAYS AS IDENTITY,
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    encoding smallint NOT NULL DEFAULT 1,
    txid xid8 NOT NULL,
    tx_seq integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor_id uuid,
    correlation_id uuid NOT NULL,
    causation_id uuid,
    db_role text NOT NULL,
    login_role text NOT NULL,
    source_table text,
    entity_type text NOT NULL,
    entity_id uuid,
    identifier text,
    operation text NOT NULL,
    old_data jsonb,
    new_data jsonb,
    changed_fields text[],
    metadata jsonb,
    event_hash bytea NOT NULL,
    PRIMARY KEY (tenant_id, pk_event),
    UNIQUE (tenant_id, id)
);
-- Sealing and full verification read events by transaction id.
CREATE INDEX events_txid_idx ON audit.events (txid);
ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.events FORCE ROW LEVEL SECURITY;

-- The trigger functions that audit.enable_tracking() attaches to tracked tables. They are
-- state, not code layer: tables outside sql/ (a user's, a test's) may be tracked, and a
-- rebuild of the code layer must never have to drop their triggers. Each only hands the row
-- to audit.capture_change() (sql/audit/20_capture.sql), where the logic lives and may change.
-- SECURITY DEFINER: any login allowed to write a tracked table produces events, and nobody
-- needs privileges on the ledger.
CREATE FUNCTION audit.tg_tracked__capture_change()
    RETURNS trigger
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
BEGIN
    IF tg_op = 'INSERT' THEN
        PERFORM audit.capture_change(tg_op, tg_argv, NULL, pg_catalog.to_jsonb(NEW));
    ELSIF tg_op = 'UPDATE' THEN
        PERFORM audit.capture_change(tg_op, tg_argv, pg_catalog.to_jsonb(OLD), pg_catalog.to_jsonb(NEW));
    ELSE
        PERFORM audit.capture_change(tg_op, tg_argv, pg_catalog.to_jsonb(OLD), NULL);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION audit.tg_tracked__capture_truncate()
    RETURNS trigger
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM audit.capture_change(tg_op, tg_argv, NULL, NULL);
    RETURN NULL;
END
$$;
