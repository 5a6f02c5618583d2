"""Applying Strata's schema: versioned migrations (yoyo) plus the code layer in `sql/`.

Two kinds of source make the schema:

* `migrations/NNNN_slug.sql` (+ `.rollback.sql`) hold state: schemas, roles, types, tables,
  constraints, indexes. They are applied once, in order, through yoyo's bookkeeping; a sha256 of
  each file is recorded so an edit after apply is reported (yoyo itself only hashes file names).
* `sql/<context>/*.sql` hold the current definition of every function, view, trigger, policy,
  grant and comment. Each file names the migration it needs in a `-- requires: NNNN_slug` header.
  The code layer is rebuilt whenever any file's checksum changes or a migration is applied or
  rolled back: every object the previous build created is dropped (in reverse order), then each
  file whose migration is applied is run, in migration order then path order, and the objects it
  created are recorded against it. So a file is the one place a definition lives, a deleted
  function disappears from the database, and rollback removes exactly what a file added.

Every run is one transaction: a failing migration or file leaves the database as it was.
Objects are created as `strata_owner` once that role exists.

A read-only Migrator (`strata status`, `strata verify`, `--dry-run`) never writes: on a database
Strata has not touched it reports every migration as pending instead of creating its bookkeeping.
"""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri
from yoyo.exceptions import LockTimeout

from strata.connection import connect
from strata.errors import CheckFailed, ConfigurationError, StrataError
from strata.project import Project

META_SCHEMA = "strata_meta"
MIGRATION_TABLE = "_yoyo_migration"
OWNER_ROLE = "strata_owner"
# Any stable 64-bit number: the session-level advisory lock that marks a live migration run.
ADVISORY_LOCK_KEY = 0x5374726174614D67  # "StrataMg"
# Held while a process sets up the bookkeeping (strata_meta and yoyo's own tables). yoyo's
# internal-schema upgrade takes its lock row before the migration lock can be held, so whoever
# checks that row for a stale lock holds this one too, or it would see a set-up in progress.
BOOTSTRAP_LOCK_KEY = ADVISORY_LOCK_KEY + 1
REQUIRES_RE = re.compile(r"^--\s*requires:\s*(\S+)\s*$", re.MULTILINE)

# Run as one implicit transaction; the lock keeps two first-time runs from racing on CREATE.
META_DDL = f"""
SELECT pg_catalog.pg_advisory_xact_lock({BOOTSTRAP_LOCK_KEY});
CREATE SCHEMA IF NOT EXISTS {META_SCHEMA};
COMMENT ON SCHEMA {META_SCHEMA} IS 'Strata''s migration bookkeeping (yoyo tables, checksums, code-layer objects).';
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.migration_checksum (
    migration_id    text PRIMARY KEY,
    sha256          text NOT NULL,
    rollback_sha256 text,
    applied_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.code_file (
    path       text PRIMARY KEY,
    requires   text NOT NULL,
    sha256     text NOT NULL,
    position   integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.code_object (
    kind     text NOT NULL,
    identity text NOT NULL,
    path     text NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (kind, identity)
);
"""

# Objects the code layer may create: (kind, identity) pairs, extension members excluded.
SNAPSHOT_SQL = """
WITH user_ns AS (
    SELECT oid, nspname FROM pg_catalog.pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'strata_meta', 'pg_toast')
      AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%'
), ext AS (
    SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'
)
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
       p.oid::pg_catalog.regprocedure::text
  FROM pg_catalog.pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
 WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_catalog.pg_proc'::regclass AND ext.objid = p.oid)
UNION ALL
SELECT CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, c.oid::pg_catalog.regclass::text
  FROM pg_catalog.pg_class c JOIN user_ns n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm')
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_catalog.pg_class'::regclass AND ext.objid = c.oid)
UNION ALL
SELECT 'policy', pg_catalog.format('%I ON %s', pol.polname, pol.polrelid::pg_catalog.regclass)
  FROM pg_catalog.pg_policy pol JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
  JOIN user_ns n ON n.oid = c.relnamespace
UNION ALL
SELECT 'trigger', pg_catalog.format('%I ON %s', t.tgname, t.tgrelid::pg_catalog.regclass)
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN user_ns n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'type', t.oid::pg_catalog.regtype::text
  FROM pg_catalog.pg_type t JOIN user_ns n ON n.oid = t.typnamespace
  LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
 WHERE (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_catalog.pg_type'::regclass AND ext.objid = t.oid)
"""

# Within one file, what depends on others goes first.
DROP_ORDER = ["trigger", "policy", "materialized view", "view", "aggregate", "procedure", "function", "type"]

