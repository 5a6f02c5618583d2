"""Every tampering of issue 4 is detected by both verifiers, audit.verify() in SQL and
`strata audit verify` in Python, each naming the right event or block. Each case gets its own
database with the same three sealed blocks (test_ledger_support.sealed_ledger):

    block 1: one transaction, events 1-3 (tenant 1)
    block 2: three transactions, events 4-6 (tenants 1, 2, 3)
    block 3: two transactions of two events, events 7-10 (tenants 2 and 3)
"""

from __future__ import annotations

import json

import psycopg
import pytest

from test_ledger_support import (ACTOR, auditor_url_of, block_of, cli_verify, seal, sealed_ledger, sql_verify,
                                 tamper)


def assert_named(ledger_url: str, *, event: int | None = None, block: int | None = None, words: str = "",
                 cli_args: tuple[str, ...] = (), url: str | None = None) -> None:
    """Both verifiers fail and name the same event and/or block."""
    row = sql_verify(ledger_url)
    assert row["ok"] is False, row
    if event is not None:
        assert row["bad_event"] == event, row
    if block is not None:
        assert row["bad_block"] == block, row
    assert words in row["problem"], row

    code, report = cli_verify(url or ledger_url, *cli_args)
    assert code == 1, report
    assert report["ok"] is False
    problem = report["problem"]
    if event is not None:
        assert problem["event"] == event, problem
        assert problem["event_id"], problem
    if block is not None:
        assert problem["block"] == block, problem
    assert words in problem["message"], problem


def test_the_untouched_ledger_verifies_with_both(databases):
    ledger = sealed_ledger(databases, "tamper_none")
    row = sql_verify(ledger.url)
    assert (row["ok"], row["blocks"], row["events"], row["unsealed"]) == (True, 3, 10, 0), row
    code, report = cli_verify(ledger.url)
    assert code == 0 and report["ok"] and (report["blocks"], report["events"]) == (3, 10), report
    assert report["signatures"] == "verified"
    code, report = cli_verify(auditor_url_of(ledger.url))
    assert code == 0 and report["ok"] and report["signatures"] == "checked by the database", report


def test_update_of_new_data_names_the_event(databases):
    ledger = sealed_ledger(databases, "tamper_data")
    target = ledger.events[4]
    tamper(ledger.url, "UPDATE audit.events SET new_data = new_data || '{\"price\": 0}' WHERE pk_event = %s", (target,))
    assert_named(ledger.url, event=target, block=2, words="altered")


def test_update_of_the_actor_names_the_event(databases):
    ledger = sealed_ledger(databases, "tamper_actor")
    target = ledger.events[5]
    tamper(ledger.url, "UPDATE audit.events SET actor_id = %s WHERE pk_event = %s", (ACTOR, target))
    assert_named(ledger.url, event=target, block=2, words="altered")


def test_update_of_the_time_names_the_event(databases):
    ledger = sealed_ledger(databases, "tamper_time")
    target = ledger.events[1]
    tamper(ledger.url, "UPDATE audit.events SET occurred_at = occurred_at - interval '1 hour' WHERE pk_event = %s",
           (target,))
    assert_named(ledger.url, event=target, block=1, words="altered")


def test_update_that_also_rewrites_the_hash_names_the_block(databases):
    ledger = sealed_ledger(databases, "tamper_rehash")
    target = ledger.events[7]
    tamper(ledger.url, """UPDATE audit.events AS e SET new_data = '{"name": "forged"}'
                           WHERE pk_event = %s""", (target,))
    tamper(ledger.url, "UPDATE audit.events AS e SET event_hash = audit.event_hash(e) WHERE pk_event = %s", (target,))
    assert_named(ledger.url, block=3, words="Merkle root")


def test_delete_of_a_middle_event_names_its_block_and_position(databases):
    ledger = sealed_ledger(databases, "tamper_delete")
    tamper(ledger.url, "DELETE FROM audit.events WHERE pk_event = %s", (ledger.events[1],))
    assert_named(ledger.url, block=1, words="deleted (event 2 of transaction")


def test_delete_of_the_newest_event_names_the_last_block(databases):
    ledger = sealed_ledger(databases, "tamper_newest")
    tamper(ledger.url, "DELETE FROM audit.events WHERE pk_event = %s", (ledger.events[-1],))
    assert_named(ledger.url, block=3, words="deleted")


