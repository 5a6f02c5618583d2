"""`strata`: apply, verify and inspect a Strata database.

Each command group lives in its own module under strata.commands; this module only wires them
together and turns failures into one sentence and an exit code (0 ok, 1 check failed, 2 usage
or configuration, 3 database unreachable).
"""

from __future__ import annotations

import os
import sys

import click
import psycopg

from strata import __version__
from strata.context import Context
from strata.errors import EXIT_CHECK_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, StrataError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    metavar="URL",
    help="libpq URL of the database. Default: $STRATA_DATABASE_URL, then $DATABASE_URL, then the embedded database under .strata/.",
)
@click.version_option(__version__, prog_name="strata")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Strata: enterprise patterns for multi-tenant PostgreSQL.

    Applies Strata's migrations, verifies a database against its rules and inspects what is
    there. Every command works on the embedded database under .strata/ unless a database URL
    is given.
    """
    ctx.obj = Context(database_url)


def _register() -> None:
    """Every module in strata.commands contributes the click commands in its COMMANDS list."""
    import importlib
    import pkgutil

    import strata.commands

    for info in sorted(pkgutil.iter_modules(strata.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"strata.commands.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)


_register()


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main() -> None:
    try:
        cli.main(prog_name="strata", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.Abort:
        _fail("aborted.", EXIT_USAGE)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_USAGE if isinstance(err, click.UsageError) else err.exit_code)
    except StrataError as err:
        _fail(str(err), err.exit_code)
    except psycopg.OperationalError as err:
        _fail(f"lost the connection to the database: {str(err).strip().splitlines()[0]}", EXIT_UNREACHABLE)
    except psycopg.Error as err:
        first = (err.diag.message_primary or str(err)).strip().splitlines()[0]
        _fail(f"the database refused: {first}", EXIT_CHECK_FAILED)
    except KeyboardInterrupt:
        _fail("interrupted.", 130)
    except Exception as err:  # noqa: BLE001 - a one-line message instead of a traceback
        if os.environ.get("STRATA_DEBUG"):
            raise
        _fail(f"unexpected {type(err).__name__}: {err} (set STRATA_DEBUG=1 for the traceback)", EXIT_CHECK_FAILED)
    sys.exit(0)
