"""`strata audit …` and the ledger kind of `strata verify`, as a user meets them: output, exit
codes, one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest

from conftest import ROOT, run_cli
from test_ledger_support import TENANTS, auditor_url_of, sealed_ledger, tamper, write


@pytest.fixture(scope="module")
def ledger(databases):
    return sealed_ledger(databases, "ledger_cli")


def test_verify_prints_what_it_checked(ledger):
    result = run_cli("audit", "verify", url=ledger.url)
    assert result.returncode == 0, result.stderr
    assert "Ledger verified (all tenants): 3 blocks, 10 events" in result.stdout
    assert "Signatures: checked here with the signing keys." in result.stdout
    result = run_cli("audit", "verify", url=auditor_url_of(ledger.url))
    assert result.returncode == 0 and "checked by the database only" in result.stdout


def test_verify_usage_errors_are_one_sentence(ledger, tmp_path):
    missing = run_cli("audit", "verify", "--checkpoint", str(tmp_path / "nope.json"), url=ledger.url)
    assert missing.returncode == 2 and missing.stderr.startswith("Error: Cannot read the checkpoint")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run_cli("audit", "verify", "--checkpoint", str(bad), url=ledger.url)
    assert result.returncode == 2 and "is not JSON" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("audit", "verify", "--tenant", "no-such-slug", url=auditor_url_of(ledger.url))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("change, message", [
    (lambda cp: {"block": cp["block"]}, "the checkpoint is not a strata-ledger-checkpoint/1 document"),
    (lambda cp: {k: v for k, v in cp.items() if k != "hash"}, "the checkpoint has no 'hash'"),
    (lambda cp: {**cp, "block": str(cp["block"])}, "the checkpoint's 'block' is not a block number"),
    (lambda cp: {**cp, "size": -1}, "the checkpoint's 'size' is not a count of events"),
    (lambda cp: {**cp, "signature": cp["signature"].upper()}, "the checkpoint's 'signature' is not 64 hex digits"),
])
def test_a_partial_or_mistyped_checkpoint_is_an_error_not_a_tamper_finding(ledger, tmp_path, change, message):
    """Compared as it was, such a document read as a rewritten or truncated ledger; both the SQL
    function and the CLI refuse it, with the same words."""
    with psycopg.connect(auditor_url_of(ledger.url), autocommit=True) as conn:
        checkpoint = change(conn.execute("SELECT audit.checkpoint()").fetchone()[0])
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            conn.execute("SELECT * FROM audit.verify_checkpoint(%s)", (json.dumps(checkpoint),))
        assert refused.value.diag.message_primary == message
    document = tmp_path / "checkpoint.json"
    document.write_text(json.dumps(checkpoint))
    result = run_cli("audit", "verify", "--checkpoint", str(document), url=ledger.url)
    assert result.returncode == 2 and result.stderr == f"Error: {document}: {message}.\n", result.stderr


def test_a_login_that_may_not_read_the_ledger_is_told_so(ledger):
    from test_ledger_support import app_url_of

    result = run_cli("audit", "verify", url=app_url_of(ledger.url))
    assert result.returncode == 2 and "may not read the ledger" in result.stderr, result.stderr


def test_seal_and_rotate_need_the_owner(ledger):
    for args in (("audit", "seal"), ("audit", "rotate-key")):
        result = run_cli(*args, url=auditor_url_of(ledger.url))
        assert result.returncode == 2, result.stderr
        assert "needs strata_owner" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_seal_reports_what_it_sealed(ledger):
    with psycopg.connect(ledger.url, autocommit=True) as conn:
        conn.execute("SET strata.audit_seal_on_commit = 'off'")
        with conn.transaction():
            write(conn, TENANTS[0], "cli-seal")
    first = run_cli("audit", "seal", url=ledger.url)
    assert first.returncode == 0 and first.stdout.startswith("Sealed 1 event into 1 block; the newest block is 4."), first.stdout
    second = run_cli("audit", "seal", "--json", url=ledger.url)
    assert second.returncode == 0 and json.loads(second.stdout)["blocks"] == 0


def test_checkpoint_goes_to_stdout_or_a_file(ledger, tmp_path):
    result = run_cli("audit", "checkpoint", url=ledger.url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"block", "hash", "size", "root", "time", "key_id", "signature"} <= set(data)
    as_auditor = run_cli("audit", "checkpoint", "--out", str(tmp_path / "cp.json"), url=auditor_url_of(ledger.url))
    assert as_auditor.returncode == 0 and "may not seal" in as_auditor.stderr
    assert json.loads((tmp_path / "cp.json").read_text())["block"] == data["block"]
    ok = run_cli("audit", "verify", "--checkpoint", str(tmp_path / "cp.json"), url=auditor_url_of(ledger.url))
    assert ok.returncode == 0 and "matches the checkpoint" in ok.stdout


def test_tail_prints_new_events_once_they_are_sealed(ledger):
    command = [sys.executable, "-m", "strata", "--database-url", ledger.url, "audit", "tail", "--json",
               "--max-events", "3"]
    tail = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Events committed before tail looks are still shown: it starts from the newest block.
        time.sleep(1.5)
        with psycopg.connect(ledger.url, autocommit=True) as conn:
            with conn.transaction():
                for i in range(3):
                    write(conn, TENANTS[1], f"tail{i}")
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["identifier"] for e in events] == ["ITM-tail0", "ITM-tail1", "ITM-tail2"]
    assert all(e["block"] == events[0]["block"] and e["operation"] == "insert" for e in events)


def test_strata_verify_includes_the_ledger(databases):
    broken = sealed_ledger(databases, "ledger_cli_verify")
    result = run_cli("verify", "--only", "ledger", "--json", "--all", url=broken.url)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    assert checks["chain verifies"]["ok"] and checks["events sealed"]["ok"]
    tamper(broken.url, "UPDATE audit.events SET identifier = 'x' WHERE pk_event = %s", (broken.events[2],))
    result = run_cli("verify", "--only", "ledger", "--json", url=broken.url)
    assert result.returncode == 1
    finding = json.loads(result.stdout)["findings"][0]
    assert finding["kind"] == "ledger" and finding["object"] == "block 1" and "was altered" in finding["message"]
