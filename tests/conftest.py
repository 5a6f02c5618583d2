"""Test harness: a fresh database per run, migrated by the real runner, plus the login roles
that RLS and privilege tests act as. pgTAP files in tests/sql are collected by pytest-pgtap
through the `pgtap_connection` override below."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from strata.connection import for_libpq_program, mask_password
from strata.embedded import EmbeddedCluster, find_bindir
from strata.migrator import Migrator
from strata.project import Project, find_project

ROOT = Path(__file__).resolve().parent.parent
# Login roles the tests act as (cluster-wide, created once, never superuser or owner).
APP_LOGIN = "strata_test_app"
AUDITOR_LOGIN = "strata_test_auditor"
READONLY_LOGIN = "strata_test_readonly"
TEST_PASSWORD = "strata-test-only"


@pytest.fixture(scope="session")
def project() -> Project:
    return find_project()


@pytest.fixture(scope="session")
def admin_url(project: Project) -> str:
    """A superuser URL on a server where tests may create databases."""
    explicit = os.environ.get("STRATA_TEST_DATABASE_URL")
    if explicit:
        return explicit
    cluster = EmbeddedCluster(project)
    cluster.start(notice=True)
    return cluster.url("postgres")


def url_for(admin_url: str, dbname: str, **overrides: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(admin_url)
    params.update(dbname=dbname, **overrides)
    return psycopg.conninfo.make_conninfo(**params)


def login_url(url: str, login: str) -> str:
    """The same database as url, logged in as one of the test login roles."""
    return url_for(url, psycopg.conninfo.conninfo_to_dict(url)["dbname"], user=login, password=TEST_PASSWORD)


def app_url_of(url: str) -> str:
    """The same database as url, as a non-superuser login role granted strata_app."""
    return login_url(url, APP_LOGIN)


def race(workers: int, work: Callable[[psycopg.Connection, int], object], url: str) -> list:
    """Runs work(conn, n) in `workers` threads, each on its own connection, released together;
    returns each worker's result, in worker order, and re-raises the first error."""
    results: list = [None] * workers
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def run(n: int) -> None:
        try:
            with psycopg.connect(url) as conn:
                start.wait(timeout=30)
                results[n] = work(conn, n)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def _ensure_login_roles(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7350)")  # concurrent test runs share the cluster
        for login, granted in ((APP_LOGIN, "strata_app"), (AUDITOR_LOGIN, "strata_auditor"),
                               (READONLY_LOGIN, "strata_readonly")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
                    sql.Identifier(login), sql.Literal(TEST_PASSWORD)))
            else:  # `strata test` run first makes these roles without a password (nobody logs in as them)
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(login), sql.Literal(TEST_PASSWORD)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), sql.Identifier(login)))
        conn.execute("SELECT pg_advisory_unlock(7350)")


class Databases:
    """Creates fresh databases on the test server and drops them at the end."""

    def __init__(self, admin_url: str, project: Project):
        self.admin_url = admin_url
        self.project = project
        self.created: list[str] = []

    def create(self, label: str = "t", *, migrate: bool = True) -> str:
        name = f"strata_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        url = url_for(self.admin_url, name)
        if migrate:
            self.migrate(url)
        return url

    def migrate(self, url: str, project: Project | None = None) -> None:
        migrator = Migrator(project or self.project, url)
        try:
            with migrator.locked():
                migrator.run(migrator.plan_apply())
        finally:
            migrator.close()
        if migrator.migration_ids():
            _ensure_login_roles(self.admin_url)

    def drop_all(self) -> None:
        if os.environ.get("STRATA_KEEP_TEST_DB"):
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def databases(admin_url: str, project: Project) -> Iterator[Databases]:
    dbs = Databases(admin_url, project)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def db_url(databases: Databases) -> str:
    """The session's migrated database (superuser URL). Tests that break the schema on purpose
    must use `databases.create()` instead."""
    url = databases.create("suite")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")
    return url


@pytest.fixture(scope="session")
def app_url(db_url: str) -> str:
    """The session database, logged in as a non-superuser login role granted strata_app."""
    return app_url_of(db_url)


@pytest.fixture(scope="session")
def auditor_url(db_url: str) -> str:
    return url_for(db_url, psycopg.conninfo.conninfo_to_dict(db_url)["dbname"],
                   user=AUDITOR_LOGIN, password=TEST_PASSWORD)


@pytest.fixture(scope="session")
def pgtap_connection(db_url: str):
    """pytest-pgtap's connection, on the migrated test database. Connection failure fails the
    run (the plugin's default would skip every pgTAP file)."""
    with psycopg.connect(db_url) as conn:
        yield conn


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def run_cli(*args: str, url: str | None = None, env: dict | None = None, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `strata` command in a subprocess, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STRATA_DATABASE_URL")}
    full_env.update(env or {})
    command = [sys.executable, "-m", "strata"]
    if url:
        command += ["--database-url", url]
    command += args
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd or ROOT)
    except subprocess.TimeoutExpired as err:
        raise subprocess.TimeoutExpired(masked_command(command), err.timeout, err.output, err.stderr) from None
    # A failed assertion prints the result, command line included: CI logs must not show passwords.
    result.args = masked_command(command)
    return result


def masked_command(command: list[str]) -> list[str]:
    """A command line with the password of any URL or conninfo in it replaced by ***."""
    return [mask_password(str(arg), str(arg)) for arg in command]


def run_psql(url: str, script: str, *args: str) -> subprocess.CompletedProcess:
    """psql on `url` reading `script` from stdin as a person pasting it would (each statement
    committed on its own), with the password in the environment, not on the command line."""
    conninfo, env = for_libpq_program(url)
    return subprocess.run([str(find_bindir() / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", *args, "-d", conninfo],
                          input=script, capture_output=True, text=True, timeout=60, env=env)


def pg_dump_schema(url: str) -> str:
    """The database's schema as `pg_dump --schema-only` prints it, without Strata's bookkeeping
    and without the random `\\restrict` key that pg_dump 15.14+ writes on every run, so two
    dumps of the same catalog compare equal."""
    conninfo, env = for_libpq_program(url)
    out = subprocess.run(
        [str(find_bindir() / "pg_dump"), "--schema-only", "--exclude-schema=strata_meta", "-d", conninfo],
        capture_output=True, text=True, check=True, env=env,
    )
    return "".join(
        line for line in out.stdout.splitlines(keepends=True)
        if not line.startswith(("\\restrict ", "\\unrestrict "))
    )


def pytest_collection_modifyitems(session, config, items):
    """A suite that collects no pgTAP file is broken, not green."""
    whole_suite = all(Path(arg).resolve() in (ROOT, ROOT / "tests") for arg in config.args)
    if not whole_suite or config.getoption("keyword") or config.getoption("markexpr"):
        return
    sql_files = sorted((ROOT / "tests" / "sql").glob("test_*.sql"))
    collected = {Path(str(item.fspath)).name for item in items if str(item.fspath).endswith(".sql")}
    missing = [f.name for f in sql_files if f.name not in collected]
    if missing:
        raise pytest.UsageError(f"pgTAP files were not collected: {', '.join(missing)}")
