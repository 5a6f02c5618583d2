"""What every command shares: the project, the resolved database, and connections to it."""

from __future__ import annotations

import click
import psycopg

from strata.connection import Target, connect, resolve
from strata.project import Project, find_project


class Context:
    def __init__(self, database_url: str | None):
        self.database_url = database_url
        self._project: Project | None = None
        self._target: Target | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = find_project()
        return self._project

    @property
    def target(self) -> Target:
        if self._target is None:
            project = None if self.database_url else self.project
            self._target = resolve(self.database_url, project=project)
        return self._target

    @property
    def url(self) -> str:
        return self.target.url

    def connect(self, **kwargs) -> psycopg.Connection:
        return connect(self.url, **kwargs)

    def migrator(self, **kwargs):
        from strata.migrator import Migrator

        return Migrator(self.project, self.url, **kwargs)


pass_context = click.make_pass_decorator(Context)