def test_newest_event_deleted_and_its_block_resealed_is_caught_by_the_checkpoint(databases, tmp_path):
    ledger = sealed_ledger(databases, "tamper_reseal")
    checkpoint = tmp_path / "checkpoint.json"
    result = _checkpoint(ledger.url, checkpoint)
    assert json.loads(checkpoint.read_text())["block"] == 3, result.stderr
    # The owner holds the key: delete the newest event, drop block 3 and seal again.
    tamper(ledger.url, f"""
        DELETE FROM audit.events WHERE pk_event = {ledger.events[-1]:d};
        DELETE FROM audit.block_tenants WHERE block_no = 3;
        DELETE FROM audit.blocks WHERE block_no = 3;""")
    assert seal(ledger.url)["last_block"] == 3
    # Consistent again, so only the checkpoint can tell.
    assert sql_verify(ledger.url)["ok"] is True
    assert cli_verify(ledger.url)[0] == 0
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        ok, problem = conn.execute("SELECT * FROM audit.verify_checkpoint(%s)", (checkpoint.read_text(),)).fetchone()
    assert not ok and "block 3 differs from the checkpoint" in problem
    code, report = cli_verify(ledger.url, "--checkpoint", str(checkpoint))
    assert code == 1 and report["problem"]["block"] == 3
    assert "differs from the checkpoint" in report["problem"]["message"]


def test_inserted_forged_event_is_named(databases):
    ledger = sealed_ledger(databases, "tamper_forge")
    original = ledger.events[4]
    # A well-formed event with a correct leaf hash, slipped into block 2's transaction.
    tamper(ledger.url, """
        DO $$
        DECLARE
            v audit.events;
        BEGIN
            SELECT * INTO v FROM audit.events WHERE pk_event = %s;
            v.pk_event := pg_catalog.nextval('audit.events_pk_event_seq');
            v.id := core.uuid_v7();
            v.tx_seq := v.tx_seq + 1;
            v.new_data := v.new_data || '{"note": "forged"}';
            v.event_hash := audit.event_hash(v);
            INSERT INTO audit.events OVERRIDING SYSTEM VALUE VALUES (v.*);
        END
        $$""".replace("%s", str(original)))
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        forged = conn.execute("SELECT max(pk_event) FROM audit.events").fetchone()[0]
    assert forged not in ledger.events
    assert_named(ledger.url, event=forged, block=2, words="added")


SWAP = """
UPDATE audit.events AS e
   SET tenant_id = o.tenant_id, txid = o.txid, tx_seq = o.tx_seq, occurred_at = o.occurred_at,
       actor_id = o.actor_id, correlation_id = o.correlation_id, causation_id = o.causation_id,
       db_role = o.db_role, login_role = o.login_role, source_table = o.source_table,
       entity_type = o.entity_type, entity_id = o.entity_id, identifier = o.identifier,
       operation = o.operation, old_data = o.old_data, new_data = o.new_data,
       changed_fields = o.changed_fields, metadata = o.metadata, event_hash = o.event_hash
  FROM audit.events AS o
 WHERE (e.pk_event, o.pk_event) IN ((%(a)s, %(b)s), (%(b)s, %(a)s))
"""


def test_two_events_swapped_names_the_first(databases):
    ledger = sealed_ledger(databases, "tamper_swap")
    a, b = ledger.events[6], ledger.events[8]
    tamper(ledger.url, SWAP, {"a": a, "b": b})
    assert_named(ledger.url, event=a, block=3, words="altered")


def test_two_events_swapped_with_rewritten_hashes_names_the_block(databases):
    ledger = sealed_ledger(databases, "tamper_swap_rehash")
    a, b = ledger.events[6], ledger.events[8]
    tamper(ledger.url, SWAP, {"a": a, "b": b})
    tamper(ledger.url, "UPDATE audit.events AS e SET event_hash = audit.event_hash(e) WHERE pk_event IN (%s, %s)", (a, b))
    assert block_of(ledger.url, a) == block_of(ledger.url, b) == 3
    assert_named(ledger.url, block=3, words="Merkle root")


def test_overwritten_signature_names_the_block_for_owner_and_auditor(databases):
    ledger = sealed_ledger(databases, "tamper_signature")
    tamper(ledger.url, "UPDATE audit.blocks SET signature = sha256('forged'::bytea) WHERE block_no = 2")
    assert_named(ledger.url, block=2, words="invalid signature")
    # An auditor cannot read the key: the database checks it, and the CLI says so.
    code, report = cli_verify(auditor_url_of(ledger.url))
    assert code == 1 and report["problem"]["block"] == 2 and report["signatures"] == "checked by the database"


