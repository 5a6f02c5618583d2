"""The checks behind `strata verify`, by kind. Each returns findings; a failing finding names
the object and the fix. Checks that belong to the database run in SQL (core.verify_*), so psql
users get the same answers; only the migration check reads files and so lives here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import psycopg

from strata.context import Context


@dataclass
class Finding:
    kind: str
    check: str
    object: str
    ok: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def check_migrations(ctx: Context, conn: psycopg.Connection) -> list[Finding]:
    from strata.commands.migrate import collect_status

    migrator = ctx.migrator(read_only=True)
    try:
        status = collect_status(migrator)
    finally:
        migrator.close()
    findings = []
    for m in status["migrations"]:
        if m["missing_file"]:
            findings.append(Finding("migrations", "file present", m["id"], False,
                                    "applied, but its file is gone from migrations/",
                                    "restore the file from version control"))
        elif m["state"] != "applied":
            findings.append(Finding("migrations", "applied", m["id"], False, "pending", "run `strata migrate`"))
        elif m["edited_after_apply"]:
            findings.append(Finding("migrations", "unedited", m["id"], False,
                                    f"edited after it was applied ({', '.join(m['edited_after_apply'])})",
                                    "revert the edit and put the change in a new migration"))
        else:
            findings.append(Finding("migrations", "applied and unedited", m["id"], True, "ok"))
    for path in status["code_layer"]["out_of_date"]:
        findings.append(Finding("migrations", "code layer current", path, False,
                                "differs from what the database runs", "run `strata migrate`"))
    if not status["code_layer"]["out_of_date"]:
        findings.append(Finding("migrations", "code layer current", "sql/", True,
                                f"{status['code_layer']['files']} file(s) applied as they are"))
    return findings


def sql_check(kind: str, function: str) -> Callable[[Context, psycopg.Connection], list[Finding]]:
    """A check implemented in SQL as `function()` returning (check, object, ok, message, fix)."""

    def run(ctx: Context, conn: psycopg.Connection) -> list[Finding]:
        present = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (f"{function}()",)).fetchone()[0]
        if not present:
            return [Finding(kind, "installed", function, False, "the check function is missing",
                            "run `strata migrate`")]
        rows = conn.execute(f"SELECT \"check\", object, ok, message, fix FROM {function}()").fetchall()
        return [Finding(kind, *row) for row in rows]

    return run


def check_ledger(ctx: Context, conn: psycopg.Connection) -> list[Finding]:
    """The audit ledger verifies (recomputed in Python, strata.ledger) and no event waits long for a block."""
    from strata.ledger import findings

    return [Finding("ledger", *f) for f in findings(conn)]


# Kinds in the order they run; later issues add theirs here.
CHECKS: dict[str, Callable[[Context, psycopg.Connection], list[Finding]]] = {
    "migrations": check_migrations,
    "schema": sql_check("schema", "core.verify_schema"),
    "ledger": check_ledger,
}
