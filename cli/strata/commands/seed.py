"""`strata seed`: demo tenants, customers, products and orders (library: strata.seed)."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from strata import seed as library
from strata.context import Context, pass_context
from strata.output import emit_json, option_json, say, stderr, table


@click.command()
@click.option("--tenants", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Demo tenants to create or reuse: demo-1 … demo-N, admin admin@demo-N.example.")
@click.option("--orders", type=click.IntRange(0, 100_000_000), default=300, show_default=True,
              help="Orders to add, spread evenly over the tenants.")
@click.option("--mode", type=click.Choice(["auto", "app", "bulk"]), default="auto", show_default=True,
              help=f"app: every call through the app functions; bulk: set-based SQL; auto: app up to "
                   f"{library.APP_PATH_LIMIT:,} orders, bulk above.")
@click.option("--with-ledger", is_flag=True,
              help="Bulk path only: keep per-row ledger capture and all triggers on (about 3x slower; "
                   "needs only the owner's privileges).")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Tenants seeded in parallel, one connection each.")
@click.option("--if-empty", is_flag=True, help="Seed only when the database has no tenant yet.")
@option_json
@pass_context
def seed(ctx: Context, tenants: int, orders: int, mode: str, with_ledger: bool, jobs: int, if_empty: bool,
         as_json: bool) -> None:
    """Create demo data: tenants, customers, products and orders in every state.

    \b
    Tenants demo-1 … demo-N are created (or reused) with customers and products sized to
    the orders, then --orders orders are added to them. Running it again adds more orders.

    \b
    The app path calls app.create_customer, app.create_product, app.create_order,
    app.restock_product, app.process_payment, app.update_order_status and app.cancel_order
    as each tenant's admin, so every rule, identifier and ledger event is real.

    \b
    The bulk path (large sets; --orders 1000000 takes a few minutes) BYPASSES the app
    functions: it writes the tables with INSERT … SELECT under each tenant's context, one
    transaction per batch of orders, keeping identifiers gapless (ORD-/CUS-/PAY- counters),
    totals, payments, refunds and stock (reserved = open orders) consistent. By default it
    also turns triggers off for its own session (needs a superuser): the ledger gets one
    seed.bulk_load event per batch naming the identifiers loaded instead of one event per
    row, and those orders have no per-order history. --with-ledger keeps every trigger on.
    """
    url = ctx.url
    with ctx.connect() as conn:
        library.check_can_seed(conn)
        existing = library.tenant_count(conn)
    if if_empty and existing:
        if as_json:
            emit_json({"seeded": False, "reason": f"the database already has {existing} tenant(s)"})
        else:
            say(f"Not seeding: the database already has {existing} tenant(s) (--if-empty).")
        return

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task("seeding orders", total=orders)

        def progress(advance: int, description: str) -> None:
            bar.update(task, advance=advance, description=f"seeding orders ({description})")

        result = library.seed(url, tenants=tenants, orders=orders, mode=mode, with_ledger=with_ledger,
                              jobs=jobs, progress=progress)
    if as_json:
        emit_json({"seeded": True, **result.as_dict()})
        return
    table(None, ["tenant", "name", "admin", "customers", "products", "orders", "new orders", "new paid", "new cancelled"],
          [(t.slug, t.name, t.admin, t.customers, t.products, t.orders, t.orders_created, t.paid, t.cancelled)
           for t in result.tenants])
    say(f"Seeded {result.orders_created:,} orders in {len(result.tenants)} tenant(s) in {result.seconds:.1f} s "
        f"({result.orders_per_second:,.0f} orders/s) through the {result.mode} path; ledger: {result.ledger}.")
    say(f"Try, in strata db psql: {try_hint(result.tenants[0].slug, result.tenants[0].admin)}")


def try_hint(slug: str, admin: str) -> str:
    """SQL to paste into psql, one statement at a time as psql runs them: the application's
    role (a superuser, as `strata db psql` is, bypasses row-level security) and a context for
    the session (the two-argument form lasts one transaction, and psql commits each line).
    The app path makes a batch of orders in one transaction, so they share created_at; the
    identifier, numbered in creation order, breaks the tie."""
    return (f"SET ROLE strata_app; SELECT app.set_context('{slug}', '{admin}', false); "
            "SELECT data FROM app.v_orders_summary ORDER BY created_at DESC, identifier DESC LIMIT 5;")


COMMANDS = [seed]