def test_block_resigned_with_an_unknown_key_names_the_block(databases):
    ledger = sealed_ledger(databases, "tamper_rogue_key")
    tamper(ledger.url, """
        ALTER TABLE audit.blocks DROP CONSTRAINT blocks_key_id_fkey;
        UPDATE audit.blocks AS b SET key_id = 'rogue' WHERE block_no = 2;
        UPDATE audit.blocks AS b SET block_hash = audit.block_hash(b) WHERE block_no = 2;
        UPDATE audit.blocks AS b SET signature = public.hmac(b.block_hash, 'a rogue secret'::bytea, 'sha256')
         WHERE block_no = 2;""")
    assert_named(ledger.url, block=2, words="key rogue, which the ledger does not know")
    code, report = cli_verify(auditor_url_of(ledger.url))
    assert code == 1 and report["problem"]["block"] == 2 and "does not know" in report["problem"]["message"]


def _checkpoint(url: str, path) -> object:
    from conftest import run_cli

    result = run_cli("audit", "checkpoint", "--out", str(path), url=url)
    assert result.returncode == 0, result.stderr
    return result


def test_cut_off_tail_is_caught_by_the_checkpoint(databases, tmp_path):
    ledger = sealed_ledger(databases, "tamper_tail")
    checkpoint = tmp_path / "checkpoint.json"
    _checkpoint(ledger.url, checkpoint)
    tamper(ledger.url, """
        DELETE FROM audit.events AS e WHERE audit.event_block(e.txid) = 3;
        DELETE FROM audit.block_tenants WHERE block_no = 3;
        DELETE FROM audit.blocks WHERE block_no = 3;""")
    # What is left is consistent: without a checkpoint a cut-off tail cannot be seen.
    assert sql_verify(ledger.url)["ok"] is True
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        ok, problem = conn.execute("SELECT * FROM audit.verify_checkpoint(%s)", (checkpoint.read_text(),)).fetchone()
    assert not ok and "truncated" in problem and "ends at block 2" in problem
    code, report = cli_verify(ledger.url, "--checkpoint", str(checkpoint))
    assert code == 1 and report["problem"]["block"] == 3 and "ends at block 2" in report["problem"]["message"]


def test_truncate_of_the_ledger_is_caught_by_the_checkpoint(databases, tmp_path):
    ledger = sealed_ledger(databases, "tamper_truncate")
    checkpoint = tmp_path / "checkpoint.json"
    _checkpoint(ledger.url, checkpoint)
    tamper(ledger.url, "TRUNCATE audit.events, audit.block_tenants, audit.blocks")
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        ok, problem = conn.execute("SELECT * FROM audit.verify_checkpoint(%s)", (checkpoint.read_text(),)).fetchone()
    assert not ok and "ends at no block" in problem
    code, report = cli_verify(ledger.url, "--checkpoint", str(checkpoint))
    assert code == 1 and "truncated" in report["problem"]["message"]


def test_guard_refuses_changes_without_the_maintenance_switch(databases):
    ledger = sealed_ledger(databases, "tamper_guard")
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        for statement in ("UPDATE audit.events SET metadata = '{}'", "DELETE FROM audit.events",
                          "TRUNCATE audit.events", "DELETE FROM audit.blocks", "UPDATE audit.block_tenants SET root = root"):
            with pytest.raises(psycopg.errors.lookup("2F004"), match="append-only"):
                conn.execute(statement)
    assert sql_verify(ledger.url)["ok"] is True


@pytest.mark.parametrize("tenant_index, expect_ok", [(0, True), (1, False)])
def test_tenant_verification_reads_one_tenant_and_catches_its_changes(databases, tenant_index, expect_ok):
    from test_ledger_support import TENANTS

    ledger = sealed_ledger(databases, f"tamper_tenant{tenant_index}")
    # Change one of tenant 2's events (index 1 in TENANTS): its own check fails, tenant 1's passes.
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        target = conn.execute("SELECT min(pk_event) FROM audit.events WHERE tenant_id = %s", (TENANTS[1],)).fetchone()[0]
    tamper(ledger.url, "UPDATE audit.events SET identifier = 'ITM-x' WHERE pk_event = %s", (target,))
    tenant = TENANTS[tenant_index]
    row = sql_verify(ledger.url, tenant)
    code, report = cli_verify(ledger.url, "--tenant", str(tenant))
    assert row["ok"] is expect_ok and report["ok"] is expect_ok, (row, report)
    assert report["scope"] == str(tenant)
    if not expect_ok:
        assert row["bad_event"] == target and report["problem"]["event"] == target
    else:
        assert report["events"] == sql_verify(ledger.url, tenant)["events"] == 4  # block 1: 3, block 2: 1
