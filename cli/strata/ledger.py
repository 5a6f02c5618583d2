"""Independent verification of the audit ledger (SPEC §3.4).

Everything here is recomputed in Python from the columns PostgreSQL stores: leaf hashes from
each event's columns, which block holds which event from the block snapshots, RFC 6962 Merkle
roots, the hash chain and, when this connection may read the keys, the HMAC signatures. No
answer of the database's own verification (audit.verify) is used. The byte encodings are the
ones sql/audit/10_encoding.sql defines; tests/test_ledger_encoding.py pins the two together.

Events are streamed with COPY (FORMAT binary): each row arrives as a field count and fields,
each an int4 length and the column's binary send format, which is exactly the layout the
encoding is defined in. So an event's leaf input is a slice of its row as PostgreSQL sends it
(changed_fields is requested as its jsonb rendering, as the encoding defines it), and the work
per event is finding where its row ends, one sha256, and assigning it to its block.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.string import ByteaBinaryLoader

PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
ZERO_HASH = bytes(32)
EMPTY_ROOT = hashlib.sha256(b"").digest()
GENESIS = "3:3:"  # the snapshot before block 1: it sees no transaction
CHECKPOINT_FORMAT = "strata-ledger-checkpoint/1"

_NULL = b"\xff\xff\xff\xff"
_L2, _L4, _L8, _L16, _L32 = (n.to_bytes(4, "big") for n in (2, 4, 8, 16, 32))
_FIELDS_20 = (20).to_bytes(2, "big")
_TENANT_HEAD = b"\x00T\x00\x01" + (3).to_bytes(2, "big")
_BLOCK_HEAD = b"B"
_FIELDS_13 = (13).to_bytes(2, "big")
_LEAF_BASE_V1 = hashlib.sha256(b"\x00E\x00\x01" + _FIELDS_20)  # leaf prefix, tag, version 1, 20 fields

# COPY columns: the stored hash and encoding version, then the 20 encoded fields in order.
COPY_COLUMNS = (
    "event_hash, encoding, pk_event, id, tenant_id, txid, tx_seq, occurred_at, actor_id, correlation_id, "
    "causation_id, db_role, login_role, source_table, entity_type, entity_id, identifier, operation, "
    "old_data, new_data, pg_catalog.to_jsonb(changed_fields), metadata"
)
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# Each COPY row: int2 field count 22, event_hash (int4 32 + 32 bytes), encoding (int4 2 + 2 bytes),
# then the 20 encoded fields, of which the first six are fixed-size and NOT NULL:
# pk_event 8, id 16, tenant_id 16, txid 8, tx_seq 4, occurred_at 8 (84 bytes with their lengths).
_ROW_HEAD = (22).to_bytes(2, "big") + _L32
_FIXED_PREFIXES = _L8, _L16, _L16, _L8, _L4, _L8
_int4 = struct.Struct(">i").unpack_from


def _f(value: bytes | None) -> bytes:
    return _NULL if value is None else len(value).to_bytes(4, "big") + value


def event_encoding(fields: list[bytes | None], encoding: int = 1) -> bytes:
    """The canonical encoding of an event from its 20 field values (binary send formats, text in
    UTF-8, changed_fields as jsonb), in the order of sql/audit/10_encoding.sql."""
    if len(fields) != 20:
        raise ValueError("an event has 20 encoded fields")
    return b"E" + encoding.to_bytes(2, "big") + _FIELDS_20 + b"".join(_f(v) for v in fields)


def event_leaf(fields: list[bytes | None], encoding: int = 1) -> bytes:
    """sha256(0x00 || encoding): the RFC 6962 leaf hash stored as audit.events.event_hash."""
    return hashlib.sha256(b"\x00" + event_encoding(fields, encoding)).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes (odd last node carried up unchanged)."""
    if not leaves:
        return EMPTY_ROOT
    level = leaves
    sha = hashlib.sha256
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2])]
        if odd is not None:
            level.append(odd)
    return level[0]


