"""One way to print results: readable tables for people, `--json` for machines.

Data goes to stdout; notices and progress go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
from rich.console import Console
from rich.table import Table

# Wide when piped, so tables in logs and tests are not wrapped at 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, soft_wrap=True)


def _default(value: Any):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_default))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, header: bool = True) -> None:
    grid = Table(title=title, title_justify="left", show_edge=False, header_style="bold", show_header=header)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(grid)


def notice(message: str) -> None:
    click.echo(f"strata: {message}", err=True)


def say(message: str) -> None:
    click.echo(message)


option_json = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")


def is_tty() -> bool:
    return sys.stdout.isatty()
