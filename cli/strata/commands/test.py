"""`strata test`: the pgTAP suite against the connected database (everything rolls back)."""

from __future__ import annotations

from pathlib import Path

import click
from psycopg import sql

from strata.context import Context, pass_context
from strata.errors import CheckFailed, ConfigurationError
from strata.output import emit_json, notice, option_json, say, table
from strata.pgtap import run_file

# The login roles the pgTAP files act as: never superuser, never owner. Created without a
# password, so nobody can log in as them; tests reach them with SET LOCAL ROLE.
TEST_LOGINS = {"strata_test_app": "strata_app", "strata_test_readonly": "strata_readonly",
               "strata_test_auditor": "strata_auditor"}


def _prepare(conn) -> None:
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgtap'").fetchone():
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgtap'").fetchone():
            raise ConfigurationError("pgTAP is not installed on the server; install postgresql-15-pgtap (make install does).")
        notice("installing the pgtap extension in this database")
        conn.execute("CREATE EXTENSION pgtap")
    for login, granted in TEST_LOGINS.items():
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
            notice(f"creating login role {login} (no password) granted {granted}, for RLS tests")
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(login)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), sql.Identifier(login)))
    conn.commit()


@click.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@option_json
@pass_context
def test(ctx: Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Run pgTAP files (default: tests/sql/test_*.sql) against the connected database.

    Each file runs inside BEGIN … ROLLBACK, so the database is left as it was; the pgtap
    extension and the test login roles are created first when missing. Exits 1 on any failure.
    """
    paths = list(files) or sorted((ctx.project.tests_dir / "sql").glob("test_*.sql"))
    if not paths:
        raise ConfigurationError("No pgTAP files found in tests/sql.")
    with ctx.connect(autocommit=False) as conn:
        _prepare(conn)
        results = [run_file(conn, path) for path in paths]
    failed = [r for r in results if not r.ok]
    if as_json:
        emit_json([{"file": r.path.name, "ok": r.ok, "planned": r.planned, "passed": r.passed,
                    "failures": r.failures, "error": r.error} for r in results])
    else:
        table(None, ["file", "result", "tests"],
              [(r.path.name, "ok" if r.ok else "FAIL", f"{r.passed}/{r.planned if r.planned is not None else '?'}")
               for r in results])
        for r in failed:
            say(f"\n{r.path.name}:")
            if r.error:
                say(f"  error: {r.error}")
            if r.planned is not None and r.planned != r.ran:
                say(f"  planned {r.planned} tests but ran {r.ran}")
            for failure in r.failures:
                say(f"  not ok {failure}")
        total = sum(r.ran for r in results)
        say(f"\n{len(results)} {'file' if len(results) == 1 else 'files'}, {total} tests: " + ("all passed." if not failed else f"{len(failed)} file(s) failed."))
    if failed:
        raise CheckFailed(f"{len(failed)} pgTAP file(s) failed.")


COMMANDS = [test]