def tenant_entry_hash(tenant: bytes, count: int, root: bytes) -> bytes:
    return hashlib.sha256(
        _TENANT_HEAD + _L16 + tenant + _L4 + count.to_bytes(4, "big") + _f(root)).digest()


@dataclass(frozen=True)
class Snapshot:
    text: str
    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(text, int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, txid: int) -> bool:
        return txid < self.xmax and txid not in self.xip

    def contains(self, other: Snapshot) -> bool:
        """Every transaction `other` sees, this one sees too."""
        return self.xmax >= other.xmax and not any(other.sees(x) for x in self.xip)


@dataclass
class Block:
    block_no: int
    encoding: int
    prev_hash: bytes
    snapshot: Snapshot
    sealed_at: bytes  # int8 microseconds since 2000-01-01 UTC, as stored
    sealed_by: str
    event_count: int
    total_events: int
    first_event: int
    last_event: int
    events_root: bytes
    tenant_count: int
    tenants_root: bytes
    key_id: str
    block_hash: bytes
    signature: bytes
    tenants: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)

    def encoding_bytes(self) -> bytes:
        return b"".join((
            _BLOCK_HEAD, self.encoding.to_bytes(2, "big"), _FIELDS_13,
            _L8, self.block_no.to_bytes(8, "big", signed=True),
            _f(self.prev_hash),
            _f(self.snapshot.text.encode()),
            _L8, self.sealed_at,
            _f(self.sealed_by.encode()),
            _L4, self.event_count.to_bytes(4, "big", signed=True),
            _L8, self.total_events.to_bytes(8, "big", signed=True),
            _L8, self.first_event.to_bytes(8, "big", signed=True),
            _L8, self.last_event.to_bytes(8, "big", signed=True),
            _f(self.events_root),
            _L4, self.tenant_count.to_bytes(4, "big", signed=True),
            _f(self.tenants_root),
            _f(self.key_id.encode()),
        ))

    def computed_hash(self) -> bytes:
        return hashlib.sha256(self.encoding_bytes()).digest()

    @property
    def sealed_time(self) -> datetime:
        return pg_time(self.sealed_at)


def pg_time(raw: bytes) -> datetime:
    return PG_EPOCH + timedelta(microseconds=int.from_bytes(raw, "big", signed=True))


@dataclass
class Problem:
    message: str
    block: int | None = None
    event: int | None = None  # pk_event
    event_id: str | None = None


@dataclass
class Report:
    ok: bool
    scope: str
    blocks: int = 0
    events: int = 0
    unsealed: int = 0
    oldest_unsealed: datetime | None = None
    unsealed_age_seconds: float | None = None
    signatures: str = "unchecked"  # "verified", "checked by the database", "unchecked"
    checkpoint: str | None = None
    problem: Problem | None = None
    last_block: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["oldest_unsealed"] = self.oldest_unsealed.isoformat() if self.oldest_unsealed else None
        return data


class _Found(Exception):
    """The first problem, in ledger order."""

    def __init__(self, problem: Problem):
        self.problem = problem


class _BlockState:
    """The events of one block seen so far in the stream."""

    __slots__ = ("leaves", "tenants", "bad", "positions")

    def __init__(self):
        self.leaves: list[tuple[int, bytes]] = []  # (pk_event, stored hash)
        self.tenants: dict[bytes, list[tuple[int, bytes]]] = {}
        self.bad: int | None = None  # smallest pk_event whose hash does not match its columns
        self.positions: list[tuple[int, bytes, bytes]] = []  # (pk_event, txid, tx_seq) as sent


