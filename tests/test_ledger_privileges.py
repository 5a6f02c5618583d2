"""Who may do what with the ledger, and key secrecy: no login granted strata_app,
strata_readonly or strata_auditor can read a signing key, directly or through any function."""

from __future__ import annotations

import json

import psycopg
import pytest

from conftest import APP_LOGIN, AUDITOR_LOGIN, READONLY_LOGIN
from test_ledger_support import TENANTS, login_url, sealed_ledger

# Every audit function the auditor may run, with a call that exercises it.
AUDITOR_CALLS = {
    "audit.block_encoding(audit.blocks)": "SELECT audit.block_encoding(b) FROM audit.blocks AS b",
    "audit.block_hash(audit.blocks)": "SELECT audit.block_hash(b) FROM audit.blocks AS b",
    "audit.block_members(pg_snapshot,pg_snapshot)":
        "SELECT m.* FROM audit.blocks AS b, audit.block_members(audit.genesis_snapshot(), b.snapshot) AS m",
    "audit.block_signature_status(bigint)": "SELECT audit.block_signature_status(b.block_no) FROM audit.blocks AS b",
    "audit.checkpoint()": "SELECT audit.checkpoint()",
    "audit.enc_fields(bytea[])": "SELECT audit.enc_fields(ARRAY['\\x01'::bytea, NULL])",
    "audit.enc_jsonb(jsonb)": "SELECT audit.enc_jsonb('{\"a\": 1}')",
    "audit.enc_text(text)": "SELECT audit.enc_text('x')",
    "audit.event_block(xid8)": "SELECT audit.event_block(e.txid) FROM audit.events AS e",
    "audit.event_encoding(audit.events)": "SELECT audit.event_encoding(e) FROM audit.events AS e",
    "audit.event_hash(audit.events)": "SELECT audit.event_hash(e) FROM audit.events AS e",
    "audit.genesis_snapshot()": "SELECT audit.genesis_snapshot()",
    "audit.make_snapshot(xid8,xid8,xid8[])": "SELECT audit.make_snapshot('5', '9', '{6,7}')",
    "audit.merkle_root(bytea[])": "SELECT audit.merkle_root(array_agg(e.event_hash)) FROM audit.events AS e",
    "audit.merkle_roots(uuid[],bytea[])":
        "SELECT * FROM audit.merkle_roots((SELECT array_agg(tenant_id) FROM audit.events), "
        "(SELECT array_agg(event_hash) FROM audit.events))",
    "audit.platform_tenant()": "SELECT audit.platform_tenant()",
    "audit.signing_key_ids()": "SELECT * FROM audit.signing_key_ids()",
    "audit.tenant_entry_hash(uuid,integer,bytea)":
        "SELECT audit.tenant_entry_hash(t.tenant_id, t.event_count, t.root) FROM audit.block_tenants AS t",
    "audit.tracked_tables()": "SELECT * FROM audit.tracked_tables()",
    "audit.unsealed()": "SELECT * FROM audit.unsealed()",
    "audit.verify(uuid)": "SELECT * FROM audit.verify()",
    "audit.verify_checkpoint(jsonb)": "SELECT * FROM audit.verify_checkpoint(audit.checkpoint())",
}

EXECUTABLE_AUDIT_FUNCTIONS = """
SELECT p.oid::regprocedure::text
  FROM pg_proc AS p
 WHERE p.pronamespace = 'audit'::regnamespace
   AND has_function_privilege(%s, p.oid, 'EXECUTE')
 ORDER BY 1
"""


@pytest.fixture(scope="module")
def ledger(databases):
    ledger = sealed_ledger(databases, "ledger_privileges")
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        conn.execute("SELECT audit.rotate_key()")  # two keys: a retired one and the active one
        with conn.transaction():
            conn.execute("SELECT ledger_test.create_item(%s, 'after-rotation')", (TENANTS[0],))
        conn.execute("SELECT audit.seal()")
        ledger.secrets = [bytes(s) for (s,) in conn.execute("SELECT secret FROM audit.signing_keys")]
    assert len(ledger.secrets) == 2
    return ledger


def _no_secret_in(ledger, values) -> None:
    text = json.dumps(values, default=lambda v: v.hex() if isinstance(v, (bytes, memoryview)) else str(v))
    for secret in ledger.secrets:
        assert secret.hex() not in text and secret.hex().upper() not in text


