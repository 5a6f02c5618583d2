"""Where the project's migrations, SQL definitions and embedded cluster live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from strata.errors import ConfigurationError


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def migrations_dir(self) -> Path:
        return self.root / "migrations"

    @property
    def sql_dir(self) -> Path:
        return self.root / "sql"

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests"

    @property
    def state_dir(self) -> Path:
        """The embedded cluster's home (git-ignored)."""
        return self.root / ".strata"


def _is_root(path: Path) -> bool:
    return (path / "migrations").is_dir() and (path / "sql").is_dir()


def find_project() -> Project:
    """The Strata checkout: $STRATA_HOME, else the nearest parent of the working directory,
    else the checkout this package was installed from (editable install)."""
    explicit = os.environ.get("STRATA_HOME")
    if explicit:
        path = Path(explicit).resolve()
        if not _is_root(path):
            raise ConfigurationError(f"STRATA_HOME={explicit} has no migrations/ and sql/ folders.")
        return Project(path)
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if _is_root(candidate) and (candidate / "cli" / "strata").is_dir():
            return Project(candidate)
    installed = Path(__file__).resolve().parent.parent.parent
    if _is_root(installed):
        return Project(installed)
    raise ConfigurationError(
        "Cannot find the Strata project (migrations/ and sql/); run inside the checkout or set STRATA_HOME."
    )
