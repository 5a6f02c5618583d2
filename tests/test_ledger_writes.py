"""What the ledger records, and no false alarms: session settings, many events in one
transaction, writers that are not the owner, key rotation, sealing without a daemon."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from conftest import run_cli
from test_ledger_support import (ACTOR, TENANTS, app_url_of, cli_verify, seal, setup, sql_verify, write)


@pytest.fixture(scope="module")
def ledger_db(databases):
    url = databases.create("ledger_writes")
    setup(url)
    return url


def events_of(conn, **where) -> list[dict]:
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    cur = conn.execute(f"SELECT * FROM audit.events WHERE {clause} ORDER BY pk_event", where)
    return [dict(zip([d.name for d in cur.description], r)) for r in cur.fetchall()]


def assert_verifies(url: str, events: int | None = None) -> None:
    seal(url)
    row = sql_verify(url)
    assert row["ok"] and row["unsealed"] == 0, row
    code, report = cli_verify(url)
    assert code == 0 and report["ok"] and report["unsealed"] == 0, report
    if events is not None:
        assert report["events"] == row["events"] == events


def test_insert_update_delete_truncate_are_captured_with_context(ledger_db):
    correlation, causation = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('strata.actor_id', %s, true), set_config('strata.correlation_id', %s, true),"
                         " set_config('strata.causation_id', %s, true)", (str(ACTOR), str(correlation), str(causation)))
            item = write(conn, TENANTS[4], "capture", {"k": 1})
            conn.execute("UPDATE ledger_test.tb_item SET price = 12.5, version = version + 1 WHERE id = %s", (item,))
            conn.execute("UPDATE ledger_test.tb_item SET secret = 'rotated' WHERE id = %s", (item,))
            conn.execute("UPDATE ledger_test.tb_item SET name = name WHERE id = %s", (item,))  # changes nothing
            conn.execute("DELETE FROM ledger_test.tb_item WHERE id = %s", (item,))
        rows = events_of(conn, entity_id=item)
    assert [r["operation"] for r in rows] == ["insert", "update", "update", "delete"]
    assert [r["tx_seq"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert (r["tenant_id"], r["actor_id"], r["correlation_id"], r["causation_id"]) == \
            (TENANTS[4], ACTOR, correlation, causation)
        assert (r["entity_type"], r["identifier"], r["source_table"]) == ("item", "ITM-capture", "ledger_test.tb_item")
        assert "secret" not in (r["old_data"] or {}) and "secret" not in (r["new_data"] or {})
    assert rows[0]["old_data"] is None and rows[0]["new_data"]["data"] == {"k": 1}
    assert rows[1]["changed_fields"] == ["price", "version"] and rows[1]["old_data"]["price"] == 9.99
    assert rows[2]["changed_fields"] == ["secret"], "a secret's change is recorded, its value is not"
    assert rows[3]["new_data"] is None and rows[3]["old_data"]["name"] == "capture"
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("SET ROLE strata_owner")
        conn.execute("CREATE TABLE ledger_test.scratch (x integer)")
        conn.execute("RESET ROLE")
        conn.execute("SELECT audit.enable_tracking('ledger_test.scratch', 'scratch thing')")
        conn.execute("INSERT INTO ledger_test.scratch VALUES (1)")
        conn.execute("TRUNCATE ledger_test.scratch")
        scratch = events_of(conn, source_table="ledger_test.scratch")
        conn.execute("SELECT audit.disable_tracking('ledger_test.scratch')")
        conn.execute("INSERT INTO ledger_test.scratch VALUES (2)")
        after = events_of(conn, source_table="ledger_test.scratch")
    assert [(r["operation"], r["entity_type"], r["tenant_id"]) for r in scratch] == [
        ("insert", "scratch thing", uuid.UUID(int=0)), ("truncate", "scratch thing", uuid.UUID(int=0))]
    assert len(after) == 2, "disable_tracking stops capture and keeps past events"
    assert_verifies(ledger_db)


def test_enable_tracking_is_idempotent_and_checks_its_arguments(ledger_db):
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        for _ in range(2):
            conn.execute("SELECT audit.enable_tracking('ledger_test.tb_item', p_exclude => ARRAY['secret'])")
        tracked = conn.execute("SELECT entity_type, tenant_column, excluded_columns FROM audit.tracked_tables() "
                               "WHERE table_name = 'ledger_test.tb_item'::regclass").fetchall()
        assert tracked == [("item", "tenant_id", ["secret"])]
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ledger_test.tb_item'::regclass "
                                "AND tgname LIKE 'audit_ledger%'").fetchone()[0]
        assert triggers == 2
        with pytest.raises(psycopg.errors.UndefinedColumn, match="has no column nope"):
            conn.execute("SELECT audit.enable_tracking('ledger_test.tb_item', p_exclude => ARRAY['nope'])")
        with pytest.raises(psycopg.errors.WrongObjectType, match="is not a table"):
            conn.execute("SELECT audit.enable_tracking('pg_catalog.pg_tables')")


def test_no_correlation_id_set_gives_one_per_transaction(ledger_db):
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        ids = []
        for t in range(2):
            with conn.transaction():
                ids += [write(conn, TENANTS[5], f"corr{t}{i}") for i in range(3)]
        rows = [events_of(conn, entity_id=i)[0] for i in ids]
    first, second = {r["correlation_id"] for r in rows[:3]}, {r["correlation_id"] for r in rows[3:]}
    assert len(first) == len(second) == 1 and first != second


def test_explicit_events_from_core(ledger_db):
    entity = uuid.uuid4()
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('strata.tenant_id', %s, true), set_config('strata.actor_id', %s, true)",
                         (str(TENANTS[6]), str(ACTOR)))
            noop = conn.execute("SELECT audit.log_event('noop', 'order', %s, 'ORD-000042', NULL, %s)",
                                (entity, json.dumps({"reason": "already_cancelled"}))).fetchone()[0]
            domain = conn.execute("SELECT audit.log_event('order.cancelled', 'order', %s, 'ORD-000042', %s)",
                                  (entity, json.dumps({"refund": 12.5}))).fetchone()[0]
        rows = events_of(conn, entity_id=entity)
        for bad in ("Order.Cancelled", "noop!", "", None):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="lower-case dotted name"):
                conn.execute("SELECT audit.log_event(%s, 'order', %s, 'ORD-1')", (bad, entity))
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="entity type"):
            conn.execute("SELECT audit.log_event('noop', '', %s, 'ORD-1')", (entity,))
    assert [(r["id"], r["operation"], r["tenant_id"], r["actor_id"]) for r in rows] == [
        (noop, "noop", TENANTS[6], ACTOR), (domain, "order.cancelled", TENANTS[6], ACTOR)]
    assert rows[0]["metadata"] == {"reason": "already_cancelled"} and rows[1]["new_data"] == {"refund": 12.5}
    assert rows[0]["source_table"] is None and rows[0]["correlation_id"] == rows[1]["correlation_id"]


def test_fifty_events_in_one_transaction_verify(ledger_db):
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        with conn.transaction():
            ids = [write(conn, TENANTS[7], f"fifty{i}") for i in range(50)]
        rows = [events_of(conn, entity_id=i)[0] for i in ids]
    assert [r["tx_seq"] for r in rows] == list(range(1, 51))
    assert len({r["txid"] for r in rows}) == len({r["correlation_id"] for r in rows}) == 1
    assert_verifies(ledger_db)
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        blocks = {conn.execute("SELECT audit.event_block(%s)", (rows[0]["txid"],)).fetchone()[0]}
    assert len(blocks) == 1 and None not in blocks


@pytest.mark.parametrize("settings", [
    "SET TimeZone = 'America/New_York'",
    "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Kolkata'",
    "SET extra_float_digits = -15; SET IntervalStyle = 'sql_standard'",
])
def test_no_false_alarm_under_session_settings(ledger_db, settings):
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute(settings)
        with conn.transaction():
            write(conn, TENANTS[8], f"settings-{uuid.uuid4()}", {"price": 0.1, "when": "2024-01-01"})
        conn.execute("SELECT audit.seal()")
        row = conn.execute("SELECT ok, problem FROM audit.verify()").fetchone()
    assert row == (True, None)
    env = {"PGOPTIONS": "-c TimeZone=America/New_York -c DateStyle=German -c extra_float_digits=-15"}
    result = run_cli("audit", "verify", "--json", url=ledger_db, env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["ok"], result.stdout + result.stderr


def test_events_by_a_login_granted_strata_app_verify(ledger_db):
    """Through a SECURITY DEFINER function and through a direct grant on a tracked table."""
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("GRANT SELECT, INSERT, UPDATE ON ledger_test.tb_item TO strata_app")
    with psycopg.connect(app_url_of(ledger_db), autocommit=True) as app:
        assert app.execute("SELECT current_user").fetchone()[0] == "strata_test_app"
        with app.transaction():
            through_function = write(app, TENANTS[9], "by-app")
        with app.transaction():
            app.execute("SELECT set_config('strata.tenant_id', %s, true)", (str(TENANTS[9]),))
            # (the id is given: the column default core.uuid_v7() is not the app's to call)
            direct = app.execute("INSERT INTO ledger_test.tb_item (id, identifier, tenant_id, name) "
                                 "VALUES (gen_random_uuid(), 'ITM-direct', %s, 'direct') RETURNING id",
                                 (TENANTS[9],)).fetchone()[0]
            app.execute("UPDATE ledger_test.tb_item SET name = 'direct2' WHERE id = %s", (direct,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT count(*) FROM audit.events")
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        rows = events_of(conn, entity_id=through_function) + events_of(conn, entity_id=direct)
        conn.execute("REVOKE SELECT, INSERT, UPDATE ON ledger_test.tb_item FROM strata_app")
    assert [(r["operation"], r["login_role"], r["db_role"]) for r in rows] == [
        ("insert", "strata_test_app", "strata_owner"), ("insert", "strata_test_app", "strata_owner"),
        ("update", "strata_test_app", "strata_owner")]
    assert_verifies(ledger_db)


def test_rotated_key_signs_new_blocks_and_old_ones_still_verify(ledger_db):
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        with conn.transaction():
            write(conn, TENANTS[10], "before-rotation")
        conn.execute("SELECT audit.seal()")
        before = conn.execute("SELECT key_id FROM audit.blocks ORDER BY block_no DESC LIMIT 1").fetchone()[0]
    result = run_cli("audit", "rotate-key", url=ledger_db)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        with conn.transaction():
            write(conn, TENANTS[10], "after-rotation")
        conn.execute("SELECT audit.seal()")
        after = conn.execute("SELECT key_id FROM audit.blocks ORDER BY block_no DESC LIMIT 1").fetchone()[0]
        keys = conn.execute("SELECT key_id, retired_at IS NOT NULL FROM audit.signing_key_ids()").fetchall()
    assert before != after and f"Signing key {after} now signs new blocks" in result.stdout
    assert (before, True) in keys and (after, False) in keys
    assert_verifies(ledger_db)


def test_commits_seal_earlier_transactions_without_a_daemon(databases):
    url = databases.create("ledger_autoseal")
    setup(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET strata.audit_seal_interval_ms = 100")
        with conn.transaction():
            first = write(conn, TENANTS[0], "first")
        time.sleep(0.3)  # past this session's seal interval (not a timing assertion)
        with conn.transaction():
            write(conn, TENANTS[0], "second")
        blocks = conn.execute("SELECT block_no, event_count, sealed_by FROM audit.blocks").fetchall()
        sealed_first = conn.execute("SELECT audit.event_block(txid) FROM audit.events WHERE entity_id = %s",
                                    (first,)).fetchone()[0]
        unsealed = conn.execute("SELECT events FROM audit.unsealed()").fetchone()[0]
    assert blocks == [(1, 1, "postgres")] and sealed_first == 1
    assert unsealed == 1, "the sealing transaction's own event waits for the next block"
