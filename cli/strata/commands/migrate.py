"""`strata migrate`, `strata rollback`, `strata status`: the schema's version."""

from __future__ import annotations

import click

from strata.context import Context, pass_context
from strata.errors import CheckFailed
from strata.migrator import Migrator, Plan
from strata.output import emit_json, notice, option_json, say, table

lock_timeout_option = click.option(
    "--lock-timeout", type=click.FloatRange(min=0), default=60, show_default=True, metavar="SECONDS",
    help="Seconds to wait for another migration run to finish.",
)


def _print_plan(plan: Plan, dry_run: bool) -> None:
    verb = {"apply": "apply", "rollback": "roll back"}[plan.direction]
    if plan.empty:
        say("Nothing to do: the database is up to date." if plan.direction == "apply" else "Nothing to roll back.")
        return
    head = "Would" if dry_run else "Will"
    if plan.migrations:
        say(f"{head} {verb} {len(plan.migrations)} migration(s):")
        for mid in plan.migrations:
            say(f"  {mid}")
    if plan.rebuild_code:
        reason = (f"{len(plan.code_changed)} file(s) changed" if plan.code_changed
                  else "after the migrations" if plan.migrations else "on request")
        listed = ":" if plan.code_changed else "."
        say(f"{head} rebuild the code layer from {len(plan.code_files)} sql/ file(s) ({reason}){listed}")
        for path in plan.code_changed:
            say(f"  {path}")


def _run(migrator: Migrator, make_plan, dry_run: bool) -> None:
    with migrator.locked(on_wait=lambda: notice("waiting for another migration run to finish…")):
        plan = make_plan()
        _print_plan(plan, dry_run)
        if dry_run or plan.empty:
            return
        migrator.run(plan)
    say("Done.")


@click.command()
@click.option("--to", "to", metavar="ID", help="Apply migrations up to and including ID.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--rebuild", is_flag=True,
              help="Rebuild the sql/ code layer even if no file changed (repairs functions, views or policies changed by hand).")
@click.option("--break-lock", is_flag=True, help="Remove a stale migration lock left by a killed process, then exit.")
@lock_timeout_option
@pass_context
def migrate(ctx: Context, to: str | None, dry_run: bool, rebuild: bool, break_lock: bool, lock_timeout: float) -> None:
    """Apply pending migrations and rebuild the sql/ code layer if it changed (one transaction)."""
    if break_lock and dry_run:
        raise click.UsageError("--break-lock changes the database; it cannot be combined with --dry-run.")
    migrator = ctx.migrator(lock_timeout=lock_timeout, read_only=dry_run)
    try:
        if break_lock:
            removed = migrator.break_lock()
            say("Removed the stale migration lock." if removed else "There was no migration lock to remove.")
            return
        _run(migrator, lambda: migrator.plan_apply(to, rebuild=rebuild), dry_run)
    finally:
        migrator.close()


@click.command()
@click.option("--to", "to", metavar="ID", help="Roll back every migration applied after ID (ID stays applied).")
@click.option("--steps", type=int, metavar="N", help="Roll back the last N migrations (default 1).")
@click.option("--all", "all_", is_flag=True, help="Roll back every migration.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@lock_timeout_option
@pass_context
def rollback(ctx: Context, to: str | None, steps: int | None, all_: bool, dry_run: bool, lock_timeout: float) -> None:
    """Roll back applied migrations, newest first, with the code layer that needs them."""
    if sum(x is not None and x is not False for x in (to, steps, all_ or None)) > 1:
        raise click.UsageError("Give at most one of --to, --steps and --all.")
    migrator = ctx.migrator(lock_timeout=lock_timeout, read_only=dry_run)
    try:
        _run(migrator, lambda: migrator.plan_rollback(to=to, steps=steps, all_=all_), dry_run)
    finally:
        migrator.close()


def collect_status(migrator: Migrator) -> dict:
    states = migrator.migration_states()
    applied_ids = {s.id for s in states if s.applied}
    applicable = [f for f in migrator.code_files() if f.requires in applied_ids]
    changed = migrator.code_changes(applicable)
    return {
        "migrations": [s.as_dict() for s in states],
        "pending": [s.id for s in states if not s.applied],
        "edited_after_apply": [s.id for s in states if s.edited],
        "missing_files": [s.id for s in states if s.missing_file],
        "code_layer": {"files": len(applicable), "out_of_date": changed},
    }


def status_problems(status: dict) -> list[str]:
    problems = [f"migration {mid} is pending" for mid in status["pending"]]
    problems += [
        f"migration {m['id']} was edited after it was applied ({', '.join(m['edited_after_apply'])})"
        for m in status["migrations"] if m["edited_after_apply"]
    ]
    problems += [f"migration {mid} is applied but its file is missing" for mid in status["missing_files"]]
    problems += [f"{path} differs from what was applied" for path in status["code_layer"]["out_of_date"]]
    return problems


@click.command()
@option_json
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Applied and pending migrations, edited-after-apply files, and code-layer drift.

    Exits 1 when a migration was edited after it was applied or its file is missing.
    """
    migrator = ctx.migrator(read_only=True)
    try:
        info = collect_status(migrator)
    finally:
        migrator.close()
    info["clean"] = not status_problems(info)
    if as_json:
        emit_json(info)
    else:
        table(
            "Migrations",
            ["migration", "state", "applied at", "edited after apply"],
            [(m["id"], m["state"] + (" (file missing)" if m["missing_file"] else ""), m["applied_at"] or "",
              ", ".join(m["edited_after_apply"])) for m in info["migrations"]],
        )
        code = info["code_layer"]
        drift = ", ".join(code["out_of_date"]) or "none"
        say(f"Code layer: {code['files']} sql/ file(s) apply; out of date: {drift}.")
        say("Status: clean." if info["clean"] else "Status: " + "; ".join(status_problems(info)) + ".")
    if info["edited_after_apply"] or info["missing_files"]:
        raise CheckFailed("applied migrations no longer match their files (see above).")


COMMANDS = [migrate, rollback, status]
