-- requires: 0002_audit_ledger

/* The canonical byte encodings the ledger hashes, version 1. cli/strata/ledger.py rebuilds
   them byte for byte; tests/test_ledger_encoding.py pins both against each other. Never edit
   a version-1 definition: a new encoding gets a new version number next to this one.

   A record is: one tag byte, int2 encoding version, int2 field count, then each field as
   int4 byte length followed by the bytes (length -1 and no bytes for NULL). This is the tuple
   layout of COPY ... (FORMAT binary). Every integer is big-endian. Field bytes are the
   column's PostgreSQL binary send format, with text always in UTF-8:

     bigint, integer, smallint   8, 4, 2 bytes, two's complement
     xid8                        8 bytes, unsigned
     uuid                        the 16 bytes
     timestamptz                 8 bytes: microseconds since 2000-01-01 00:00:00 UTC
     text                        UTF-8 bytes
     jsonb                       0x01 then the jsonb text in UTF-8. jsonb text is canonical for
                                 a stored value: keys sorted (shorter first, then bytewise) and
                                 unique, separators ", " and ": ", numbers as numeric prints them
                                 (1.50 stays 1.50, 1e2 is stored as 100), strings escaped as
                                 \" \\ \b \f \n \r \t and \u00xx below 0x20, other characters as
                                 UTF-8
     text[] (changed_fields)     encoded as its jsonb array (to_jsonb)
     bytea (hashes)              the bytes
     pg_snapshot                 its text form xmin:xmax:xip,... in UTF-8

   Nothing here reads a session setting: no text output of timestamps or floats, no client
   encoding (convert_to, not textsend), no backslash literals (decode, not '\x..').

   Event ('E', 20 fields): pk_event, id, tenant_id, txid, tx_seq, occurred_at, actor_id,
     correlation_id, causation_id, db_role, login_role, source_table, entity_type, entity_id,
     identifier, operation, old_data, new_data, changed_fields, metadata.
     event_hash = sha256(0x00 || encoding): the RFC 6962 leaf hash.
   Tenant entry ('T', 3 fields): tenant_id, event_count (int4), root (bytea).
     Its leaf hash sha256(0x00 || encoding) is a leaf of the block's tenants_root.
   Block ('B', 13 fields): block_no, prev_hash, snapshot, sealed_at, sealed_by, event_count
     (int4), total_events, first_event, last_event, events_root, tenant_count (int4),
     tenants_root, key_id.  block_hash = sha256(encoding); signature = HMAC-SHA256(key, block_hash).
   Merkle trees are RFC 6962: leaf hashes as above, node = sha256(0x01 || left || right),
   the left subtree holding the largest power of two smaller than the leaf count; the root of
   no leaves is sha256 of nothing. */

/* Fields are written with array_send(ARRAY[...]::bytea[]) minus its 20-byte header: the
   binary array format writes each element as int4 length (-1 for NULL) then its bytes, which is
   the field layout above, and computes every field exactly once. (The field count is written
   by each caller as a constant: referring to the array twice here would stop PostgreSQL from
   inlining this function, and then every call would be planned anew.) */
CREATE FUNCTION audit.enc_fields(p_fields bytea[])
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.substr(pg_catalog.array_send(p_fields), 21)
$$;
COMMENT ON FUNCTION audit.enc_fields(bytea[]) IS
    'The fields of a ledger record after its field count: each as int4 big-endian length and bytes (-1 and nothing for NULL).';

CREATE FUNCTION audit.enc_text(p_value text)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.convert_to(p_value, 'UTF8')
$$;
COMMENT ON FUNCTION audit.enc_text(text) IS 'A text field of a ledger encoding: its UTF-8 bytes, whatever the client encoding.';

CREATE FUNCTION audit.enc_jsonb(p_value jsonb)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.decode('01', 'hex') || pg_catalog.convert_to(p_value::text, 'UTF8')
$$;
COMMENT ON FUNCTION audit.enc_jsonb(jsonb) IS
    'A jsonb field of a ledger encoding: 0x01 then the canonical jsonb text in UTF-8 (jsonb''s binary send format).';

