"""The `strata` command as a user meets it: help for every command, the README's reference,
where the database URL comes from, and what an unreachable or malformed URL does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import psycopg
import pytest

from conftest import ROOT, masked_command, run_cli
from strata.cli import cli

# A port nothing listens on: 1 is reserved (tcpmux) and never bound on a developer machine or CI.
UNREACHABLE_URL = "postgresql://strata@127.0.0.1:1/strata?connect_timeout=3"


def command_paths(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path in the click tree, groups included: (), ("db",), ("db", "start") …"""
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
        else:
            paths.append((*prefix, name))
    return paths


def leaf_commands() -> list[tuple[str, ...]]:
    return [p for p in command_paths() if p and not isinstance(resolve(p), click.Group)]


def resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_every_command_has_help_that_exits_0():
    paths = command_paths()
    assert len(paths) > 5, "the click tree walk found almost nothing"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(paths, pool.map(lambda p: run_cli(*p, "--help"), paths)))
    for path, result in results.items():
        shown = " ".join(("strata", *path))
        assert result.returncode == 0, f"`{shown} --help` exited {result.returncode}: {result.stderr}"
        assert result.stdout.startswith(f"Usage: {shown} "), result.stdout
        assert result.stderr == "", f"`{shown} --help` wrote to stderr: {result.stderr}"
        assert (resolve(path).help or "").strip(), f"`{shown}` has no help text"


def test_unknown_command_is_a_usage_error():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_readme_lists_every_command():
    readme = _readme()
    for top in sorted(cli.commands):
        assert f"`strata {top}" in readme, f"README.md does not mention `strata {top}`: add it to '## CLI reference'"
    reference = _section(readme, "CLI reference")
    missing = [" ".join(p) for p in leaf_commands() if f"`strata {' '.join(p)}" not in reference]
    assert not missing, f"README.md's '## CLI reference' does not list: {', '.join(f'`strata {m}`' for m in missing)}"


def test_readme_reference_names_only_commands_and_options_that_exist():
    reference = _section(_readme(), "CLI reference")
    spans = re.findall(r"`strata ([^`]*)`", reference)
    assert spans, "the CLI reference names no command"
    for span in spans:
        shown = f"`strata {span}`"
        command: click.Command = cli
        for token in re.sub(r"[\[\]|\\]", " ", span).split():
            if token.startswith("-"):
                options = {opt for param in command.params for opt in getattr(param, "opts", [])}
                assert token in options, f"README.md's {shown}: `strata` has no option {token} there"
            elif isinstance(command, click.Group) and not token.isupper():
                assert token in command.commands, f"README.md's {shown}: there is no command {token!r}"
                command = command.commands[token]
        assert not isinstance(command, click.Group) or command is cli, f"README.md's {shown} needs a subcommand"


def test_readme_starts_with_the_two_commands():
    first_section = re.split(r"^## ", _readme(), flags=re.MULTILINE)[1]
    assert "make demo" in first_section and "make test" in first_section


@pytest.mark.parametrize("command", [("status",), ("verify",), ("migrate", "--dry-run"), ("inspect",),
                                     ("db", "psql", "-c", "SELECT 1")])
def test_unreachable_database_exits_3_with_one_sentence(command):
    result = run_cli(*command, url=UNREACHABLE_URL)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: Cannot reach the database strata@127.0.0.1:1")
    assert "Traceback" not in result.stderr


def test_unreachable_database_from_environment_exits_3():
    result = run_cli("status", env={"DATABASE_URL": UNREACHABLE_URL})
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1 and "Cannot reach the database" in result.stderr


