"""`strata inspect`: what Strata installed, from core.catalog_objects()."""

from __future__ import annotations

import click
from psycopg.rows import dict_row

from strata.context import Context, pass_context
from strata.errors import CheckFailed
from strata.output import emit_json, option_json, say, table

KIND_ORDER = ["schema", "table", "view", "materialized view", "function", "procedure", "policy"]


def _summary(row: dict) -> str:
    d = row["details"]
    kind = row["kind"]
    if kind == "table":
        flags = ("RLS forced" if d["rls_forced"] else "RLS on" if d["rls_enabled"] else "no RLS")
        rows = "no row estimate yet" if d["estimated_rows"] is None else f"~{d['estimated_rows']} rows"
        return f"{flags}, {rows}"
    if kind in ("view", "materialized view"):
        return "security_invoker" if d["security_invoker"] else "runs as owner"
    if kind in ("function", "procedure"):
        pinned = "search_path pinned" if any(c.startswith("search_path=") for c in d["config"] or []) else ""
        return ", ".join(x for x in (f"returns {d['returns']}", d["security"], d["volatility"], pinned) if x)
    if kind == "policy":
        return f"{d['command']} on {d['table']} to {', '.join(d['roles'] or [])}"
    return f"owner {d['owner']}"


@click.command()
@click.argument("name", required=False)
@option_json
@pass_context
def inspect(ctx: Context, name: str | None, as_json: bool) -> None:
    """Schemas, tables, views, functions, policies and grants that Strata installed.

    NAME narrows the listing to one schema (`orders`), one object (`app.v_users`,
    `app.create_user`) or one kind (`policy`); with one match the full details are shown.
    """
    with ctx.connect() as conn:
        installed = conn.execute("SELECT to_regprocedure('core.catalog_objects()') IS NOT NULL").fetchone()[0]
        if not installed:
            raise CheckFailed("This database has no Strata catalog; run `strata migrate` first.")
        rows = conn.cursor(row_factory=dict_row).execute(
            "SELECT kind, schema_name, object_name, identity, details, description FROM core.catalog_objects()"
        ).fetchall()
    if name:
        wanted = name.lower()
        rows = [
            r for r in rows
            if wanted in (r["kind"], r["schema_name"], f"{r['schema_name']}.{r['object_name']}", r["identity"].lower())
        ]
        if not rows:
            raise CheckFailed(f"Nothing named {name} is installed.")
    rows.sort(key=lambda r: (KIND_ORDER.index(r["kind"]), r["schema_name"], r["identity"]))
    if as_json:
        emit_json(rows)
        return
    if name and len(rows) == 1:
        row = rows[0]
        say(f"{row['kind']} {row['identity']}")
        say(f"  {row['description'] or '(no comment)'}")
        for key, value in row["details"].items():
            say(f"  {key}: {value}")
        return
    table(None, ["kind", "name", "summary", "comment"],
          [(r["kind"], r["identity"], _summary(r), r["description"] or "") for r in rows])


COMMANDS = [inspect]