CREATE FUNCTION audit.event_encoding(p_event audit.events)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.decode('45', 'hex')
        || pg_catalog.int2send(p_event.encoding)
        || pg_catalog.int2send(20::smallint)
        || audit.enc_fields(ARRAY[
            pg_catalog.int8send(p_event.pk_event),
            pg_catalog.uuid_send(p_event.id),
            pg_catalog.uuid_send(p_event.tenant_id),
            pg_catalog.xid8send(p_event.txid),
            pg_catalog.int4send(p_event.tx_seq),
            pg_catalog.timestamptz_send(p_event.occurred_at),
            pg_catalog.uuid_send(p_event.actor_id),
            pg_catalog.uuid_send(p_event.correlation_id),
            pg_catalog.uuid_send(p_event.causation_id),
            audit.enc_text(p_event.db_role),
            audit.enc_text(p_event.login_role),
            audit.enc_text(p_event.source_table),
            audit.enc_text(p_event.entity_type),
            pg_catalog.uuid_send(p_event.entity_id),
            audit.enc_text(p_event.identifier),
            audit.enc_text(p_event.operation),
            audit.enc_jsonb(p_event.old_data),
            audit.enc_jsonb(p_event.new_data),
            audit.enc_jsonb(pg_catalog.to_jsonb(p_event.changed_fields)),
            audit.enc_jsonb(p_event.metadata)])
$$;
COMMENT ON FUNCTION audit.event_encoding(audit.events) IS
    'The canonical bytes of an event (encoding 1): every column but event_hash, independent of session settings.';

CREATE FUNCTION audit.event_hash(p_event audit.events)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.sha256(pg_catalog.decode('00', 'hex') || audit.event_encoding(p_event))
$$;
COMMENT ON FUNCTION audit.event_hash(audit.events) IS
    'The RFC 6962 leaf hash of an event: sha256(0x00 || audit.event_encoding(event)).';

CREATE FUNCTION audit.tenant_entry_hash(p_tenant_id uuid, p_event_count integer, p_root bytea)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.sha256(
        pg_catalog.decode('005400010003', 'hex')
        || audit.enc_fields(ARRAY[pg_catalog.uuid_send(p_tenant_id), pg_catalog.int4send(p_event_count), p_root]))
$$;
COMMENT ON FUNCTION audit.tenant_entry_hash(uuid, integer, bytea) IS
    'The leaf hash of one tenant''s entry in a block''s tenants_root: tenant, event count and the root of its events.';

CREATE FUNCTION audit.block_encoding(p_block audit.blocks)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.decode('42', 'hex')
        || pg_catalog.int2send(p_block.encoding)
        || pg_catalog.int2send(13::smallint)
        || audit.enc_fields(ARRAY[
            pg_catalog.int8send(p_block.block_no),
            p_block.prev_hash,
            audit.enc_text(p_block.snapshot::text),
            pg_catalog.timestamptz_send(p_block.sealed_at),
            audit.enc_text(p_block.sealed_by),
            pg_catalog.int4send(p_block.event_count),
            pg_catalog.int8send(p_block.total_events),
            pg_catalog.int8send(p_block.first_event),
            pg_catalog.int8send(p_block.last_event),
            p_block.events_root,
            pg_catalog.int4send(p_block.tenant_count),
            p_block.tenants_root,
            audit.enc_text(p_block.key_id)])
$$;
COMMENT ON FUNCTION audit.block_encoding(audit.blocks) IS
    'The canonical bytes of a block (encoding 1): every column but snap_xmax, block_hash and signature.';

CREATE FUNCTION audit.block_hash(p_block audit.blocks)
    RETURNS bytea
    STABLE
    PARALLEL SAFE
    LANGUAGE sql
AS $$
    SELECT pg_catalog.sha256(audit.block_encoding(p_block))
$$;
COMMENT ON FUNCTION audit.block_hash(audit.blocks) IS 'sha256 of audit.block_encoding(block): what the signature signs and the next block chains to.';

/* RFC 6962 Merkle tree hash over leaf hashes. Pairing neighbours level by level and carrying
   an odd last node up unchanged gives exactly the RFC's split at the largest power of two. */
CREATE FUNCTION audit.merkle_root(p_leaf_hashes bytea[])
    RETURNS bytea
    IMMUTABLE
    STRICT
    PARALLEL SAFE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_level bytea[] := p_leaf_hashes;
BEGIN
    IF pg_catalog.cardinality(v_level) = 0 THEN
        RETURN pg_catalog.sha256(''::bytea);
    END IF;
    WHILE pg_catalog.cardinality(v_level) > 1 LOOP
        SELECT pg_catalog.array_agg(
                   CASE WHEN pair.n = 2 THEN pg_catalog.sha256(pg_catalog.decode('01', 'hex') || pair.bytes)
                        ELSE pair.bytes END
                   ORDER BY pair.g)
          INTO v_level
          FROM (SELECT (leaf.o - 1) / 2 AS g,
                       pg_catalog.count(*) AS n,
                       pg_catalog.string_agg(leaf.h, ''::bytea ORDER BY leaf.o) AS bytes
                  FROM pg_catalog.unnest(v_level) WITH ORDINALITY AS leaf (h, o)
                 GROUP BY (leaf.o - 1) / 2) AS pair;
    END LOOP;
    RETURN v_level[1];