@pytest.mark.parametrize("refusal", ["wrong password", "no such database"])
def test_a_login_the_server_refuses_is_a_configuration_error_in_its_words(db_url, refusal):
    # The server answers, so "unreachable" (exit 3, which a script may retry) would be wrong.
    changed = {"wrong password": {"password": "wrong-sekrit-pw"}, "no such database": {"dbname": "strata_no_such_db"}}[refusal]
    url = psycopg.conninfo.make_conninfo(db_url, **changed)
    try:
        psycopg.connect(url, connect_timeout=10).close()
        pytest.skip("the test server let this login in (trust authentication)")
    except psycopg.OperationalError:
        pass
    result = run_cli("status", url=url)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The server refused the login to "), result.stderr
    said = {"wrong password": 'password authentication failed for user "',
            "no such database": 'database "strata_no_such_db" does not exist'}[refusal]
    assert f": {said}" in lines[0], lines[0]
    assert "wrong-sekrit-pw" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url", [
    "this is not a url",
    "postgresql://strata@127.0.0.1:1/x?no_such_option=1",
    # Refusals that quote the URL, or the part libpq could not parse, password included.
    "postgresql://strata:sekrit-pw@[::1/x",
    "postgresql://strata:sekrit-pw%zz@127.0.0.1:1/x",
    # An option's value libpq refuses is a bad URL, not an unreachable database.
    "postgresql://strata:sekrit-pw@127.0.0.1:5432:99/x",
    "postgresql://strata@127.0.0.1:1/x?sslmode=bogus&password=sekrit-pw",
    "host=127.0.0.1 port=abc password='sekrit-pw'",
    # With a host name, psycopg looks the port up as a service name before libpq sees it.
    "postgresql://strata:sekrit-pw@localhost/x?port=abc",
    "postgresql://strata:sekrit-pw@localhost:70000/x",
])
def test_malformed_url_is_a_configuration_error(url):
    result = run_cli("status", url=url)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: The database URL is not valid:")
    assert "sekrit-pw" not in result.stderr


@pytest.mark.parametrize("url", [
    "postgresql://strata:sekrit-pw@127.0.0.1:1/strata?connect_timeout=3",
    # Passwords a URL cannot hold raw: libpq splits them into the host, port or database name,
    # and the messages quote those.
    "postgresql://strata:ab@sekrit-pw@127.0.0.1:1/strata?connect_timeout=3",
    "postgresql://strata:ab/sekrit-pw@127.0.0.1:1/strata?connect_timeout=3",
    "postgresql://strata:ab?sekrit-pw@[::1/strata",
    "host=127.0.0.1 port=1 password=ab sekrit-pw connect_timeout=3",
])
def test_password_never_shown_in_errors(url):
    result = run_cli("status", url=url)
    assert result.returncode in (2, 3) and len(result.stderr.splitlines()) == 1, result.stderr
    assert "sekrit" not in result.stderr and ":ab" not in result.stderr and " ab" not in result.stderr, result.stderr


def test_db_psql_tells_a_superuser_that_it_sees_every_tenant(db_url, app_url):
    as_superuser = run_cli("db", "psql", "-XAtc", "SELECT 41 + 1", url=db_url)
    assert as_superuser.returncode == 0 and as_superuser.stdout == "42\n", as_superuser.stderr
    assert "bypasses row-level security and sees every tenant; SET ROLE strata_app" in as_superuser.stderr
    as_app = run_cli("db", "psql", "-XAtc", "SELECT 41 + 1", url=app_url)
    assert as_app.returncode == 0 and as_app.stdout == "42\n" and as_app.stderr == "", as_app.stderr


