"""The embedded cluster in a throwaway project: created on first use, started, reachable at the
URL `strata db url` prints, stopped. Runs as root too (the server then runs as an unprivileged
system user), which is how CI runs it."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, run_cli
from strata import embedded


@pytest.fixture
def throwaway_home(tmp_path: Path):
    home = tmp_path / "project"
    home.mkdir()
    for folder in ("migrations", "sql"):
        shutil.copytree(ROOT / folder, home / folder)
    env = {"STRATA_HOME": str(home)}
    yield home, env
    # Stop the server even when the test failed half-way, and remove what it left outside tmp_path
    # (as root, a cluster whose checkout the server user cannot reach lives under /var/tmp).
    config_path = home / ".strata" / "cluster.json"
    if config_path.exists():
        run_cli("db", "stop", env=env)
        config = json.loads(config_path.read_text())
        for key in ("cluster_dir", "socket_dir"):
            path = Path(config[key])
            if not path.is_relative_to(tmp_path):
                shutil.rmtree(path, ignore_errors=True)


def test_embedded_cluster_start_status_url_stop(throwaway_home):
    home, env = throwaway_home
    before = run_cli("db", "status", "--json", env=env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout) == {"initialized": False, "running": False,
                                         "state_dir": str(home / ".strata")}

    start = run_cli("db", "start", env=env)
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith("Embedded database started on 127.0.0.1:")
    again = run_cli("db", "start", env=env)
    assert again.returncode == 0 and "already running" in again.stdout

    status = json.loads(run_cli("db", "status", "--json", env=env).stdout)
    assert status["initialized"] is True and status["running"] is True
    assert status["state_dir"] == str(home / ".strata")
    assert status["server_version"] >= 15
    if os.geteuid() == 0:
        assert status["runs_as"] != "root", "PostgreSQL must not run as root"
    config_mode = (home / ".strata" / "cluster.json").stat().st_mode & 0o777
    assert config_mode == 0o600, "cluster.json holds the superuser password"

    url_result = run_cli("db", "url", env=env)
    assert url_result.returncode == 0, url_result.stderr
    url = url_result.stdout.splitlines()[-1]
    assert url.startswith("postgresql://postgres:") and f":{status['port']}/strata" in url
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database(), current_setting('port')::int").fetchone() == (
            "strata", status["port"])

    # Commands without a URL use this cluster (already running: no notice).
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert run_cli("status", "--json", env=env).returncode == 0

    stop = run_cli("db", "stop", env=env)
    assert stop.returncode == 0 and stop.stdout == "Embedded database stopped.\n"
    assert json.loads(run_cli("db", "status", "--json", env=env).stdout)["running"] is False
    assert run_cli("db", "stop", env=env).stdout == "Embedded database is not running.\n"

    # Any command starts it on demand, with a one-line notice on stderr.
    on_demand = run_cli("status", env=env)
    assert on_demand.returncode == 0, on_demand.stderr
    assert on_demand.stderr == "strata: starting the embedded database under .strata/\n"
    assert on_demand.stdout.rstrip().endswith("Status: clean.")

    # `db remove` (what `make clean` runs) stops it and deletes every directory it used, also
    # those outside the checkout; without --yes it refuses and touches nothing.
    config = json.loads((home / ".strata" / "cluster.json").read_text())
    used = [Path(config["cluster_dir"]), Path(config["socket_dir"])]
    unconfirmed = run_cli("db", "remove", env=env)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert json.loads(run_cli("db", "status", "--json", env=env).stdout)["running"] is True
    removed = run_cli("db", "remove", "--yes", env=env)
    assert removed.returncode == 0, removed.stderr
    gone = [used[0]] + ([] if used[1].is_relative_to(used[0]) else [used[1]])
    assert removed.stdout == f"Embedded database removed ({', '.join(map(str, gone))}).\n"
    assert not any(path.exists() for path in used), used
    assert json.loads(run_cli("db", "status", "--json", env=env).stdout) == {
        "initialized": False, "running": False, "state_dir": str(home / ".strata")}
    assert run_cli("db", "remove", "--yes", env=env).stdout == "There is no embedded database to remove.\n"


@pytest.mark.parametrize("cluster_dir, socket_dir", [
    ("{elsewhere}", "/var/tmp"),                                      # anything at all
    ("/var/tmp/strata-aaaaaaaaaaaa", "/tmp/strata-aaaaaaaaaaaa"),     # another checkout's cluster
    ("{home}/.strata", "{elsewhere}/socket"),                         # .strata itself
])
def test_db_remove_leaves_directories_it_does_not_own(throwaway_home, tmp_path: Path, cluster_dir: str, socket_dir: str):
    """An edited or copied cluster.json cannot aim the removal at a directory this checkout's
    cluster did not create."""
    home, env = throwaway_home
    elsewhere = tmp_path / "precious"
    (elsewhere / "socket").mkdir(parents=True)
    paths = [Path(p.format(home=home, elsewhere=elsewhere)) for p in (cluster_dir, socket_dir)]
    made = [p for p in paths if not p.exists()]
    for path in made:
        path.mkdir(parents=True)
    try:
        (home / ".strata").mkdir(exist_ok=True)
        (home / ".strata" / "cluster.json").write_text(json.dumps({
            "bindir": "/usr/lib/postgresql/15/bin", "port": 1, "password": "x", "os_user": None,
            "cluster_dir": str(paths[0]), "socket_dir": str(paths[1])}))
        result = run_cli("db", "remove", "--yes", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ("Embedded database removed (its settings).\n"
                                 f"Left alone, as Strata did not create them: {paths[0]}, {paths[1]}.\n")
        assert all(path.exists() for path in paths)
        assert not (home / ".strata" / "cluster.json").exists()
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


def test_a_port_whose_last_connections_linger_in_time_wait_is_still_free():
    """A restart keeps the cluster's port (and every URL copied from `strata db url`) although
    the connections of the last run still linger in TIME_WAIT on it; a port someone listens on
    is not free."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL listens
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    assert not embedded._port_is_free(port)
    # The server's side closes first, as a server that shuts down does: its end of the
    # connection, on the listening port, waits in TIME_WAIT.
    accepted.close()
    client.recv(1)
    client.close()
    listener.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the probe used to do
    assert embedded._port_is_free(port)