END
$$;
COMMENT ON FUNCTION audit.merkle_root(bytea[]) IS
    'RFC 6962 Merkle tree hash over leaf hashes in the given order (node = sha256(0x01 || left || right)).';

/* Many Merkle trees at once: leaves tagged with their group (a tenant), in order within each
   group. Every level of every group is computed by one query, so sealing or checking a block
   of many tenants costs a query per level, not a call per tenant. Same trees as merkle_root(). */
CREATE FUNCTION audit.merkle_roots(p_groups uuid[], p_leaf_hashes bytea[])
    RETURNS TABLE (
        group_id uuid,
        leaf_count integer,
        root bytea
    )
    IMMUTABLE
    PARALLEL SAFE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_groups uuid[];
    v_hashes bytea[];
    v_positions integer[];
    v_widths integer[];
BEGIN
    SELECT pg_catalog.array_agg(x.g ORDER BY x.g, x.o), pg_catalog.array_agg(x.h ORDER BY x.g, x.o),
           pg_catalog.array_agg(x.i ORDER BY x.g, x.o), pg_catalog.array_agg(x.n ORDER BY x.g, x.o)
      INTO v_groups, v_hashes, v_positions, v_widths
      FROM (SELECT u.g, u.h, u.o,
                   (pg_catalog.row_number() OVER (PARTITION BY u.g ORDER BY u.o) - 1)::integer AS i,
                   (pg_catalog.count(*) OVER (PARTITION BY u.g))::integer AS n
              FROM ROWS FROM (pg_catalog.unnest(p_groups), pg_catalog.unnest(p_leaf_hashes))
                   WITH ORDINALITY AS u (g, h, o)) AS x;
    IF v_groups IS NULL THEN
        RETURN;
    END IF;
    -- Pair neighbours level by level; an odd last node moves up unchanged (RFC 6962).
    WHILE (SELECT pg_catalog.max(w) FROM pg_catalog.unnest(v_widths) AS w) > 1 LOOP
        SELECT pg_catalog.array_agg(y.g ORDER BY y.g, y.i), pg_catalog.array_agg(y.h ORDER BY y.g, y.i),
               pg_catalog.array_agg(y.i ORDER BY y.g, y.i), pg_catalog.array_agg(y.n ORDER BY y.g, y.i)
          INTO v_groups, v_hashes, v_positions, v_widths
          FROM (SELECT u.g, u.i / 2 AS i, (u.n + 1) / 2 AS n,
                       CASE WHEN pg_catalog.count(*) = 2
                            THEN pg_catalog.sha256(pg_catalog.decode('01', 'hex')
                                                   || pg_catalog.string_agg(u.h, ''::bytea ORDER BY u.i))
                            ELSE pg_catalog.string_agg(u.h, ''::bytea) END AS h
                  FROM ROWS FROM (pg_catalog.unnest(v_groups), pg_catalog.unnest(v_hashes),
                                  pg_catalog.unnest(v_positions), pg_catalog.unnest(v_widths)) AS u (g, h, i, n)
                 GROUP BY u.g, u.i / 2, u.n) AS y;
    END LOOP;
    RETURN QUERY
    SELECT r.g, c.n, r.h
      FROM ROWS FROM (pg_catalog.unnest(v_groups), pg_catalog.unnest(v_hashes)) AS r (g, h)
      JOIN (SELECT DISTINCT z.g, z.n
              FROM (SELECT x.g, (pg_catalog.count(*) OVER (PARTITION BY x.g))::integer AS n
                      FROM pg_catalog.unnest(p_groups) AS x (g)) AS z) AS c ON c.g = r.g
     ORDER BY r.g;
END
$$;
COMMENT ON FUNCTION audit.merkle_roots(uuid[], bytea[]) IS
    'RFC 6962 Merkle roots of many groups of leaf hashes at once (leaves in order within their group), with each group''s leaf count.';

GRANT EXECUTE ON FUNCTION audit.enc_fields(bytea[]), audit.enc_text(text), audit.enc_jsonb(jsonb),
    audit.event_encoding(audit.events), audit.event_hash(audit.events),
    audit.tenant_entry_hash(uuid, integer, bytea), audit.block_encoding(audit.blocks),
    audit.block_hash(audit.blocks), audit.merkle_root(bytea[]), audit.merkle_roots(uuid[], bytea[]) TO strata_auditor;