@pytest.mark.parametrize("login", [APP_LOGIN, READONLY_LOGIN, AUDITOR_LOGIN])
def test_no_login_can_select_the_keys(ledger, login):
    with psycopg.connect(login_url(ledger.url, login), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT secret FROM audit.signing_keys")


@pytest.mark.parametrize("login", [APP_LOGIN, READONLY_LOGIN])
def test_app_and_readonly_can_run_no_audit_function_and_read_no_ledger_table(ledger, login):
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        assert conn.execute(EXECUTABLE_AUDIT_FUNCTIONS, (login,)).fetchall() == []
    with psycopg.connect(login_url(ledger.url, login), autocommit=True) as conn:
        for table in ("audit.events", "audit.blocks", "audit.block_tenants"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")
        for call in ("SELECT audit.seal()", "SELECT * FROM audit.verify()", "SELECT audit.block_signature_status(1)",
                     "SELECT audit.log_event('noop', 'x', NULL, NULL)", "SELECT audit.rotate_key()"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(call)


def test_auditor_runs_exactly_the_read_and_verify_functions_and_none_returns_a_key(ledger):
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        executable = [r[0] for r in conn.execute(EXECUTABLE_AUDIT_FUNCTIONS, (AUDITOR_LOGIN,))]
    assert executable == sorted(AUDITOR_CALLS), "a new audit function needs a call here and a secrecy check"
    with psycopg.connect(login_url(ledger.url, AUDITOR_LOGIN), autocommit=True) as conn:
        for signature, call in AUDITOR_CALLS.items():
            rows = conn.execute(call).fetchall()
            assert rows, signature
            _no_secret_in(ledger, rows)
        statuses = {r[0] for r in conn.execute("SELECT audit.block_signature_status(block_no) FROM audit.blocks")}
        assert statuses == {"valid"}
        assert conn.execute("SELECT ok FROM audit.verify()").fetchone()[0] is True


def test_no_function_a_non_owner_may_run_touches_the_keys_except_the_two_checked_ones(ledger):
    """Whatever other contexts add: a function that reads audit.signing_keys and that app,
    readonly or auditor may execute must be one of the two whose outputs are checked above."""
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        rows = conn.execute("""
            SELECT DISTINCT p.oid::regprocedure::text
              FROM pg_proc AS p
              JOIN pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND p.prosrc ILIKE '%%signing_keys%%'
               AND (has_function_privilege(%s, p.oid, 'EXECUTE') OR has_function_privilege(%s, p.oid, 'EXECUTE')
                    OR has_function_privilege(%s, p.oid, 'EXECUTE'))""",
                            (APP_LOGIN, READONLY_LOGIN, AUDITOR_LOGIN)).fetchall()
    assert sorted(r[0] for r in rows) == ["audit.block_signature_status(bigint)", "audit.signing_key_ids()"]


def test_auditor_changes_nothing(ledger):
    with psycopg.connect(login_url(ledger.url, AUDITOR_LOGIN), autocommit=True) as conn:
        for statement in ("UPDATE audit.events SET metadata = NULL", "DELETE FROM audit.blocks",
                          "TRUNCATE audit.block_tenants", "INSERT INTO audit.blocks (block_no) VALUES (99)",
                          "SELECT audit.seal()", "SELECT audit.rotate_key()",
                          "SELECT audit.enable_tracking('ledger_test.tb_item')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_audit_functions_are_closed_to_public_pinned_and_commented(ledger):
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        public = conn.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc AS p
             WHERE p.pronamespace = 'audit'::regnamespace
               AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) AS a
                                                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))""").fetchall()
        unpinned = conn.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc AS p
             WHERE p.pronamespace = 'audit'::regnamespace AND p.prosecdef
               AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c
                                WHERE c IN ('search_path=pg_catalog, pg_temp', 'search_path=""'))""").fetchall()
        uncommented = conn.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc AS p
             WHERE p.pronamespace = 'audit'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
            UNION ALL
            SELECT c.oid::regclass::text FROM pg_class AS c
             WHERE c.relnamespace = 'audit'::regnamespace AND c.relkind IN ('r', 'p', 'v')
               AND obj_description(c.oid, 'pg_class') IS NULL""").fetchall()
        rls = conn.execute("""
            SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity,
                   (SELECT array_agg(DISTINCT p.polcmd ORDER BY p.polcmd) FROM pg_policy AS p WHERE p.polrelid = c.oid)
              FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
             WHERE c.relnamespace = 'audit'::regnamespace AND c.relkind = 'r' ORDER BY 1""").fetchall()
    assert public == [] and unpinned == [] and uncommented == []
    assert rls == [("block_tenants", True, ["a", "d", "r", "w"]), ("events", True, ["a", "d", "r", "w"])]
