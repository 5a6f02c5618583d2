"""The canonical encoding: SQL (sql/audit/10_encoding.sql) and Python (strata.ledger) produce the
same bytes, those bytes do not depend on session settings, and the Merkle trees are RFC 6962's."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from strata import ledger
from test_ledger_support import TENANTS, cli_verify, seal, setup, sql_verify

# Certificate Transparency's reference vectors: the leaves and the root for each tree size.
CT_INPUTS = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43", bytes(range(0x50, 0x58)),
             bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_merkle_roots_match_rfc6962_reference_vectors_in_python_and_sql(conn):
    leaves = [hashlib.sha256(b"\x00" + x).digest() for x in CT_INPUTS]
    assert ledger.merkle_root([]).hex() == hashlib.sha256(b"").hexdigest()
    for size, expected in enumerate(CT_ROOTS, start=1):
        assert ledger.merkle_root(leaves[:size]).hex() == expected
        assert conn.execute("SELECT audit.merkle_root(%s::bytea[])", (leaves[:size],)).fetchone()[0].hex() == expected
    assert conn.execute("SELECT audit.merkle_root('{}'::bytea[])").fetchone()[0] == hashlib.sha256(b"").digest()
    # Larger trees, odd sizes included, agree too.
    many = [hashlib.sha256(str(i).encode()).digest() for i in range(1000)]
    for size in (9, 13, 100, 1000):
        assert conn.execute("SELECT audit.merkle_root(%s::bytea[])", (many[:size],)).fetchone()[0] == \
            ledger.merkle_root(many[:size])


def test_merkle_roots_of_many_groups_match_one_tree_per_group(conn):
    import random

    rng = random.Random(7)
    groups = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(12)]
    sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 100]
    leaves = {g: [hashlib.sha256(f"{g}{i}".encode()).digest() for i in range(n)] for g, n in zip(groups, sizes)}
    flat = [(g, h) for g in groups for h in leaves[g]]
    rows = conn.execute("SELECT group_id, leaf_count, root FROM audit.merkle_roots(%s::uuid[], %s::bytea[])",
                        ([g for g, _ in flat], [h for _, h in flat])).fetchall()
    assert rows == sorted((g, len(leaves[g]), ledger.merkle_root(leaves[g])) for g in groups)
    assert conn.execute("SELECT count(*) FROM audit.merkle_roots('{}', '{}')").fetchone()[0] == 0


# One event written out by hand from the definition in 10_encoding.sql. The jsonb texts are the
# canonical forms PostgreSQL prints (keys shortest first, ", " and ": ", numbers as stored).
VECTOR = {
    "pk_event": 42,
    "id": uuid.UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    "tenant_id": TENANTS[0],
    "txid": 1234567,
    "tx_seq": 2,
    "occurred_at": datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=timezone.utc),
    "actor_id": uuid.UUID("00000000-0000-4000-8000-00000000a001"),
    "correlation_id": uuid.UUID("0190a1b2-0000-7000-8000-000000000001"),
    "causation_id": None,
    "db_role": "strata_owner",
    "login_role": "app_login",
    "source_table": "ledger_test.tb_item",
    "entity_type": "item",
    "entity_id": uuid.UUID("0190a1b2-0000-7000-8000-0000000000e1"),
    "identifier": "ITM-1",
    "operation": "update",
    "old_data": '{"a": 1, "name": "Zoë ☃", "price": 9.50}',
    "new_data": '{"a": 1, "name": "Zoë ☃ \\"q\\"\\n", "price": 10.00, "nested": {"k": [1, 2.5, null, true]}}',
    "changed_fields": ["name", "nested", "price"],
    "metadata": None,
}
# Written down once: a change to encoding 1 would make every existing ledger fail to verify.
PINNED_VECTOR_HASH = "61db4dda2a0f28965818cbb24d5c4f835766ae57c53ae52a87e5df66f1033a83"


def _vector_fields() -> list[bytes | None]:
    v = VECTOR
    micros = (v["occurred_at"] - datetime(2000, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    text = lambda s: None if s is None else s.encode()  # noqa: E731
    jsonb = lambda s: None if s is None else b"\x01" + s.encode()  # noqa: E731
    return [
        struct.pack(">q", v["pk_event"]), v["id"].bytes, v["tenant_id"].bytes, struct.pack(">Q", v["txid"]),
        struct.pack(">i", v["tx_seq"]), struct.pack(">q", micros), v["actor_id"].bytes, v["correlation_id"].bytes,
        None, text(v["db_role"]), text(v["login_role"]), text(v["source_table"]), text(v["entity_type"]),
        v["entity_id"].bytes, text(v["identifier"]), text(v["operation"]), jsonb(v["old_data"]),
        jsonb(v["new_data"]), jsonb(json.dumps(v["changed_fields"])), None,
    ]


VECTOR_SQL = """
SELECT audit.event_encoding(x.e), audit.event_hash(x.e), (x.e).old_data::text, (x.e).new_data::text
  FROM (SELECT ROW(%(pk_event)s, %(id)s, %(tenant_id)s, 1, %(txid)s::text::xid8, %(tx_seq)s, %(occurred_at)s,
                   %(actor_id)s, %(correlation_id)s, %(causation_id)s, %(db_role)s, %(login_role)s,
                   %(source_table)s, %(entity_type)s, %(entity_id)s, %(identifier)s, %(operation)s,
                   %(old_data)s::jsonb, %(new_data)s::jsonb, %(changed_fields)s::text[], %(metadata)s::jsonb,
                   NULL)::audit.events AS e) AS x
