"""`strata verify`: every rule Strata promises, checked on the connected database."""

from __future__ import annotations

import click

from strata.checks import CHECKS
from strata.context import Context, pass_context
from strata.errors import CheckFailed
from strata.output import emit_json, option_json, say, table


@click.command()
@option_json
@click.option("--only", "only", type=click.Choice(sorted(CHECKS)), multiple=True,
              help="Run only this kind of check (repeatable).")
@click.option("--all", "show_all", is_flag=True, help="List passing checks too, not only failures.")
@pass_context
def verify(ctx: Context, as_json: bool, only: tuple[str, ...], show_all: bool) -> None:
    """Check migrations, schema rules and the audit ledger; exit 1 on any failure.

    Kinds: migrations (applied, unedited, code layer current), schema (RLS, security_invoker
    views, pinned search_path, grants, role matrix, tenant keys and indexes), ledger (the audit
    chain verifies, unsealed events and their age).
    """
    findings = []
    with ctx.connect() as conn:
        for kind, check in CHECKS.items():
            if only and kind not in only:
                continue
            findings.extend(check(ctx, conn))
    failures = [f for f in findings if not f.ok]
    if as_json:
        emit_json({"ok": not failures, "checks": len(findings), "failures": len(failures),
                   "findings": [f.as_dict() for f in (findings if show_all or not failures else failures)]})
    else:
        shown = findings if show_all else failures
        if shown:
            table(None, ["kind", "check", "object", "result", "fix"],
                  [(f.kind, f.check, f.object, "ok" if f.ok else f"FAIL: {f.message}", f.fix) for f in shown])
        say(f"{len(findings)} checks, {len(failures)} failed." if failures else f"All {len(findings)} checks passed.")
    if failures:
        raise CheckFailed(f"{len(failures)} check(s) failed.")


COMMANDS = [verify]