def test_db_psql_keeps_the_password_out_of_the_process_list(db_url):
    password = psycopg.conninfo.conninfo_to_dict(db_url)["password"]
    marker = f"SELECT pg_sleep(1.{uuid.uuid4().int % 10**9:09d})"
    running = subprocess.Popen([sys.executable, "-m", "strata", "--database-url", db_url, "db", "psql", "-XAtc", marker],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen = []
    try:
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline and running.poll() is None:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    args = cmdline.read_bytes().split(b"\0")
                except OSError:
                    continue
                if marker.encode() in args and Path(args[0].decode()).name == "psql":
                    seen.append(b" ".join(args).decode())
            time.sleep(0.02)
    finally:
        out, err = running.communicate(timeout=30)
    assert running.returncode == 0, err
    assert seen, "psql was never seen running"
    assert all(password not in line and "password" not in line for line in seen), "the password is in psql's command line"


def test_db_psql_lets_psql_ask_for_a_password_the_url_does_not_give(db_url):
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    info.pop("password")
    asked = run_cli("db", "psql", "-XAtc", "SELECT 1", url=psycopg.conninfo.make_conninfo(**info),
                    env={"PGPASSWORD": "", "PGPASSFILE": "/nonexistent"})
    # psql itself asks, and with nothing typed gives up: not our own refusal.
    assert asked.returncode == 2 and "Password for user" in asked.stderr, asked.stderr
    assert "psql: error: " in asked.stderr and "Error: " not in asked.stderr, asked.stderr


def test_run_cli_never_prints_the_password_in_a_failing_tests_output():
    """What pytest prints for a failed assertion on a result, or for a command that timed out,
    includes the command line; CI logs must not carry the test cluster's password."""
    url = "postgresql://strata:sekrit-pw@127.0.0.1:1/strata?connect_timeout=3"
    result = run_cli("status", url=url)
    assert "sekrit-pw" not in repr(result) and "strata:***@127.0.0.1:1" in repr(result)
    with pytest.raises(subprocess.TimeoutExpired) as timed_out:
        run_cli("status", url=url, timeout=0.01)  # Python does not even start in 10 ms
    assert "sekrit-pw" not in str(timed_out.value)
    assert masked_command(["host=db password=sekrit-pw dbname=x"]) == ["host=db password=*** dbname=x"]


def test_url_precedence_option_then_strata_env_then_database_url(db_url):
    # STRATA_DATABASE_URL wins over DATABASE_URL …
    good_first = run_cli("status", "--json", env={"STRATA_DATABASE_URL": db_url, "DATABASE_URL": UNREACHABLE_URL})
    assert good_first.returncode == 0, good_first.stderr
    bad_first = run_cli("status", env={"STRATA_DATABASE_URL": UNREACHABLE_URL, "DATABASE_URL": db_url})
    assert bad_first.returncode == 3
    # … DATABASE_URL is used alone …
    alone = run_cli("status", "--json", env={"DATABASE_URL": db_url})
    assert alone.returncode == 0, alone.stderr
    # … and --database-url wins over both.
    option = run_cli("status", "--json", url=db_url,
                     env={"STRATA_DATABASE_URL": UNREACHABLE_URL, "DATABASE_URL": UNREACHABLE_URL})
    assert option.returncode == 0, option.stderr


def test_status_json_on_a_migrated_database(db_url):
    result = run_cli("status", "--json", url=db_url)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    files = sorted(p.name.removesuffix(".sql") for p in (ROOT / "migrations").glob("*.sql")
                   if not p.name.endswith(".rollback.sql"))
    assert [m["id"] for m in status["migrations"]] == files
    assert all(m["state"] == "applied" and m["applied_at"] for m in status["migrations"])
    assert status["pending"] == [] and status["edited_after_apply"] == [] and status["missing_files"] == []
    assert status["code_layer"]["out_of_date"] == []
    assert status["code_layer"]["files"] == len(list((ROOT / "sql").rglob("*.sql")))
    assert status["clean"] is True


def test_status_table_on_a_migrated_database(db_url):
    result = run_cli("status", url=db_url)
    assert result.returncode == 0, result.stderr
    assert "0001_foundation" in result.stdout
    assert result.stdout.rstrip().endswith("Status: clean.")


def test_verify_passes_on_a_migrated_database(db_url):
    result = run_cli("verify", "--json", url=db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["failures"] == 0 and report["checks"] > 0


def test_inspect_lists_what_strata_installed(db_url):
    result = run_cli("inspect", "--json", url=db_url)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    identities = {(r["kind"], r["identity"]) for r in rows}
    assert ("schema", "core") in identities and ("schema", "app") in identities
    assert ("function", "core.uuid_v7()") in identities
    one = run_cli("inspect", "core.current_tenant_id", url=db_url)
    assert one.returncode == 0 and one.stdout.startswith("function core.current_tenant_id()")
    overloaded = run_cli("inspect", "core.uuid_v7", url=db_url)  # both overloads, as a table
    assert overloaded.returncode == 0 and "core.uuid_v7(timestamp with time zone)" in overloaded.stdout
    exact = run_cli("inspect", "core.uuid_v7()", url=db_url)
    assert exact.returncode == 0 and exact.stdout.startswith("function core.uuid_v7()")
    none = run_cli("inspect", "no_such_thing", url=db_url)
    assert none.returncode == 1 and none.stderr == "Error: Nothing named no_such_thing is installed.\n"


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and re.fullmatch(r"strata, version \d+\.\d+\.\d+\n", result.stdout)


# A stand-in for a long command (a bulk seed's recount, a long verify): one statement through
# the CLI's own connect(), which then sleeps on the server.
LONG_STATEMENT = """
import sys
from strata.connection import connect
conn = connect(sys.argv[1], application_name=sys.argv[2])
print("connected", flush=True)
conn.execute("SELECT pg_catalog.pg_sleep(600)")
"""


def test_a_killed_command_does_not_leave_its_statement_running(db_url):
    """A server notices a vanished client only when it next writes to it; without the
    disconnect check a killed bulk seed's backend worked on for minutes."""
    name = f"strata-killed-{uuid.uuid4().hex[:12]}"
    running = "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name = %s"
    probe = subprocess.Popen([sys.executable, "-c", LONG_STATEMENT, db_url, name],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert probe.stdout.readline() == "connected\n", probe.stderr.read()
        with psycopg.connect(db_url, autocommit=True) as conn:
            deadline = time.monotonic() + 20
            while conn.execute(running + " AND wait_event = 'PgSleep'", (name,)).fetchone()[0] == 0:
                assert time.monotonic() < deadline, "the statement never started"
                time.sleep(0.05)
            probe.kill()
            probe.wait(timeout=10)
            # The check runs every 2 s; the sleep would run for 10 minutes.
            deadline = time.monotonic() + 20
            while conn.execute(running, (name,)).fetchone()[0] > 0:
                assert time.monotonic() < deadline, "the killed client's statement is still running on the server"
                time.sleep(0.1)
    finally:
        probe.kill()
        probe.wait(timeout=10)
        probe.stdout.close()
        probe.stderr.close()


def test_inspect_tells_a_table_never_analyzed_from_an_empty_one(databases):
    url = databases.create("inspect_rows")

    def shown(name: str) -> tuple[dict, str]:
        as_json = run_cli("inspect", name, "--json", url=url)
        as_table = run_cli("inspect", url=url)
        assert as_json.returncode == 0 and as_table.returncode == 0, as_json.stderr + as_table.stderr
        line = next(x for x in as_table.stdout.splitlines() if f" {name} " in x)
        return json.loads(as_json.stdout)[0]["details"], line

    details, line = shown("orders.tb_order")
    assert details["estimated_rows"] is None and "no row estimate yet" in line, line
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE orders.tb_order")
    details, line = shown("orders.tb_order")
    assert details["estimated_rows"] == 0 and "~0 rows" in line, line
    assert shown("app.v_orders_summary")[0]["estimated_rows"] is None


def test_strata_test_reports_a_failed_pgtap_test_with_its_diagnostics(db_url, tmp_path):
    """pgTAP returns a failed test and its diagnostics as one value of several lines. Read as
    one line it went unseen, and with a plan one short a failing file passed."""
    failing = tmp_path / "test_fails.sql"
    failing.write_text("BEGIN;\nSELECT plan(1);\nSELECT ok(true, 'passes');\nSELECT is(1, 2, 'fails');\n"
                       "SELECT * FROM finish();\nROLLBACK;\n")
    result = run_cli("test", "--json", str(failing), url=db_url)
    assert result.returncode == 1, result.stdout + result.stderr
    [report] = json.loads(result.stdout)
    assert report["passed"] == 1 and report["failures"] == ['2 - fails\n    Failed test 2: "fails"\n    have: 1\n    want: 2'], report
