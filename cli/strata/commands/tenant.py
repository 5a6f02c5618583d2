"""`strata tenant`: create and list tenants (organizations), through core functions."""

from __future__ import annotations

import click
from psycopg.rows import dict_row

from strata.context import Context, pass_context
from strata.errors import CheckFailed
from strata.ledger import seal_what_committed
from strata.output import emit_json, option_json, say, table


@click.group()
def tenant() -> None:
    """Tenants (organizations): create one with its first admin, or list them."""


@tenant.command()
@click.argument("name")
@click.option("--slug", required=True, help="Short unique name used to pick the tenant (a-z, 0-9, dashes).")
@click.option("--admin", "admin_email", required=True, metavar="EMAIL", help="Email of the first administrator.")
@click.option("--admin-name", help="Display name of the first administrator (default: the email's local part).")
@click.option("--tier", type=click.Choice(["free", "team", "business", "enterprise"]), default="free", show_default=True,
              help="Subscription tier.")
@option_json
@pass_context
def create(ctx: Context, name: str, slug: str, admin_email: str, admin_name: str | None, tier: str, as_json: bool) -> None:
    """Create tenant NAME with the admin, member and viewer roles and its first admin user.

    Running it again with the same slug and name changes nothing (noop:already_exists).
    """
    with ctx.connect(autocommit=False) as conn:
        result = conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM core.create_tenant(%s, %s, %s, %s, %s)", (name, slug, admin_email, admin_name, tier)
        ).fetchone()
        conn.commit()
        if result["succeeded"]:
            seal_what_committed(conn)
    if as_json:
        emit_json(result)
    elif result["succeeded"]:
        say(f"{result['message']} Tenant id: {result['id']}.")
    if not result["succeeded"]:
        detail = "; ".join(e["message"] for e in result["errors"] or []) or result["message"]
        raise CheckFailed(f"The tenant was not created: {detail.rstrip('.')} ({result['status']}).")


@tenant.command(name="list")
@option_json
@pass_context
def list_(ctx: Context, as_json: bool) -> None:
    """Every tenant in the database."""
    with ctx.connect() as conn:
        rows = conn.cursor(row_factory=dict_row).execute("SELECT * FROM core.tenants()").fetchall()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        say("No tenants yet: create one with `strata tenant create NAME --slug S --admin EMAIL`.")
        return
    table(None, ["slug", "name", "tier", "status", "id", "created"],
          [(r["slug"], r["name"], r["subscription_tier"], r["status"], r["id"], f"{r['created_at']:%Y-%m-%d %H:%M}")
           for r in rows])


COMMANDS = [tenant]