DROP_TEMPLATES = {
    "function": "DROP FUNCTION IF EXISTS {identity}",
    "procedure": "DROP PROCEDURE IF EXISTS {identity}",
    "aggregate": "DROP AGGREGATE IF EXISTS {identity}",
    "view": "DROP VIEW IF EXISTS {identity}",
    "materialized view": "DROP MATERIALIZED VIEW IF EXISTS {identity}",
    "policy": "DROP POLICY IF EXISTS {identity}",
    "trigger": "DROP TRIGGER IF EXISTS {identity}",
    "type": "DROP TYPE IF EXISTS {identity}",
}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class CodeFile:
    path: Path
    relpath: str
    requires: str
    sha256: str


@dataclass
class MigrationState:
    id: str
    applied: bool
    applied_at: str | None = None
    edited: list[str] = field(default_factory=list)  # "migration", "rollback"
    missing_file: bool = False
    has_rollback: bool = True

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "state": "applied" if self.applied else "pending",
            "applied_at": self.applied_at,
            "edited_after_apply": self.edited,
            "missing_file": self.missing_file,
        }


@dataclass
class Plan:
    direction: str  # "apply" or "rollback"
    migrations: list[str]
    code_files: list[str]  # the files the rebuilt code layer will run
    code_changed: list[str]  # files added, changed or removed since the last build
    rebuild_code: bool

    @property
    def empty(self) -> bool:
        return not self.migrations and not self.rebuild_code


class MigrationError(StrataError):
    pass


def _line_of(text: str, position: str | None) -> int | None:
    """The line of a 1-based character position that PostgreSQL reports as a string."""
    if not position or not str(position).isdigit():
        return None
    return text.count("\n", 0, int(position) - 1) + 1


def _short_error(err: psycopg.Error) -> str:
    diag = err.diag
    message = diag.message_primary or str(err).splitlines()[0]
    if diag.context and "PL/pgSQL" in diag.context:
        message += f" ({diag.context.splitlines()[0]})"
    return message.rstrip(".")


