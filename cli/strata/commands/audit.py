"""`strata audit`: verify, seal, checkpoint, watch and re-key the audit ledger.

Verification is done here, in Python, from the stored columns (strata.ledger); the other
commands call the audit.* functions a psql user would call.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from uuid import UUID

import click
import psycopg
from psycopg.rows import dict_row

from strata import ledger
from strata.context import Context, pass_context
from strata.errors import CheckFailed, ConfigurationError
from strata.output import emit_json, notice, option_json, say

TENANT_HELP = "Only this tenant's events: its id, or its slug when the tenancy functions are installed."


@click.group()
def audit() -> None:
    """The tamper-evident audit ledger: verify it, seal it, export checkpoints, watch it.

    Events are hashed when written and sealed into signed, chained blocks within about a second
    of commit under load. `verify` recomputes every hash here, without trusting the database.
    """


def resolve_tenant(conn: psycopg.Connection, value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        pass
    try:
        with conn.transaction():
            present = conn.execute("SELECT to_regprocedure('core.tenants()') IS NOT NULL").fetchone()[0]
            row = conn.execute("SELECT id FROM core.tenants() WHERE slug = %s", (value,)).fetchone() if present else None
    except psycopg.errors.InsufficientPrivilege:
        present = False
    if present:
        if row is None:
            raise ConfigurationError(f"There is no tenant with slug {value!r}.")
        return row[0]
    raise ConfigurationError(f"--tenant {value!r} is not a tenant id (a UUID), and this login cannot look up slugs.")


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_report(report: ledger.Report) -> None:
    if report.ok:
        rate = f", {report.events / report.seconds:,.0f} events/s" if report.seconds > 0 and report.events else ""
        say(f"Ledger verified ({report.scope}): {_count(report.blocks, 'block')}, {_count(report.events, 'event')} "
            f"in {report.seconds:.2f} s{rate}.")
    else:
        p = report.problem
        where = ", ".join(x for x in (f"block {p.block}" if p.block else "",
                                      f"event {p.event}" + (f" ({p.event_id})" if p.event_id else "") if p.event else "")
                          if x)
        say(f"Ledger FAILED ({report.scope}){': ' + where if where else ''}.")
        say(f"  {p.message}.")
        if report.blocks:
            say(f"  Blocks 1-{report.blocks} ({_count(report.events, 'event')}) verified before it.")
    if report.signatures == "verified":
        say("Signatures: checked here with the signing keys.")
    else:
        say("Signatures: checked by the database only (this login cannot read the signing keys; "
            "connect as strata_owner to check them here).")
    if report.checkpoint:
        say(f"Checkpoint: {report.checkpoint}.")
    if report.ok:
        if report.unsealed:
            say(f"Unsealed: {_count(report.unsealed, 'event')} waiting for a block, the oldest for "
                f"{_age(report.unsealed_age_seconds)}.")
        else:
            say("Unsealed: none.")


@audit.command(name="verify")
@click.option("--tenant", metavar="T", help=TENANT_HELP)
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A checkpoint from `strata audit checkpoint`: also detects a cut-off or rewritten history.")
@option_json
@pass_context
def verify_(ctx: Context, tenant: str | None, checkpoint_file: Path | None, as_json: bool) -> None:
    """Recompute every event hash, block, Merkle root, chain link and signature; exit 1 on any problem.

    Names the first bad block or event. Run it as strata_auditor (or the owner, which also lets
    it check the signatures itself rather than ask the database).
    """
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = ledger.load_checkpoint(checkpoint_file.read_text())
        except OSError as err:
            raise ConfigurationError(f"Cannot read the checkpoint {checkpoint_file}: {err.strerror}.") from err
        except ValueError as err:
            raise ConfigurationError(f"{checkpoint_file}: {err}.") from err
    with ctx.connect() as conn:
        try:
            report = ledger.verify(conn, resolve_tenant(conn, tenant), checkpoint)
        except psycopg.errors.InsufficientPrivilege as err:
            raise ConfigurationError("This login may not read the ledger: verify as a login granted strata_auditor, "
                                     "or as the owner.") from err
    if as_json:
        emit_json(report.as_dict())
    else:
        named = tenant is not None and tenant != report.scope  # named by slug: show it next to the id
        _print_report(dataclasses.replace(report, scope=f"{tenant}, {report.scope}") if named else report)
    if not report.ok:
        raise CheckFailed(f"the audit ledger does not verify: {report.problem.message}.")


@audit.command()
@option_json
@pass_context
def seal(ctx: Context, as_json: bool) -> None:
    """Seal every committed event into new signed blocks now (audit.seal()); needs strata_owner."""
    with ctx.connect() as conn:
        try:
            row = conn.cursor(row_factory=dict_row).execute("SELECT * FROM audit.seal()").fetchone()
        except psycopg.errors.InsufficientPrivilege as err:
            raise ConfigurationError("This login may not seal the ledger: sealing needs strata_owner.") from err
        except psycopg.errors.LockNotAvailable as err:
            raise CheckFailed("Another session held the seal lock for 10 s; try again.") from err
    if as_json:
        emit_json(row)
    elif row["blocks"]:
        say(f"Sealed {_count(row['events'], 'event')} into {_count(row['blocks'], 'block')}; "
            f"the newest block is {row['last_block']}.")
    else:
        newest = f"the newest block is {row['last_block']}" if row["last_block"] else "there is no block yet"
        say(f"Nothing to seal: {newest}.")


@audit.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the checkpoint to FILE instead of standard output.")
@pass_context
def checkpoint(ctx: Context, out: Path | None) -> None:
    """Export the signed head of the ledger (block, hash, size, root, time, key id) as JSON.

    Keep it outside the database: `strata audit verify --checkpoint FILE` then detects a history
    that was cut off or rewritten since. Seals pending events first when this login may.
    """
    with ctx.connect() as conn:
        if not ledger.seal_what_committed(conn):
            notice("could not seal now (this login may not seal, or another session held the seal lock), "
                   "so the checkpoint covers the newest block sealed so far.")
        data = ledger.checkpoint(conn)
    if data is None:
        raise CheckFailed("The ledger has no sealed block yet, so there is nothing to checkpoint.")
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as err:
        raise ConfigurationError(f"Cannot write {out}: {err.strerror}.") from err
    notice(f"checkpoint of block {data['block']} ({data['size']:,} events) written to {out}.")


TAIL_QUERY = """
    SELECT e.pk_event, e.id, e.tenant_id, e.occurred_at, e.actor_id, e.correlation_id, e.login_role,
           e.entity_type, e.entity_id, e.identifier, e.operation, e.changed_fields, e.new_data, e.metadata
      FROM audit.blocks AS b
      CROSS JOIN LATERAL audit.block_members(
          coalesce((SELECT p.snapshot FROM audit.blocks AS p WHERE p.block_no = b.block_no - 1),
                   audit.genesis_snapshot()),
          b.snapshot) AS e
     WHERE b.block_no = %(block)s AND (%(tenant)s::uuid IS NULL OR e.tenant_id = %(tenant)s::uuid)
     ORDER BY e.pk_event