"""


@pytest.mark.parametrize("settings", [
    {},
    {"TimeZone": "America/New_York", "DateStyle": "SQL, DMY", "extra_float_digits": "-15",
     "IntervalStyle": "sql_standard", "bytea_output": "escape", "lc_numeric": "C"},
    {"TimeZone": "Asia/Kathmandu", "DateStyle": "German", "extra_float_digits": "3", "client_encoding": "UTF8",
     "standard_conforming_strings": "off"},
])
def test_sql_and_python_build_the_same_bytes_for_a_hand_written_event(conn, settings):
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    encoding, leaf, old_text, new_text = conn.execute(VECTOR_SQL, VECTOR).fetchone()
    # The jsonb texts written above are what PostgreSQL prints: they are canonical.
    assert (old_text, new_text) == (VECTOR["old_data"], VECTOR["new_data"])
    expected = ledger.event_encoding(_vector_fields())
    assert bytes(encoding) == expected
    assert bytes(leaf) == hashlib.sha256(b"\x00" + expected).digest() == ledger.event_leaf(_vector_fields())
    assert bytes(leaf).hex() == PINNED_VECTOR_HASH, "encoding 1 changed: old events would no longer verify"



TRICKY = [
    {"text": "plain ascii"},
    {"unicode": "Zoë, naïve, 東京, Ελλάδα, emoji 🦄🏳️‍🌈", "key 東": "value"},
    {"control": "tab\tnew\nline\rcr\u0001\u001f del\u007f", "quote": 'say "hi" \\ back\\slash /'},
    {"numbers": [0, -0, 1.5, 1.50, 0.1, 1e-7, 1e30, -2.5e-3, 123456789012345678901234567890.123456789,
                 3.141592653589793238462643383279]},
    {"nested": {"deep": {"deeper": [{"a": None}, [], {}, [[[]]]]}}, "nulls": [None, None], "bool": [True, False]},
    {"b": 1, "a": 2, "aa": 3, "ab": 4, "ba": 5, "": 6},
    [1, "two", {"three": 3}],
    "just a string",
    12.0,
    None,
]


@pytest.fixture(scope="module")
def tricky_ledger(databases):
    """Events holding awkward data, written under awkward session settings, then sealed."""
    url = databases.create("ledger_tricky")
    setup(url)
    settings = [
        {"TimeZone": "America/New_York", "DateStyle": "SQL, DMY"},
        {"TimeZone": "Pacific/Chatham", "DateStyle": "German", "extra_float_digits": "-15"},
        {"client_encoding": "LATIN1", "IntervalStyle": "postgres_verbose"},
        {"extra_float_digits": "3", "bytea_output": "escape", "standard_conforming_strings": "off"},
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        for i, data in enumerate(TRICKY):
            options = settings[i % len(settings)]
            with conn.transaction():
                for name, value in options.items():
                    conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                conn.execute("SELECT set_config('strata.tenant_id', %s, true)", (str(TENANTS[i % 3]),))
                # LATIN1 cannot carry the emoji: that session writes a Latin-1 subset.
                payload = {"latin": "Zoë naïve ½ ©"} if options.get("client_encoding") == "LATIN1" else data
                conn.execute("SELECT audit.log_event('note.added', 'note', core.uuid_v7(), %s, %s, %s)",
                             (f"NOTE-{i}", json.dumps(payload), json.dumps({"index": i, "payload": payload})))
        with conn.transaction():
            conn.execute("SET LOCAL TimeZone = 'Australia/Lord_Howe'")
            item = conn.execute("SELECT ledger_test.create_item(%s, 'tricky', %s)",
                                (TENANTS[0], json.dumps(TRICKY[4]))).fetchone()[0]
            conn.execute("SELECT set_config('strata.tenant_id', %s, true)", (str(TENANTS[0]),))
            conn.execute("""UPDATE ledger_test.tb_item SET data = %s, name = 'Zoë "q"' WHERE id = %s""",
                         (json.dumps(TRICKY[3]), item))
    seal(url)
    return url


@pytest.mark.parametrize("settings", [
    {"TimeZone": "America/New_York"},
    {"DateStyle": "SQL, DMY", "TimeZone": "Asia/Tokyo"},
    {"extra_float_digits": "-15", "IntervalStyle": "iso_8601", "DateStyle": "Postgres, MDY"},
    {"client_encoding": "LATIN1"},
])
def test_sql_recomputes_every_stored_hash_under_other_settings(tricky_ledger, settings):
    with psycopg.connect(tricky_ledger, autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        bad = conn.execute("SELECT count(*) FROM audit.events AS e WHERE audit.event_hash(e) <> e.event_hash").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM audit.events").fetchone()[0]
        row = conn.execute("SELECT ok, blocks, events, problem FROM audit.verify()").fetchone()
    assert bad == 0 and total == len(TRICKY) + 2
    assert row[:3] == (True, 1, total), row


def test_python_reproduces_every_hash_of_tricky_data(tricky_ledger):
    code, report = cli_verify(tricky_ledger)
    assert code == 0 and report["ok"] and report["events"] == len(TRICKY) + 2, report
    assert sql_verify(tricky_ledger)["ok"]


def test_python_builds_each_tricky_event_from_its_raw_columns(tricky_ledger):
    """Field by field, outside COPY: the column values as PostgreSQL sends them in binary."""
    columns = ("pk_event, id, tenant_id, txid, tx_seq, occurred_at, actor_id, correlation_id, causation_id, db_role, "
               "login_role, source_table, entity_type, entity_id, identifier, operation, old_data, new_data, "
               "to_jsonb(changed_fields), metadata, event_hash")
    with psycopg.connect(tricky_ledger, autocommit=True) as conn:
        cur = ledger._raw_cursor(conn)
        for name in ("xid8", "jsonb"):
            cur.adapters.register_loader(psycopg.postgres.types.get(name).oid, ledger.ByteaBinaryLoader)
        rows = cur.execute(f"SELECT {columns} FROM audit.events ORDER BY pk_event").fetchall()
    assert rows
    for row in rows:
        assert ledger.event_leaf(list(row[:20])) == row[20]
