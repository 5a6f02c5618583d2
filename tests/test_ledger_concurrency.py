"""Concurrent writers never fork or break the ledger: 16 connections mixing READ COMMITTED and
REPEATABLE READ, some transactions and savepoints rolled back, one tenant or fifty. Afterwards
every committed event is in exactly one block, no rolled-back event exists, and both verifiers
pass. Blocks are sealed during the run by the writers' own commits (no daemon).

Each scenario runs for STRATA_LEDGER_CONCURRENCY_SECONDS (default 8) seconds.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import IsolationLevel

from strata.ledger import GENESIS, Snapshot
from test_ledger_support import TENANTS, app_url_of, cli_verify, seal, setup, sql_verify, write

SECONDS = float(os.environ.get("STRATA_LEDGER_CONCURRENCY_SECONDS", "8"))
CONNECTIONS = 16


@dataclass
class Outcome:
    committed: set[uuid.UUID] = field(default_factory=set)  # items whose events must be sealed
    rolled_back: set[uuid.UUID] = field(default_factory=set)  # items that must leave no event
    expected_events: int = 0
    transactions: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def writer(url: str, n: int, tenants: list[uuid.UUID], deadline: float, out: Outcome) -> None:
    rng = random.Random(n)
    superuser = n % 4 != 3  # every fourth connection is a login granted strata_app
    level = IsolationLevel.READ_COMMITTED if n % 2 == 0 else IsolationLevel.REPEATABLE_READ
    try:
        with psycopg.connect(url if superuser else app_url_of(url)) as conn:
            conn.isolation_level = level
            k = 0
            while time.monotonic() < deadline:
                k += 1
                kept, dropped, events = [], [], 0
                try:
                    for i in range(rng.randint(1, 4)):
                        kept.append(write(conn, rng.choice(tenants), f"w{n}-{k}-{i}", {"n": n, "k": k}))
                        events += 1
                    if superuser and rng.random() < 0.4:
                        conn.execute("UPDATE ledger_test.tb_item SET price = price + 1, version = version + 1 "
                                     "WHERE id = %s", (kept[0],))
                        events += 1
                    if superuser and rng.random() < 0.2:
                        conn.execute("SELECT audit.log_event('item.checked', 'item', %s, 'ITM', NULL, '{}')", (kept[0],))
                        events += 1
                    if rng.random() < 0.2:
                        conn.execute("SAVEPOINT maybe")
                        dropped.append(write(conn, rng.choice(tenants), f"w{n}-{k}-sp"))
                        conn.execute("ROLLBACK TO SAVEPOINT maybe")
                        kept.append(write(conn, rng.choice(tenants), f"w{n}-{k}-after"))
                        events += 1
                    if rng.random() < 0.2:
                        conn.rollback()
                        dropped += kept
                        kept, events = [], 0
                    else:
                        conn.commit()
                except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                    conn.rollback()
                    dropped += kept
                    kept, events = [], 0
                with out.lock:
                    out.committed.update(kept)
                    out.rolled_back.update(dropped)
                    out.expected_events += events
                    out.transactions += 1
    except Exception as err:  # noqa: BLE001 - reported by the test
        with out.lock:
            out.errors.append(f"connection {n}: {type(err).__name__}: {err}")


@pytest.mark.parametrize("tenant_count", [1, 50])
def test_concurrent_writers_seal_every_committed_event_exactly_once(databases, tenant_count):
    url = databases.create(f"ledger_concurrent{tenant_count}")
    setup(url)
    tenants = TENANTS[:tenant_count]
    out = Outcome()
    deadline = time.monotonic() + SECONDS
    threads = [threading.Thread(target=writer, args=(url, n, tenants, deadline, out)) for n in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not out.errors, out.errors
    assert out.committed and out.rolled_back and out.transactions > 100

    with psycopg.connect(url, autocommit=True) as conn:
        sealed_during_run = conn.execute("SELECT count(*) FROM audit.blocks").fetchone()[0]
        assert sealed_during_run >= 2, "the writers' commits sealed blocks while they ran"
    seal(url)

    with psycopg.connect(url, autocommit=True) as conn:
        events = conn.execute("SELECT pk_event, txid::text, entity_id FROM audit.events").fetchall()
        blocks = [(n, Snapshot.parse(s), c) for n, s, c in conn.execute(
            "SELECT block_no, snapshot::text, event_count FROM audit.blocks ORDER BY block_no")]
    assert len(events) == out.expected_events
    entities = {e for _, _, e in events}
    assert out.committed <= entities, "every committed item has its events"
    assert not out.rolled_back & entities, "no rolled-back item left an event"

    # Exactly one block per event, computed here from the snapshots alone.
    holders: dict[int, list[int]] = {}
    for pk, txid, _ in events:
        t = int(txid)
        prev = Snapshot.parse(GENESIS)
        for number, snapshot, _ in blocks:
            if snapshot.sees(t) and not prev.sees(t):
                holders.setdefault(pk, []).append(number)
            prev = snapshot
    assert all(len(holders.get(pk, [])) == 1 for pk, _, _ in events), "an event in no block or in two"
    counts: dict[int, int] = {}
    for numbers in holders.values():
        counts[numbers[0]] = counts.get(numbers[0], 0) + 1
    assert counts == {number: count for number, _, count in blocks}

    row = sql_verify(url)
    assert (row["ok"], row["events"], row["unsealed"]) == (True, len(events), 0), row
    code, report = cli_verify(url)
    assert code == 0 and report["ok"] and report["events"] == len(events), report
