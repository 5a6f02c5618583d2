"""Benchmark scenarios behind `strata bench`.

A scenario is a module in this package that calls `register()` with a `Scenario`: a name, a
one-line summary and a `run(bench)` that returns `Metric`s. Each run gets a `Bench`: a scratch
database on the connected server, migrated with this project's migrations and dropped
afterwards, plus helpers to run pgbench scripts side by side in one pgbench run.

Benchmarks measure; they are never unit tests. `--quick` runs a scenario briefly to prove it
works (tests/test_bench.py uses it).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import secrets
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from strata.connection import connect, for_libpq_program
from strata.errors import CheckFailed, ConfigurationError
from strata.project import Project


@dataclass
class Metric:
    name: str
    value: float | None  # an int is a count or a whole unit, and the table prints it without decimals
    unit: str = ""
    goal: str = ""  # e.g. ">= 0.75"; empty when the metric is informational
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if not self.goal or self.value is None:
            return None
        op, threshold = self.goal.split()
        return {">=": self.value >= float(threshold), "<=": self.value <= float(threshold)}[op]

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


@dataclass
class Options:
    quick: bool = False
    duration: float | None = None  # seconds per pgbench run
    events: int | None = None  # ledger size for the verification speed
    clients: int = 8
    keep: bool = False
    link_rtt: float = 0.0005  # seconds; the orders scenario also measures through a link this slow (0: not)


@dataclass
class Scenario:
    name: str
    summary: str
    run: Callable[[Bench], list[Metric]]


SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    SCENARIOS[scenario.name] = scenario
    return scenario


def missed_goals(results: dict[str, list[Metric]]) -> list[str]:
    """The metrics that missed their goal, each named once with its scenario ("orders: cancel
    order, …"; the orders scenario's metric names already start with it)."""
    return [m.name if m.name.startswith(f"{scenario}: ") else f"{scenario}: {m.name}"
            for scenario, metrics in results.items() for m in metrics if m.met is False]


def load_scenarios() -> dict[str, Scenario]:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    return SCENARIOS


@dataclass
class ScriptResult:
    name: str
    transactions: int
    failed: int
    tps: float
    latency_ms: float


@dataclass
class PgbenchRun:
    seconds: float
    clients: int
    tps: float
    scripts: dict[str, ScriptResult] = field(default_factory=dict)


_SCRIPT_RE = re.compile(
    r"SQL script \d+: (?P<path>\S+)\n.*?- (?P<tx>\d+) transactions \([\d.]+% of total, tps = (?P<tps>[\d.]+)\)"
    r"(?:\n - number of failed transactions: (?P<failed>\d+).*?)?.*?- latency average = (?P<lat>[\d.]+) ms",
    re.DOTALL)


class Bench:
    """A scratch database for one scenario, and the tools to measure in it."""

    def __init__(self, project: Project, server_url: str, options: Options, pgbench: Path):
        self.project = project
        self.server_url = server_url
        self.options = options
        self.pgbench = pgbench
        self.name = f"strata_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.url = psycopg.conninfo.make_conninfo(server_url, dbname=self.name)

    def __enter__(self) -> Bench:
        from strata.migrator import Migrator

        with connect(self.server_url) as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
            except psycopg.errors.InsufficientPrivilege as err:
                raise ConfigurationError("strata bench creates a scratch database: this login needs CREATEDB.") from err
        migrator = Migrator(self.project, self.url)
        try:
            with migrator.locked():
                migrator.run(migrator.plan_apply())
        except BaseException:
            self._drop()
            raise
        finally:
            migrator.close()
        return self

    def __exit__(self, *exc) -> None:
        if not self.options.keep:
            self._drop()

    def _drop(self) -> None:
        with connect(self.server_url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def connect(self, url: str | None = None, **kwargs) -> psycopg.Connection:
        return connect(url or self.url, **kwargs)

    def run_pgbench(self, scripts: dict[str, str], seconds: float, defines: dict[str, str] | None = None) -> PgbenchRun:
        """Run the scripts side by side in one pgbench run (each transaction picks one at random,
        equal weights), `clients` connections over two threads, prepared statements."""
        clients = self.options.clients
        with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
            args = [str(self.pgbench), "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-M", "prepared",
                    "-T", str(max(1, round(seconds)))]
            for key, value in (defines or {}).items():
                args += ["-D", f"{key}={value}"]
            paths = {}
            for name, text in scripts.items():
                path = Path(tmp) / f"{name}.sql"
                path.write_text(text)
                paths[str(path)] = name
                args += ["-f", str(path)]
            conninfo, env = for_libpq_program(self.url)  # the password out of the process list
            args.append(conninfo)
            done = subprocess.run(args, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no output"]
            first_error = next((line for line in lines if "ERROR" in line), lines[-1])
            raise CheckFailed(f"pgbench failed: {first_error.strip()}")
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
        run = PgbenchRun(seconds, clients, float(tps.group(1)) if tps else 0.0)
        for m in _SCRIPT_RE.finditer(done.stdout):
            name = paths[m.group("path")]
            run.scripts[name] = ScriptResult(name, int(m.group("tx")), int(m.group("failed") or 0),
                                             float(m.group("tps")), float(m.group("lat")))
        if len(scripts) == 1 and not run.scripts:
            name = next(iter(scripts))
            lat = re.search(r"latency average = ([\d.]+) ms", done.stdout)
            tx = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
            run.scripts[name] = ScriptResult(name, int(tx.group(1)) if tx else 0, 0, run.tps,
                                             float(lat.group(1)) if lat else 0.0)
        if set(run.scripts) != set(scripts):
            raise CheckFailed("could not read pgbench's per-script results.")
        return run