class Migrator:
    """Plans and applies migrations and the code layer on one database."""

    def __init__(self, project: Project, url: str, *, lock_timeout: float = 60.0, read_only: bool = False):
        self.project = project
        self.url = url
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        self._backend = None
        self._plain: psycopg.Connection | None = None
        self._has_meta: bool | None = None

    # -- sources -----------------------------------------------------------------------------

    def migrations(self):
        if not self.project.migrations_dir.is_dir():
            raise ConfigurationError(f"No migrations folder at {self.project.migrations_dir}.")
        return read_migrations(str(self.project.migrations_dir))

    def migration_ids(self) -> list[str]:
        return [m.id for m in self.migrations()]

    def code_files(self) -> list[CodeFile]:
        order = {mid: i for i, mid in enumerate(self.migration_ids())}
        files = []
        for path in sorted(self.project.sql_dir.rglob("*.sql")):
            text = path.read_text()
            rel = str(path.relative_to(self.project.root))
            match = REQUIRES_RE.search(text)
            if not match:
                raise ConfigurationError(f"{rel} has no '-- requires: <migration id>' header.")
            requires = match.group(1)
            if requires not in order:
                raise ConfigurationError(f"{rel} requires migration {requires}, which is not in migrations/.")
            files.append(CodeFile(path, rel, requires, hashlib.sha256(text.encode()).hexdigest()))
        files.sort(key=lambda f: (order[f.requires], f.relpath))
        return files

    # -- connection and lock -----------------------------------------------------------------

    @property
    def backend(self):
        if self._backend is None:
            self._backend = _make_backend(self.url)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.connection.close()
            self._backend = None
        if self._plain is not None:
            self._plain.close()
            self._plain = None

    def execute(self, sql: str, params=None):
        if self.read_only:
            # A plain connection: yoyo's backend would create its tables on connect.
            if self._plain is None:
                self._plain = connect(self.url, autocommit=True)
            return self._plain.execute(sql, params)
        return self.backend.connection.execute(sql, params)

    @property
    def has_meta(self) -> bool:
        """Whether the database has Strata's bookkeeping (a writing Migrator creates it)."""
        if not self.read_only:
            return True
        if self._has_meta is None:
            self._has_meta = self.execute(
                "SELECT pg_catalog.to_regclass(%s) IS NOT NULL AND pg_catalog.to_regclass(%s) IS NOT NULL",
                (f"{META_SCHEMA}.{MIGRATION_TABLE}", f"{META_SCHEMA}.code_file"),
            ).fetchone()[0]
        return self._has_meta

    @contextmanager
    def locked(self, *, on_wait=None):
        """Hold the migration lock: a session advisory lock (freed when a process dies) and
        yoyo's lock row (seen by the plain `yoyo` tool too)."""
        deadline = time.monotonic() + self.lock_timeout
        waited = False
        while not self.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()[0]:
            if not waited and on_wait:
                on_wait()
            waited = True
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"Another migration run holds the lock on this database; waited {self.lock_timeout:.0f}s, try again when it finishes."
                )
            time.sleep(0.2)
        try:
            stale = None
            if self.has_meta:
                with _bootstrap_locked(self.execute):
                    stale = self.execute(f"SELECT pid, ctime FROM {META_SCHEMA}.yoyo_lock").fetchone()
            if stale:
                raise MigrationError(
                    f"A migration lock left by process {stale[0]} at {stale[1]:%Y-%m-%d %H:%M:%S} is still recorded, "
                    "but no migration run holds it; remove it with `strata migrate --break-lock`."
                )
            if self.read_only:  # the advisory lock is enough to read a consistent state
                yield
                return
            try:
                with self.backend.lock(timeout=5):
                    yield
            except LockTimeout as err:  # a `yoyo` process outside strata holds it
                raise MigrationError(f"The migration lock is held outside strata ({err}).") from err
        finally:
            self.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))

    def break_lock(self) -> int:
        """Remove a stale yoyo lock row; refuses while a live run holds the advisory lock."""
        got = self.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()[0]
        if not got:
            raise MigrationError("A migration run is in progress right now; its lock is not stale.")
        try:
            return self.execute(f"DELETE FROM {META_SCHEMA}.yoyo_lock").rowcount
        finally:
            self.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))

    # -- state ---------------------------------------------------------------------------------

    def applied_ids(self) -> list[str]:
        if not self.has_meta:
            return []
        rows = self.execute(
            f"SELECT migration_id FROM {META_SCHEMA}.{MIGRATION_TABLE} ORDER BY applied_at_utc, migration_id"
        ).fetchall()
        return [r[0] for r in rows]

    def migration_states(self) -> list[MigrationState]:
        if not self.has_meta:
            return [MigrationState(m.id, False) for m in self.migrations()]
        applied = {
            r[0]: r[1]
            for r in self.execute(
                f"SELECT migration_id, applied_at_utc FROM {META_SCHEMA}.{MIGRATION_TABLE}"
            ).fetchall()
        }
        sums = {
            r[0]: (r[1], r[2])
            for r in self.execute(
                f"SELECT migration_id, sha256, rollback_sha256 FROM {META_SCHEMA}.migration_checksum"
            ).fetchall()
        }
        states = []
        known = set()
        for m in self.migrations():
            known.add(m.id)
            path = Path(m.path)
            rollback = path.with_name(path.stem + ".rollback.sql")
            state = MigrationState(m.id, m.id in applied, has_rollback=rollback.exists())
            if state.applied:
                state.applied_at = applied[m.id].strftime("%Y-%m-%d %H:%M:%S UTC")
                recorded = sums.get(m.id)
                if recorded is None:
                    state.edited.append("unknown checksum")
                else:
                    if recorded[0] != sha256_of(path):
                        state.edited.append("migration")
                    if recorded[1] != (sha256_of(rollback) if rollback.exists() else None):
                        state.edited.append("rollback")
            states.append(state)
        for mid in sorted(set(applied) - known):
            states.append(MigrationState(mid, True, applied[mid].strftime("%Y-%m-%d %H:%M:%S UTC"), missing_file=True))
        return states

    def recorded_code(self) -> dict[str, str]:
        if not self.has_meta:
            return {}
        return dict(self.execute(f"SELECT path, sha256 FROM {META_SCHEMA}.code_file").fetchall())

    def code_changes(self, applicable: list[CodeFile]) -> list[str]:
        recorded = self.recorded_code()
        wanted = {f.relpath: f.sha256 for f in applicable}
        changed = [p for p, s in wanted.items() if recorded.get(p) != s]
        changed += [p for p in recorded if p not in wanted]
        return sorted(changed)

    # -- planning ------------------------------------------------------------------------------

    def _applicable(self, applied_after: set[str]) -> list[CodeFile]:
        return [f for f in self.code_files() if f.requires in applied_after]

    def plan_apply(self, to: str | None = None, *, rebuild: bool = False) -> Plan:
        ids = self.migration_ids()
        if to is not None and to not in ids:
            raise ConfigurationError(f"There is no migration {to}; see `strata status`.")
        applied = set(self.applied_ids())
        pending = [mid for mid in ids if mid not in applied]
        if to is not None:
            pending = [mid for mid in pending if ids.index(mid) <= ids.index(to)]
        after = applied | set(pending)
        applicable = self._applicable(after)
        changed = self.code_changes(applicable)
        return Plan("apply", pending, [f.relpath for f in applicable], changed, bool(pending or changed or rebuild))

    def plan_rollback(self, *, to: str | None = None, steps: int | None = None, all_: bool = False) -> Plan:
        ids = self.migration_ids()
        applied_order = [mid for mid in ids if mid in set(self.applied_ids())]
        if all_:
            targets = list(reversed(applied_order))
        elif to is not None:
            if to not in ids:
                raise ConfigurationError(f"There is no migration {to}; see `strata status`.")
            if to not in applied_order:
                raise ConfigurationError(f"Migration {to} is not applied, so there is nothing to roll back to.")
            targets = list(reversed(applied_order[applied_order.index(to) + 1:]))
        else:
            n = 1 if steps is None else steps
            if n < 1:
                raise ConfigurationError("--steps must be at least 1.")
            targets = list(reversed(applied_order))[:n]
        after = set(applied_order) - set(targets)
        applicable = self._applicable(after)
        changed = self.code_changes(applicable)
        return Plan("rollback", targets, [f.relpath for f in applicable], changed, bool(targets or changed))

    # -- execution -----------------------------------------------------------------------------

    def run(self, plan: Plan) -> None:
        """Carry out a plan in one transaction; on any error nothing is left behind."""
        if plan.empty:
            return
        if self.read_only:
            raise StrataError("A read-only migrator cannot change the database.")
        by_id = {m.id: m for m in self.migrations()}
        backend = self.backend
        with backend.transaction():
            self._drop_code_layer()
            for mid in plan.migrations:
                migration = by_id[mid]
                if plan.direction == "apply":
                    self._execute_migration(migration, rollback=False)
                    backend.mark_one(migration, log=False)
                    backend.log_migration(migration, "apply")
                    self._record_checksum(migration)
                else:
                    self._execute_migration(migration, rollback=True)
                    backend.unmark_one(migration, log=False)
                    backend.log_migration(migration, "rollback")
                    self.execute(f"DELETE FROM {META_SCHEMA}.migration_checksum WHERE migration_id = %s", (mid,))
            files = {f.relpath: f for f in self.code_files()}
            self._build_code_layer([files[p] for p in plan.code_files])

    def _as_owner(self) -> None:
        """Create objects as strata_owner once the foundation is in place (the owner owns the
        core schema) and we may become it; the foundation itself runs as the session user, which
        may create extensions and roles."""
        can = self.execute(
            """SELECT pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
                 FROM pg_catalog.pg_roles AS r
                 JOIN pg_catalog.pg_namespace AS n ON n.nspowner = r.oid AND n.nspname = 'core'
                WHERE r.rolname = %s""",
            (OWNER_ROLE,),
        ).fetchone()
        if can and can[0]:
            self.execute(f"SET LOCAL ROLE {OWNER_ROLE}")
        else:
            self.execute("RESET ROLE")

    def _execute_sql(self, text: str, where: str) -> None:
        """Run one file. Its search_path is empty, so every name must be qualified (pg_catalog is
        always searched): an unqualified CREATE fails clearly instead of landing in strata_meta,
        the schema yoyo's own statements need on the path."""
        self.execute("SAVEPOINT strata_step")
        self.execute("SET LOCAL search_path = ''")
        try:
            self.execute(text)
        except psycopg.Error as err:
            self.execute("ROLLBACK TO SAVEPOINT strata_step")
            line = _line_of(text, err.diag.statement_position)
            at = f"{where} line {line}" if line else where
            raise MigrationError(f"{at} failed: {_short_error(err)}; nothing was changed.") from err
        self.execute("RELEASE SAVEPOINT strata_step")
        self.execute(f"SET LOCAL search_path = {META_SCHEMA}")

    def _execute_migration(self, migration, *, rollback: bool) -> None:
        path = Path(migration.path)
        if rollback:
            path = path.with_name(path.stem + ".rollback.sql")
            if not path.exists():
                raise MigrationError(f"Migration {migration.id} has no rollback file, so it cannot be rolled back.")
        self._as_owner()
        self._execute_sql(path.read_text(), str(path.relative_to(self.project.root)))
        self.execute("RESET ROLE")

    def _record_checksum(self, migration) -> None:
        path = Path(migration.path)
        rollback = path.with_name(path.stem + ".rollback.sql")
        self.execute(
            f"""INSERT INTO {META_SCHEMA}.migration_checksum (migration_id, sha256, rollback_sha256)
                VALUES (%s, %s, %s)
                ON CONFLICT (migration_id) DO UPDATE
                SET sha256 = EXCLUDED.sha256, rollback_sha256 = EXCLUDED.rollback_sha256, applied_at = now()""",
            (migration.id, sha256_of(path), sha256_of(rollback) if rollback.exists() else None),
        )

    def _snapshot(self) -> set[tuple[str, str]]:
        return {(r[0], r[1]) for r in self.execute(SNAPSHOT_SQL).fetchall()}

    def _drop_code_layer(self) -> None:
        """Drop every object the last build created: later files first and, within a file,
        dependents (triggers, policies, views) before what they use. Objects of one file that
        depend on each other in another way are retried until nothing is left or no drop
        succeeds (then the first error is the one reported)."""
        rows = self.execute(
            f"SELECT kind, identity, path, position FROM {META_SCHEMA}.code_object ORDER BY identity DESC"
        ).fetchall()
        rows.sort(key=lambda r: (-r[3], DROP_ORDER.index(r[0])))
        self._as_owner()
        pending = [(kind, identity, path) for kind, identity, path, _ in rows]
        while pending:
            deferred, first_error = [], None
            for kind, identity, path in pending:
                self.execute("SAVEPOINT strata_drop")
                try:
                    self.execute(DROP_TEMPLATES[kind].format(identity=identity))
                except psycopg.errors.UndefinedObject:
                    # e.g. a policy whose table a migration already dropped
                    self.execute("ROLLBACK TO SAVEPOINT strata_drop")
                except psycopg.errors.DependentObjectsStillExist as err:
                    self.execute("ROLLBACK TO SAVEPOINT strata_drop")
                    deferred.append((kind, identity, path))
                    first_error = first_error or (kind, identity, path, err)
                except psycopg.Error as err:
                    self.execute("ROLLBACK TO SAVEPOINT strata_drop")
                    raise MigrationError(
                        f"Cannot drop {kind} {identity} (from {path}) to rebuild the code layer: {_short_error(err)}."
                    ) from err
                else:
                    self.execute("RELEASE SAVEPOINT strata_drop")
            if len(deferred) == len(pending):
                kind, identity, path, err = first_error
                raise MigrationError(
                    f"Cannot drop {kind} {identity} (from {path}) to rebuild the code layer: {_short_error(err)} "
                    "(an object outside sql/ depends on it)."
                ) from err
            pending = deferred
        self.execute("RESET ROLE")
        self.execute(f"DELETE FROM {META_SCHEMA}.code_object")
        self.execute(f"DELETE FROM {META_SCHEMA}.code_file")

    def _build_code_layer(self, files: list[CodeFile]) -> None:
        before = self._snapshot()
        for position, code in enumerate(files, start=1):
            self._as_owner()
            self._execute_sql(code.path.read_text(), code.relpath)
            self.execute("RESET ROLE")
            after = self._snapshot()
            for kind, identity in sorted(after - before):
                self.execute(
                    f"INSERT INTO {META_SCHEMA}.code_object (kind, identity, path, position) VALUES (%s, %s, %s, %s)",
                    (kind, identity, code.relpath, position),
                )
            self.execute(
                f"INSERT INTO {META_SCHEMA}.code_file (path, requires, sha256, position) VALUES (%s, %s, %s, %s)",
                (code.relpath, code.requires, code.sha256, position),
            )
            before = after


def _make_backend(url: str):
    """A yoyo backend on our own psycopg connection (any libpq URL or conninfo works), keeping
    yoyo's tables in strata_meta."""

    class StrataBackend(PostgresqlPsycopgBackend):
        def connect(self, dburi):
            conn = connect(url, autocommit=True)
            try:
                conn.execute(META_DDL)
            except psycopg.Error as err:
                conn.close()
                raise CheckFailed(f"Cannot prepare {META_SCHEMA} on this database: {_short_error(err)}.") from err
            self.schema = META_SCHEMA
            return conn

    backend = StrataBackend(parse_uri("postgresql+psycopg://strata/strata"), MIGRATION_TABLE)
    with _bootstrap_locked(backend.connection.execute):
        backend.init_database()
        backend.ensure_internal_schema_updated()
    return backend


@contextmanager
def _bootstrap_locked(execute):
    """Holds BOOTSTRAP_LOCK_KEY (a session-level advisory lock) on the connection whose
    execute() is given, for the set-up of the bookkeeping or a look at yoyo's lock row."""
    execute("SELECT pg_catalog.pg_advisory_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
    try:
        yield
    finally:
        execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (BOOTSTRAP_LOCK_KEY,))