"""


def _event_line(block: int, e: dict) -> str:
    what = e["identifier"] or (str(e["entity_id"]) if e["entity_id"] else "")
    fields = f" [{', '.join(e['changed_fields'])}]" if e["changed_fields"] else ""
    actor = f" actor {e['actor_id']}" if e["actor_id"] else ""
    return (f"{e['occurred_at'].astimezone().isoformat(timespec='milliseconds')}  block {block}  "
            f"{e['operation']:<10} {e['entity_type']} {what}{fields}  tenant {e['tenant_id']}{actor}  by {e['login_role']}")


@audit.command()
@click.option("--tenant", metavar="T", help=TENANT_HELP)
@click.option("--max-events", type=click.IntRange(min=1), metavar="N", help="Stop after printing N events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
@pass_context
def tail(ctx: Context, tenant: str | None, max_events: int | None, as_json: bool) -> None:
    """Print events as they are sealed into blocks, until interrupted (Ctrl-C).

    Listens for the `strata_audit` notification each sealed block sends, so every committed event
    is shown exactly once, in ledger order, within about a second of its commit. When this login
    may seal (strata_owner) it also seals every second, so quiet periods show up promptly too.
    """
    printed = 0
    with ctx.connect() as conn:
        tenant_id = resolve_tenant(conn, tenant)
        cur = conn.cursor(row_factory=dict_row, binary=True)  # binary: whatever the session's DateStyle
        can_seal = conn.execute("SELECT has_function_privilege('audit.seal()', 'EXECUTE')").fetchone()[0]
        last = conn.execute("SELECT coalesce(max(block_no), 0) FROM audit.blocks").fetchone()[0]
        conn.execute("LISTEN strata_audit")
        notice(f"watching the audit ledger from block {last + 1}{' (sealing every second)' if can_seal else ''}; "
               "Ctrl-C to stop.")
        try:
            while True:
                if can_seal:
                    conn.execute("SELECT audit.seal()")
                newest = conn.execute("SELECT coalesce(max(block_no), 0) FROM audit.blocks").fetchone()[0]
                for block in range(last + 1, newest + 1):
                    for event in cur.execute(TAIL_QUERY, {"block": block, "tenant": tenant_id}):
                        if as_json:
                            click.echo(json.dumps({"block": block, **event}, default=str))
                        else:
                            click.echo(_event_line(block, event))
                        printed += 1
                        if max_events is not None and printed >= max_events:
                            return
                last = newest
                deadline = time.monotonic() + 1.0
                for _ in conn.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
                    pass
        except KeyboardInterrupt:
            return


@audit.command(name="rotate-key")
@pass_context
def rotate_key(ctx: Context) -> None:
    """Retire the signing key and sign new blocks with a new one; older blocks keep verifying."""
    with ctx.connect() as conn:
        try:
            key_id = conn.execute("SELECT audit.rotate_key()").fetchone()[0]
        except psycopg.errors.InsufficientPrivilege as err:
            raise ConfigurationError("This login may not rotate the signing key: that needs strata_owner.") from err
        keys = conn.execute("SELECT key_id, retired_at, blocks FROM audit.signing_key_ids()", binary=True).fetchall()
    retired = [f"{k} ({n} blocks)" for k, r, n in keys if r is not None]
    say(f"Signing key {key_id} now signs new blocks."
        + (f" Retired keys, kept to verify older blocks: {', '.join(retired)}." if retired else ""))


COMMANDS = [audit]
