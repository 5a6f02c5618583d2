"""Migrations through the real `strata` command: status and verify catch edits, apply and
rollback round-trip to an identical catalog, concurrent runs apply once, a broken migration
leaves no trace, a stale lock has a way out, and --dry-run changes nothing.

Tests that edit files work on a copy of migrations/ and sql/ (STRATA_HOME); tests that change a
schema work on a database of their own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, pg_dump_schema, run_cli
from strata.migrator import ADVISORY_LOCK_KEY, BOOTSTRAP_LOCK_KEY, MigrationError, Migrator

STRATA_SCHEMAS = ("core", "app", "audit", "tenancy", "orders", "work", "content")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A throwaway copy of the project's migrations/ and sql/, used through STRATA_HOME."""
    home = tmp_path / "project"
    home.mkdir()
    for folder in ("migrations", "sql"):
        shutil.copytree(ROOT / folder, home / folder)
    return home


def strata(home: Path, *args: str, url: str) -> subprocess.CompletedProcess:
    return run_cli(*args, url=url, env={"STRATA_HOME": str(home)})


def migration_ids() -> list[str]:
    return sorted(p.name.removesuffix(".sql") for p in (ROOT / "migrations").glob("*.sql")
                  if not p.name.endswith(".rollback.sql"))


def status_of(url: str, home: Path | None = None) -> dict:
    env = {"STRATA_HOME": str(home)} if home else None
    result = run_cli("status", "--json", url=url, env=env)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def query(url: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def execute(url: str, sql: str, params=None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


def strata_schemas(url: str) -> set[str]:
    rows = query(url, "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(STRATA_SCHEMAS),))
    return {r[0] for r in rows}


def only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


# -- edited after apply -------------------------------------------------------------------------


def test_editing_an_applied_migration_is_reported_by_status_and_verify(databases, project_copy):
    url = databases.create("edit", migrate=False)
    assert strata(project_copy, "migrate", url=url).returncode == 0
    first = migration_ids()[0]
    migration = project_copy / "migrations" / f"{first}.sql"
    original = migration.read_text()
    migration.write_text(original + "\n-- an innocent-looking edit after apply\n")

    status = strata(project_copy, "status", url=url)
    assert status.returncode == 1
    assert f"migration {first} was edited after it was applied (migration)" in status.stdout
    assert only_line(status.stderr) == "Error: applied migrations no longer match their files (see above)."

    as_json = strata(project_copy, "status", "--json", url=url)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["edited_after_apply"] == [first] and report["clean"] is False

    verify = strata(project_copy, "verify", url=url)
    assert verify.returncode == 1
    assert first in verify.stdout and "edited after it was applied" in verify.stdout
    assert only_line(verify.stderr) == "Error: 1 check(s) failed."

    # Editing the rollback file counts too; undoing both edits makes the database clean again.
    rollback = migration.with_name(f"{first}.rollback.sql")
    rollback_original = rollback.read_text()
    rollback.write_text(rollback_original + "\n-- edited\n")
    report = json.loads(strata(project_copy, "status", "--json", url=url).stdout)
    assert report["migrations"][0]["edited_after_apply"] == ["migration", "rollback"]
    migration.write_text(original)
    rollback.write_text(rollback_original)
    assert strata(project_copy, "status", url=url).returncode == 0
    assert strata(project_copy, "verify", url=url).returncode == 0


def test_editing_a_sql_file_makes_the_code_layer_out_of_date_until_migrate(databases, project_copy):
    url = databases.create("code", migrate=False)
    assert strata(project_copy, "migrate", url=url).returncode == 0
    about = project_copy / "sql" / "core" / "00_about.sql"
    about.write_text(about.read_text().replace("SELECT '0.1.0'", "SELECT '0.1.0-edited'"))

    verify = strata(project_copy, "verify", url=url)
    assert verify.returncode == 1
    assert "sql/core/00_about.sql" in verify.stdout and "differs from what the database runs" in verify.stdout
    report = json.loads(strata(project_copy, "status", "--json", url=url).stdout)
    assert report["code_layer"]["out_of_date"] == ["sql/core/00_about.sql"] and report["clean"] is False

    migrate = strata(project_copy, "migrate", url=url)
    assert migrate.returncode == 0, migrate.stderr
    assert "Will rebuild the code layer" in migrate.stdout and "sql/core/00_about.sql" in migrate.stdout
    assert strata(project_copy, "verify", url=url).returncode == 0
    assert query(url, "SELECT core.strata_version()") == [("0.1.0-edited",)]


def test_a_deleted_sql_definition_disappears_from_the_database(databases, project_copy):
    url = databases.create("deleted", migrate=False)
    assert strata(project_copy, "migrate", url=url).returncode == 0
    assert query(url, "SELECT to_regprocedure('core.strata_version()') IS NOT NULL") == [(True,)]
    (project_copy / "sql" / "core" / "00_about.sql").unlink()
    assert strata(project_copy, "migrate", url=url).returncode == 0
    assert query(url, "SELECT to_regprocedure('core.strata_version()') IS NOT NULL") == [(False,)]
    assert strata(project_copy, "verify", url=url).returncode == 0


# -- round trips -------------------------------------------------------------------------------


def test_apply_rollback_all_apply_gives_an_identical_catalog(databases):
    url = databases.create("roundtrip", migrate=False)
    empty = pg_dump_schema(url)
    first = run_cli("migrate", url=url)
    assert first.returncode == 0 and first.stderr == "", first.stderr  # nothing of yoyo's own printing
    assert first.stdout.startswith(f"Will apply {len(migration_ids())} migration(s):")
    assert first.stdout.endswith("Done.\n")
    applied = pg_dump_schema(url)
    assert applied != empty

    back = run_cli("rollback", "--all", url=url)
    assert back.returncode == 0 and back.stderr == "", back.stderr
    assert strata_schemas(url) == set()
    assert status_of(url)["pending"] == migration_ids()

    again = run_cli("migrate", url=url)
    assert again.returncode == 0, again.stderr
    assert pg_dump_schema(url) == applied
    assert status_of(url)["clean"] is True


def test_rollback_one_step_then_migrate_gives_an_identical_catalog(databases):
    url = databases.create("steps")
    applied = pg_dump_schema(url)
    back = run_cli("rollback", "--steps", "1", url=url)
    assert back.returncode == 0, back.stderr
    assert f"  {migration_ids()[-1]}" in back.stdout
    assert status_of(url)["pending"] == migration_ids()[-1:]
    # The rollback restores exactly what the migration before it left (a rollback that only
    # undid part of the change, or restored a function body that differs, would show here).
    before_last = databases.create("steps_before_last", migrate=False)
    assert run_cli("migrate", "--to", migration_ids()[-2], url=before_last).returncode == 0
    assert pg_dump_schema(url) == pg_dump_schema(before_last)
    assert run_cli("migrate", url=url).returncode == 0
    assert pg_dump_schema(url) == applied


# -- concurrency and locks ---------------------------------------------------------------------


def test_two_migrate_runs_at_once_apply_everything_exactly_once(databases):
    url = databases.create("race", migrate=False)
    command = [sys.executable, "-m", "strata", "--database-url", url, "migrate"]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err
    stdouts = sorted(out for out, _ in outputs)
    applied = [out for out in stdouts if out.startswith("Will apply")]
    idle = [out for out in stdouts if out.startswith("Nothing to do")]
    assert len(applied) == 1 and len(idle) == 1, stdouts
    log = query(url, "SELECT migration_id, count(*) FROM strata_meta._yoyo_log "
                     "WHERE operation = 'apply' GROUP BY migration_id ORDER BY migration_id")
    assert log == [(mid, 1) for mid in migration_ids()]


def test_a_live_run_holds_the_lock(databases):
    url = databases.create("held")
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        waiting = run_cli("migrate", "--lock-timeout", "0", url=url)
        assert waiting.returncode == 1
        assert "strata: waiting for another migration run to finish" in waiting.stderr
        assert waiting.stderr.splitlines()[-1].startswith("Error: Another migration run holds the lock")
        refused = run_cli("migrate", "--break-lock", url=url)
        assert refused.returncode == 1
        assert only_line(refused.stderr) == "Error: A migration run is in progress right now; its lock is not stale."
    assert run_cli("migrate", "--lock-timeout", "0", url=url).returncode == 0


def test_a_set_up_in_progress_is_waited_for_not_taken_for_a_stale_lock(databases):
    """yoyo's internal-schema upgrade writes its lock row before that process holds the
    migration lock (a first run on a fresh database). A run that already holds the migration
    lock must wait for that set-up instead of reporting the row as left behind, which made two
    first runs at once fail now and then."""
    url = databases.create("bootstrap")
    migrator = Migrator(databases.project, url)
    migrator.backend  # this run's own set-up is done
    outcome = []

    def take_the_lock() -> None:
        try:
            with migrator.locked():
                outcome.append("locked")
        except MigrationError as err:
            outcome.append(str(err))

    with psycopg.connect(url, autocommit=True) as setting_up:  # another run, half-way through its set-up
        setting_up.execute("SELECT pg_advisory_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
        setting_up.execute("INSERT INTO strata_meta.yoyo_lock (locked, ctime, pid) VALUES (1, now(), 424243)")
        runner = threading.Thread(target=take_the_lock)
        runner.start()
        runner.join(timeout=1.5)
        assert outcome == [], outcome  # waiting, not refused
        setting_up.execute("DELETE FROM strata_meta.yoyo_lock")
        setting_up.execute("SELECT pg_advisory_unlock(%s)", (BOOTSTRAP_LOCK_KEY,))
        runner.join(timeout=30)
    migrator.close()
    assert outcome == ["locked"]


def test_a_stale_lock_names_the_way_out(databases):
    url = databases.create("stale", migrate=False)
    # --break-lock on a fresh database creates the bookkeeping only (and finds no lock).
    assert run_cli("migrate", "--break-lock", url=url).stdout == "There was no migration lock to remove.\n"
    # What a `strata migrate` killed with SIGKILL leaves behind: yoyo's lock row, no live session.
    execute(url, "INSERT INTO strata_meta.yoyo_lock (locked, ctime, pid) VALUES (1, now(), 424242)")

    blocked = run_cli("migrate", url=url)
    assert blocked.returncode == 1
    line = only_line(blocked.stderr)
    assert "process 424242" in line and "`strata migrate --break-lock`" in line
    assert status_of(url)["pending"] == migration_ids()

    broken = run_cli("migrate", "--break-lock", url=url)
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout == "Removed the stale migration lock.\n"
    assert query(url, "SELECT count(*) FROM strata_meta.yoyo_lock") == [(0,)]
    assert run_cli("migrate", "--break-lock", url=url).stdout == "There was no migration lock to remove.\n"

    assert run_cli("migrate", url=url).returncode == 0
    assert status_of(url)["clean"] is True


# -- failure leaves no trace -------------------------------------------------------------------

BROKEN_MIGRATION = """\
-- A migration that creates something, then fails: nothing of it may remain.
CREATE TABLE core.broken_probe (id integer);
INSERT INTO core.broken_probe (no_such_column) VALUES (1);
"""


def test_a_broken_migration_fails_in_one_sentence_and_leaves_no_trace(databases, project_copy):
    url = databases.create("broken", migrate=False)
    assert strata(project_copy, "migrate", url=url).returncode == 0
    before = pg_dump_schema(url)
    log_before = query(url, "SELECT count(*) FROM strata_meta._yoyo_log")
    code_before = query(url, "SELECT path, sha256 FROM strata_meta.code_file ORDER BY path")
    (project_copy / "migrations" / "9999_broken.sql").write_text(BROKEN_MIGRATION)

    result = strata(project_copy, "migrate", url=url)
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        'Error: migrations/9999_broken.sql line 3 failed: column "no_such_column" of relation '
        '"broken_probe" does not exist; nothing was changed.'
    )
    assert pg_dump_schema(url) == before
    assert query(url, "SELECT to_regclass('core.broken_probe')") == [(None,)]
    assert query(url, "SELECT count(*) FROM strata_meta._yoyo_log") == log_before
    assert query(url, "SELECT path, sha256 FROM strata_meta.code_file ORDER BY path") == code_before
    assert query(url, "SELECT count(*) FROM strata_meta.yoyo_lock") == [(0,)]
    report = status_of(url, project_copy)
    assert report["pending"] == ["9999_broken"]
    assert [m["id"] for m in report["migrations"] if m["state"] == "applied"] == migration_ids()


def test_a_broken_sql_file_fails_and_leaves_no_trace(databases, project_copy):
    url = databases.create("brokensql", migrate=False)
    assert strata(project_copy, "migrate", url=url).returncode == 0
    before = pg_dump_schema(url)
    (project_copy / "sql" / "core" / "99_broken.sql").write_text(
        "-- requires: 0001_foundation\nCREATE FUNCTION core.broken() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
        "SELECT core.no_such_function();\n")
    result = strata(project_copy, "migrate", url=url)
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert line.startswith("Error: sql/core/99_broken.sql line 3 failed: function core.no_such_function() does not exist")
    assert pg_dump_schema(url) == before


def test_an_unqualified_name_in_a_migration_fails_clearly(databases, project_copy):
    url = databases.create("unqualified", migrate=False)
    assert strata(project_copy, "migrate", url=url).returncode == 0
    (project_copy / "migrations" / "9999_unqualified.sql").write_text("CREATE TABLE unqualified_probe (id integer);\n")
    result = strata(project_copy, "migrate", url=url)
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        "Error: migrations/9999_unqualified.sql line 1 failed: no schema has been selected to create in; "
        "nothing was changed.")
    assert query(url, "SELECT count(*) FROM pg_class WHERE relname = 'unqualified_probe'") == [(0,)]


# -- dry run -----------------------------------------------------------------------------------


def meta_schema_exists(url: str) -> bool:
    return query(url, "SELECT to_regnamespace('strata_meta') IS NOT NULL") == [(True,)]


def test_dry_run_status_and_verify_write_nothing_to_an_untouched_database(databases):
    url = databases.create("untouched", migrate=False)
    before = pg_dump_schema(url)
    dry = run_cli("migrate", "--dry-run", url=url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"Would apply {len(migration_ids())} migration(s):")
    assert "Done." not in dry.stdout
    status = status_of(url)
    assert status["pending"] == migration_ids() and status["clean"] is False
    verify = run_cli("verify", "--only", "migrations", url=url)
    assert verify.returncode == 1 and "pending" in verify.stdout
    assert run_cli("rollback", "--dry-run", url=url).stdout == "Nothing to roll back.\n"
    assert not meta_schema_exists(url), "a read-only command created strata_meta"
    assert pg_dump_schema(url) == before


def test_dry_run_changes_nothing(databases):
    url = databases.create("dry", migrate=False)
    assert run_cli("migrate", "--break-lock", url=url).returncode == 0  # bookkeeping, no migration
    before = pg_dump_schema(url)
    dry = run_cli("migrate", "--dry-run", url=url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"Would apply {len(migration_ids())} migration(s):")
    assert "Done." not in dry.stdout
    assert pg_dump_schema(url) == before
    assert status_of(url)["pending"] == migration_ids()
    assert run_cli("migrate", "--dry-run", "--break-lock", url=url).returncode == 2

    assert run_cli("migrate", url=url).returncode == 0
    applied = pg_dump_schema(url)
    dry_back = run_cli("rollback", "--all", "--dry-run", url=url)
    assert dry_back.returncode == 0, dry_back.stderr
    assert dry_back.stdout.startswith(f"Would roll back {len(migration_ids())} migration(s):")
    assert pg_dump_schema(url) == applied
    assert status_of(url)["clean"] is True
