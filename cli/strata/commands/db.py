"""`strata db`: the embedded local PostgreSQL under .strata/."""

from __future__ import annotations

import os
import shutil

import click

from strata.connection import for_libpq_program
from strata.context import Context, pass_context
from strata.embedded import EmbeddedCluster
from strata.errors import ConfigurationError, LoginRefused
from strata.output import emit_json, notice, option_json, say, table


@click.group()
def db() -> None:
    """The embedded local PostgreSQL cluster under .strata/ (created on first use)."""


def _cluster(ctx: Context) -> EmbeddedCluster:
    return EmbeddedCluster(ctx.project)


@db.command()
@pass_context
def start(ctx: Context) -> None:
    """Create the cluster if needed and start it."""
    cluster = _cluster(ctx)
    started = cluster.start()
    state = "started" if started else "already running"
    say(f"Embedded database {state} on 127.0.0.1:{cluster.config.port} (socket in {cluster.config.socket_dir}).")


@db.command()
@pass_context
def stop(ctx: Context) -> None:
    """Stop the cluster (its data stays under .strata/)."""
    cluster = _cluster(ctx)
    say("Embedded database stopped." if cluster.stop() else "Embedded database is not running.")


@db.command()
@click.option("--yes", is_flag=True, help="Confirm that the cluster and all its data go.")
@pass_context
def remove(ctx: Context, yes: bool) -> None:
    """Stop the cluster and delete it with all its data, wherever it keeps them."""
    if not yes:
        raise click.UsageError("strata db remove deletes the embedded database and all its data; add --yes to confirm.")
    outcome = _cluster(ctx).remove()
    if outcome is None:
        say("There is no embedded database to remove.")
        return
    removed, kept = outcome
    say(f"Embedded database removed ({', '.join(map(str, removed)) or 'its settings'}).")
    if kept:
        say(f"Left alone, as Strata did not create them: {', '.join(map(str, kept))}.")


@db.command()
@option_json
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Whether the cluster exists and runs, where, and on which port."""
    info = _cluster(ctx).status()
    if as_json:
        emit_json(info)
        return
    table(None, ["", ""], [(key.replace("_", " "), value) for key, value in info.items()], header=False)


@db.command()
@pass_context
def url(ctx: Context) -> None:
    """Print the embedded database's libpq URL (last line), starting it if needed."""
    cluster = _cluster(ctx)
    cluster.start(notice=True)
    say(cluster.url())


# psql options that say where to connect: then psql, not the URL, decides.
PSQL_CONNECTION_OPTIONS = ("-h", "-p", "-U", "-d", "--host", "--port", "--username", "--dbname")


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@pass_context
def psql(ctx: Context, psql_args: tuple[str, ...]) -> None:
    """Open psql on the connected database (extra arguments go to psql). A superuser session
    bypasses row-level security: SET ROLE strata_app to see what the application sees."""
    binary = shutil.which("psql")
    if not binary:
        raise ConfigurationError("psql is not installed; install postgresql-client.")
    # Connecting first gives an unreachable database our one-sentence error, and tells a
    # superuser (the embedded cluster's postgres) that tenant isolation does not apply to it.
    # Only a check: when psql is told where to connect, or the server wants a password the URL
    # does not give (psql asks for it), psql goes ahead on its own.
    if not any(arg.startswith(PSQL_CONNECTION_OPTIONS) for arg in psql_args):
        try:
            with ctx.connect() as conn:
                role, bypasses = conn.execute("SELECT current_user, rolsuper OR rolbypassrls FROM pg_catalog.pg_roles"
                                              " WHERE rolname = current_user").fetchone()
            if bypasses:
                notice(f"Connected as {role}, which bypasses row-level security and sees every tenant; "
                       "SET ROLE strata_app to see what the application sees.")
        except LoginRefused as err:
            if "password" not in str(err):  # psql can ask for a password, not fix a database name
                raise
    conninfo, env = for_libpq_program(ctx.url)
    os.execve(binary, [binary, conninfo, *psql_args], env)  # the password stays out of the process list



COMMANDS = [db]