def _int(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


def _raw_cursor(conn: psycopg.Connection):
    """A binary cursor that returns every column as the raw bytes of its binary send format."""
    cur = conn.cursor(binary=True)
    for type_name in ("uuid", "text", "int8", "int4", "int2", "bytea", "timestamptz"):
        cur.adapters.register_loader(psycopg.postgres.types.get(type_name).oid, ByteaBinaryLoader)
    return cur


def read_keys(conn: psycopg.Connection) -> dict[str, bytes] | None:
    """The signing keys, when this login may read them (owner or superuser); else None."""
    try:
        with conn.transaction():
            rows = conn.execute("SELECT key_id, secret FROM audit.signing_keys").fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return {k: bytes(s) for k, s in rows}


def load_checkpoint(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"the checkpoint is not JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"the checkpoint is not a {CHECKPOINT_FORMAT} document")
    # The same rules as audit.verify_checkpoint(): a mistyped field is an error, not a finding.
    for key, valid, wanted in _CHECKPOINT_FIELDS:
        if key not in data:
            raise ValueError(f"the checkpoint has no {key!r}")
        if not valid(data[key]):
            raise ValueError(f"the checkpoint's {key!r} is {wanted}")
    return data


def _whole(low: int) -> Callable[[object], bool]:
    return lambda v: type(v) is int and low <= v < 10**18


def _hex64(v: object) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None


_CHECKPOINT_FIELDS = (
    ("block", _whole(1), "not a block number"),
    ("hash", _hex64, "not 64 hex digits"),
    ("size", _whole(0), "not a count of events"),
    ("root", _hex64, "not 64 hex digits"),
    ("key_id", lambda v: isinstance(v, str) and v != "", "not a key id"),
    ("signature", _hex64, "not 64 hex digits"),
)


class Verifier:
    """One verification run over a connection (inside one REPEATABLE READ snapshot)."""

    def __init__(self, conn: psycopg.Connection, tenant: UUID | None = None, checkpoint: dict | None = None):
        self.conn = conn
        self.tenant = tenant
        self.checkpoint = checkpoint
        self.report = Report(ok=True, scope=str(tenant) if tenant else "all tenants")

    # -- loading ---------------------------------------------------------------------------

    def _load_blocks(self) -> list[Block]:
        cur = _raw_cursor(self.conn)
        cur.execute("""
            SELECT block_no, encoding, prev_hash, snapshot::text, sealed_at, sealed_by, event_count,
                   total_events, first_event, last_event, events_root, tenant_count, tenants_root,
                   key_id, block_hash, signature
              FROM audit.blocks ORDER BY block_no""")
        blocks = []
        for r in cur:
            blocks.append(Block(
                int.from_bytes(r[0], "big", signed=True), int.from_bytes(r[1], "big", signed=True), r[2],
                Snapshot.parse(r[3].decode()), r[4], r[5].decode(), int.from_bytes(r[6], "big", signed=True),
                int.from_bytes(r[7], "big", signed=True), int.from_bytes(r[8], "big", signed=True),
                int.from_bytes(r[9], "big", signed=True), r[10], int.from_bytes(r[11], "big", signed=True),
                r[12], r[13].decode(), r[14], r[15]))
        by_no = {b.block_no: b for b in blocks}
        cur.execute("SELECT block_no, tenant_id, event_count, root FROM audit.block_tenants")
        for block_no, tenant, count, root in cur:
            block = by_no.get(int.from_bytes(block_no, "big", signed=True))
            if block is not None:
                block.tenants[tenant] = (int.from_bytes(count, "big", signed=True), root)
        return blocks

    def _signature_status(self, block: Block, keys: dict[str, bytes] | None) -> str:
        if keys is not None:
            secret = keys.get(block.key_id)
            if secret is None:
                return "unknown_key"
            expected = hmac.new(secret, block.block_hash, hashlib.sha256).digest()
            return "valid" if hmac.compare_digest(expected, block.signature) else "invalid"
        return self.conn.execute("SELECT audit.block_signature_status(%s)", (block.block_no,)).fetchone()[0]

    # -- block-level checks (no events needed) --------------------------------------------

    def _block_problem(self, blocks: list[Block], keys: dict[str, bytes] | None,
                       known_key_ids: set[str]) -> tuple[int, Problem | None]:
        """Index of the first block with a problem of its own, and that problem."""
        prev_hash, prev_snapshot, prev_total = ZERO_HASH, Snapshot.parse(GENESIS), 0
        for i, b in enumerate(blocks):
            n = b.block_no
            if n != i + 1:
                return i, Problem(f"block {i + 1} is missing: the block after {i} is {n}", i + 1)
            if b.computed_hash() != b.block_hash:
                return i, Problem(f"block {n} was altered: its hash does not match its columns", n)
            if b.prev_hash != prev_hash:
                return i, Problem(f"block {n} does not chain to block {n - 1}: prev_hash differs", n)
            if b.key_id not in known_key_ids:
                return i, Problem(f"block {n} is signed with key {b.key_id}, which the ledger does not know", n)
            status = self._signature_status(b, keys)
            if status == "unknown_key":
                return i, Problem(f"block {n} is signed with key {b.key_id}, which the ledger does not know", n)
            if status != "valid":
                return i, Problem(f"block {n} has an invalid signature for key {b.key_id}", n)
            if not b.snapshot.contains(prev_snapshot):
                return i, Problem(f"block {n}'s snapshot does not contain block {n - 1}'s", n)
            if b.total_events != prev_total + b.event_count:
                return i, Problem(f"block {n}'s running total {b.total_events} should be {prev_total + b.event_count}", n)
            entries = sorted(b.tenants.items())
            tenants_root = merkle_root([tenant_entry_hash(t, c, r) for t, (c, r) in entries])
            if len(entries) != b.tenant_count or tenants_root != b.tenants_root:
                return i, Problem(f"block {n}'s tenant entries do not match its tenants_root", n)
            prev_hash, prev_snapshot, prev_total = b.block_hash, b.snapshot, b.total_events
        return len(blocks), None

    # -- per-block event checks ------------------------------------------------------------

    def _finish_block(self, b: Block, st: _BlockState) -> Problem | None:
        n = b.block_no
        if st.bad is not None:
            return Problem(f"event {st.bad} in block {n} was altered: its hash does not match its columns", n, st.bad)
        count = len(st.leaves)
        if self.tenant is None:
            if count != b.event_count:
                added = self._added_event(b, st)
                if added is not None:
                    return Problem(f"event {added} was added to block {n} after it was sealed", n, added)
                what = "added" if count > b.event_count else "deleted"
                message = f"block {n} holds {count} events but was sealed with {b.event_count}: events were {what}"
                if count < b.event_count:
                    message += self._missing_position(st)
                return Problem(message, n)
            st.leaves.sort()
            first, last = st.leaves[0][0], st.leaves[-1][0]
            if (first, last) != (b.first_event, b.last_event):
                return Problem(f"block {n}'s events span {first}..{last} but it was sealed over "
                               f"{b.first_event}..{b.last_event}", n)
            if merkle_root([h for _, h in st.leaves]) != b.events_root:
                return Problem(f"block {n}'s events do not match its Merkle root: events were changed, swapped or replaced", n)
        tenants = st.tenants if self.tenant is None else {self.tenant.bytes: st.tenants.get(self.tenant.bytes, [])}
        stored = b.tenants if self.tenant is None else {k: v for k, v in b.tenants.items() if k == self.tenant.bytes}
        for t in sorted(set(tenants) | set(stored)):
            leaves = sorted(tenants.get(t, []))
            have = (len(leaves), merkle_root([h for _, h in leaves])) if leaves else None
            want = stored.get(t)
            if have != want:
                differs = " with a different root" if have and want and have[0] == want[0] else ""
                return Problem(f"block {n}: tenant {UUID(bytes=t)} has {have[0] if have else 0} events there but the block "
                               f"records {want[0] if want else 0}{differs}", n)
        return None

    @staticmethod
    def _missing_position(st: _BlockState) -> str:
        """Where a transaction's positions 1..n have a gap, as ' (event k of transaction T is missing)'."""
        by_tx: dict[int, set[int]] = {}
        for _, txid, seq in st.positions:
            by_tx.setdefault(int.from_bytes(txid, "big"), set()).add(_int(seq))
        for txid in sorted(by_tx):
            seqs = by_tx[txid]
            missing = next((k for k in range(1, max(seqs) + 1) if k not in seqs), None)
            if missing is not None:
                return f" (event {missing} of transaction {txid} is missing)"
        return ""

    @staticmethod
    def _added_event(b: Block, st: _BlockState) -> int | None:
        """An event that cannot have been in the block when it was sealed: outside its pk_event
        range, or repeating another event's position in the same transaction."""
        outside = [pk for pk, _ in st.leaves if not b.first_event <= pk <= b.last_event]
        if outside:
            return min(outside)
        seen: set[tuple[bytes, bytes]] = set()
        repeated = []
        for pk, txid, seq in sorted(st.positions):
            if (txid, seq) in seen:
                repeated.append(pk)
            seen.add((txid, seq))
        return min(repeated) if repeated else None

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> Report:
        started = datetime.now(timezone.utc)
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            blocks = self._load_blocks()
            keys = read_keys(self.conn)
            known = {r[0] for r in self.conn.execute("SELECT key_id FROM audit.signing_key_ids()")}
            self.report.signatures = "verified" if keys is not None else "checked by the database"
            self.report.last_block = blocks[-1].block_no if blocks else None
            now = self.conn.execute("SELECT clock_timestamp()", binary=True).fetchone()[0]
            try:
                self._run(blocks, keys, known, now)
            except _Found as found:
                self.report.ok = False
                self.report.problem = found.problem
            if self.report.problem and self.report.problem.event is not None:
                row = self.conn.execute("SELECT id FROM audit.events WHERE pk_event = %s LIMIT 1",
                                        (self.report.problem.event,)).fetchone()
                self.report.problem.event_id = str(row[0]) if row else None
        self.report.seconds = (datetime.now(timezone.utc) - started).total_seconds()
        return self.report

    def _run(self, blocks: list[Block], keys, known: set[str], now: datetime) -> None:
        if self.checkpoint is not None:
            self._check_checkpoint(blocks, keys)
        bad_index, block_problem = self._block_problem(blocks, keys, known)
        good = blocks[:bad_index]
        xmaxes = [b.snapshot.xmax for b in good]
        xips = [b.snapshot.xip for b in good]
        states = [_BlockState() for _ in good]
        count = len(good)
        done = 0  # good[:done] are finished
        cached_txid, index = None, 0
        unsealed, oldest_unsealed = 0, None
        int4 = _int4
        from_bytes = int.from_bytes
        base = _LEAF_BASE_V1
        l8, l16, l4 = _L8, _L16, _L4
        # Events in transaction order: block k is complete once a transaction id reaches its
        # snapshot's xmax, so at most a few blocks are open at a time.
        where = "WHERE tenant_id = %s" if self.tenant else ""
        query = (f"COPY (SELECT {COPY_COLUMNS} FROM audit.events {where} ORDER BY txid, pk_event) "
                 "TO STDOUT (FORMAT binary)")
        for buf in self._copy_rows(query, (self.tenant,) if self.tenant else None):
            # A row: field count and event_hash (0-38), encoding (38-44), then the encoded
            # fields from 44: pk_event 48-56, id 60-76, tenant_id 80-96, txid 100-108,
            # tx_seq 112-116, occurred_at 120-128, then 14 variable fields.
            if buf[:6] != _ROW_HEAD:
                raise _Found(Problem("an event's stored hash is missing or malformed"))
            stored = buf[6:38]
            end = 128
            try:
                for _ in range(14):
                    n = int4(buf, end)[0]
                    end += 4 + n if n > 0 else 4
            except struct.error:
                end = -1
            h = base.copy()
            h.update(memoryview(buf)[44:end])
            ok = end == len(buf) and h.digest() == stored
            if not ok and (buf[38:44] != b"\x00\x00\x00\x02\x00\x01" or buf[44:48] != l8 or buf[56:60] != l16
                           or buf[76:80] != l16 or buf[96:100] != l8 or buf[108:112] != l4 or buf[116:120] != l8):
                # Not the fixed layout: an unknown encoding version, or NULL in a NOT NULL column.
                raise _Found(Problem("an event row does not have the layout of encoding 1 (a NOT NULL column "
                                     "was emptied or the encoding column changed)", None))
            if end != len(buf):
                raise _Found(Problem("the ledger returned an event row this verifier cannot read"))
            pk = from_bytes(buf[48:56], "big", signed=True)
            txid_raw = buf[100:108]
            if txid_raw != cached_txid:
                txid = from_bytes(txid_raw, "big")
                while done < count and txid >= xmaxes[done]:
                    self._finish(good[done], states[done])
                    done += 1
                index = bisect.bisect_right(xmaxes, txid)
                while index < count and txid in xips[index]:
                    index += 1
                cached_txid = txid_raw
            if index < count:
                st = states[index]
                leaf = (pk, stored)
                st.leaves.append(leaf)
                tenant = buf[80:96]
                tenant_leaves = st.tenants.get(tenant)
                if tenant_leaves is None:
                    st.tenants[tenant] = [leaf]
                else:
                    tenant_leaves.append(leaf)
                st.positions.append((pk, txid_raw, buf[112:116]))
                if not ok and (st.bad is None or pk < st.bad):
                    st.bad = pk
            elif block_problem is not None:
                continue  # held by the first bad block or a later one: that block is reported
            else:
                if not ok:
                    raise _Found(Problem(f"unsealed event {pk} was altered: its hash does not match its columns", None, pk))
                unsealed += 1
                occurred = pg_time(buf[120:128])
                if oldest_unsealed is None or occurred < oldest_unsealed:
                    oldest_unsealed = occurred
        while done < count:
            self._finish(good[done], states[done])
            done += 1
        if block_problem is not None:
            raise _Found(block_problem)
        self.report.unsealed = unsealed
        self.report.oldest_unsealed = oldest_unsealed
        if oldest_unsealed is not None:
            self.report.unsealed_age_seconds = max(0.0, (now - oldest_unsealed).total_seconds())

    def _copy_rows(self, query: str, params):
        """The rows of a COPY ... (FORMAT binary), each as bytes starting at its field count.
        PostgreSQL sends one row per CopyData message; the header and trailer are left out."""
        cur = self.conn.cursor()
        with cur.copy(query, params) as copy:
            first = True
            for chunk in copy:
                data = bytes(chunk)
                if first:
                    if not data.startswith(COPY_SIGNATURE):
                        raise _Found(Problem("the database did not send a binary COPY stream"))
                    data = data[19 + _int4(data, 15)[0]:]
                    first = False
                    if not data:
                        continue
                if data == b"\xff\xff":
                    continue
                yield data

    def _finish(self, block: Block, st: _BlockState) -> None:
        problem = self._finish_block(block, st)
        if problem is not None:
            raise _Found(problem)
        self.report.blocks += 1
        self.report.events += len(st.leaves)

    def _check_checkpoint(self, blocks: list[Block], keys: dict[str, bytes] | None) -> None:
        cp = self.checkpoint
        number = int(cp["block"])
        block = blocks[number - 1] if 0 < number <= len(blocks) and blocks[number - 1].block_no == number else None
        if block is None:
            end = f"block {blocks[-1].block_no}" if blocks else "no block"
            raise _Found(Problem(f"the ledger was truncated: the checkpoint covers block {number} ({cp['size']} events) "
                                 f"but the ledger ends at {end}", number))
        if keys is not None:
            secret = keys.get(cp["key_id"])
            expected = hmac.new(secret, bytes.fromhex(cp["hash"]), hashlib.sha256).hexdigest() if secret else None
            if expected is None or not hmac.compare_digest(expected, cp["signature"]):
                raise _Found(Problem(f"the checkpoint's signature does not verify with key {cp['key_id']}: "
                                     "it was not exported from this ledger or was edited", number))
        if (block.block_hash.hex(), block.total_events, block.events_root.hex(), block.key_id, block.signature.hex()) != (
                cp["hash"], int(cp["size"]), cp["root"], cp["key_id"], cp["signature"]):
            raise _Found(Problem(f"block {number} differs from the checkpoint: the history up to it was rewritten", number))
        self.report.checkpoint = f"block {number} matches the checkpoint"


def verify(conn: psycopg.Connection, tenant: UUID | None = None, checkpoint: dict | None = None) -> Report:
    """Verify the ledger on `conn` (any login that may read it: strata_auditor, owner, superuser)."""
    return Verifier(conn, tenant, checkpoint).run()


def seal_what_committed(conn: psycopg.Connection) -> bool:
    """Seals every committed event now, in a transaction of its own, and says whether it did.
    CLI commands that write call it last: the commit-time seal leaves each transaction to the
    next one's, so in a quiet database the command's own events would otherwise wait, and after
    an hour `strata verify` would fail on them. Best effort, after the command's work has
    committed: a login that may not seal (only strata_owner may), a seal lock another session
    holds for longer than audit.seal()'s 10 s lock_timeout, or any other error leaves them to
    the next write or `strata audit seal`."""
    try:
        with conn.transaction():
            conn.execute("SELECT audit.seal()")
    except psycopg.Error:
        return False
    return True


def checkpoint(conn: psycopg.Connection) -> dict | None:
    """The signed head of the ledger, as audit.checkpoint() exports it."""
    row = conn.execute("SELECT audit.checkpoint()").fetchone()
    return row[0] if row else None


# Unsealed events older than this fail `strata verify`: under load the commit-time seal keeps
# them to about a second, and a quiet database is sealed by `strata audit seal` (cron) or tail.
MAX_UNSEALED_AGE_SECONDS = 3600


def findings(conn: psycopg.Connection) -> list[tuple[str, str, bool, str, str]]:
    """`strata verify`'s ledger findings as (check, object, ok, message, fix)."""
    if conn.execute("SELECT to_regclass('audit.events') IS NULL").fetchone()[0]:
        return [("installed", "audit.events", False, "the audit ledger is not installed", "run `strata migrate`")]
    try:
        report = verify(conn)
    except psycopg.errors.InsufficientPrivilege:
        return [("readable", "audit.events", False, "this login may not read the ledger",
                 "verify as a login granted strata_auditor, or as the owner")]
    result = []
    if report.ok:
        result.append(("chain verifies", "audit.events", True,
                       f"{report.blocks} blocks, {report.events} events; signatures {report.signatures}", ""))
    else:
        p = report.problem
        where = f"block {p.block}" if p.block else "audit.events"
        result.append(("chain verifies", where, False, p.message,
                       "run `strata audit verify` for details, and find out who changed the ledger"))
        return result
    age = report.unsealed_age_seconds
    message = (f"{report.unsealed} events wait for a block, the oldest for {age:.0f} s" if report.unsealed
               else "every committed event is sealed")
    fresh = age is None or age <= MAX_UNSEALED_AGE_SECONDS
    result.append(("events sealed", "audit.blocks", fresh, message,
                   "" if fresh else "run `strata audit seal` (or schedule it); writes also seal at commit"))
    return result
