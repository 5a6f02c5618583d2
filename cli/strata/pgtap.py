"""Running pgTAP files against a database and reading their TAP output (for `strata test`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import tuple_row

PLAN_RE = re.compile(r"^1\.\.(\d+)")
RESULT_RE = re.compile(r"^(not ok|ok)\s+(\d+)\s*(?:-\s*)?(.*)$")


@dataclass
class FileResult:
    path: Path
    planned: int | None = None
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ran(self) -> int:
        return self.passed + len(self.failures)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures and self.planned is not None and self.planned == self.ran


def parse_tap(lines: list[str], result: FileResult) -> FileResult:
    last_failure: int | None = None
    for line in lines:
        if match := PLAN_RE.match(line):
            result.planned = int(match.group(1))
        elif match := RESULT_RE.match(line):
            if match.group(1) == "ok":
                result.passed += 1
                last_failure = None
            else:
                result.failures.append(f"{match.group(2)} - {match.group(3)}")
                last_failure = len(result.failures) - 1
        elif line.startswith("#") and last_failure is not None and "Looks like" not in line:
            result.failures[last_failure] += "\n    " + line.lstrip("# ")
    return result


def run_file(conn: psycopg.Connection, path: Path) -> FileResult:
    """Runs one pgTAP file (which brings its own BEGIN … ROLLBACK) and collects its TAP lines."""
    result = FileResult(path)
    lines: list[str] = []
    try:
        cur = conn.cursor(row_factory=tuple_row)
        cur.execute(path.read_text())
        while True:
            if cur.pgresult is not None and cur.pgresult.status == ExecStatus.TUPLES_OK:
                # A failed test is one value of several lines (the result, then its diagnostics).
                lines.extend(line for row in cur.fetchall() if row and row[0] is not None
                             for line in str(row[0]).splitlines())
            if not cur.nextset():
                break
    except psycopg.Error as err:
        result.error = (err.diag.message_primary or str(err)).strip().splitlines()[0]
        conn.rollback()
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
    return parse_tap(lines, result)
