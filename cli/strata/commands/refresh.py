"""`strata refresh`: recompute the analytics projections (core.refresh_revenue())."""

from __future__ import annotations

import time

import click

from strata.context import Context, pass_context
from strata.output import emit_json, option_json, say


@click.command()
@option_json
@pass_context
def refresh(ctx: Context, as_json: bool) -> None:
    """Recompute revenue analytics (app.v_revenue_by_product) for every tenant.

    Calls core.refresh_revenue(), which rebuilds each tenant's revenue per product from its
    paid, shipped and delivered orders in one transaction, and prints how many product rows it
    wrote. Run it on a schedule (cron, pg_cron) as the owner or a superuser; readers see the
    previous figures until it commits.
    """
    started = time.perf_counter()
    with ctx.connect(autocommit=False) as conn:
        rows = conn.execute("SELECT core.refresh_revenue()").fetchone()[0]
        refreshed_at = conn.execute("SELECT now()").fetchone()[0]
        conn.commit()
    seconds = time.perf_counter() - started
    if as_json:
        emit_json({"rows": rows, "refreshed_at": refreshed_at, "seconds": round(seconds, 3)})
        return
    say(f"Refreshed revenue analytics: {rows:,} product row(s) in {seconds:.2f} s.")


COMMANDS = [refresh]
