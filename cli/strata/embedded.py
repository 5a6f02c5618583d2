"""The embedded PostgreSQL cluster under `.strata/`: a private server for development and tests.

Layout (all git-ignored):
    .strata/cluster.json        binaries, port and password chosen at init (mode 0600)
    .strata/cluster/data        the data directory
    .strata/cluster/socket      the unix socket directory (mode 0700)
    .strata/cluster/server.log  the server log

PostgreSQL refuses to run as root, so when the CLI runs as root it creates the cluster as the
`postgres` system user (or $STRATA_CLUSTER_USER) and runs initdb and pg_ctl as that user.
The cluster trades crash safety for speed (fsync off): it is a scratch database, never production.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from strata.errors import ConfigurationError, StrataError
from strata.project import Project

DATABASE_NAME = "strata"
SUPERUSER = "postgres"
MIN_MAJOR = 15
# Linux limits a unix socket path to 107 bytes; the socket file name adds up to 16.
_MAX_SOCKET_DIR = 90

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_permissions": "0700",
    "max_connections": "120",
    "shared_buffers": "'256MB'",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    # The data sits in memory or on an SSD, where a random read costs about a sequential one
    # (PostgreSQL's documentation suggests 1.1 there); the default 4 is for spinning disks and
    # makes small, often-updated tables (products) look cheaper to scan whole than by index.
    "random_page_cost": "1.1",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "timezone": "'UTC'",
}


def find_bindir() -> Path:
    """The newest PostgreSQL (>= 15) server binaries: `pg_config --bindir`, then /usr/lib/postgresql."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
    versioned = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versioned)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            major = server_major(bindir)
            if major >= MIN_MAJOR:
                return bindir
    raise ConfigurationError(
        "No PostgreSQL 15+ server binaries found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin); run `make install`."
    )


def server_major(bindir: Path) -> int:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(match.group(1)) if match else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    """Whether the server could listen on port. The probe binds as PostgreSQL does, with
    SO_REUSEADDR: connections of the last run still in TIME_WAIT then do not count (a plain
    bind fails on them, and the cluster would move to a new port on every quick restart),
    while a socket listening on the port still does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class ClusterConfig:
    bindir: str
    port: int
    password: str
    os_user: str | None  # the unprivileged user the server runs as, when the CLI runs as root
    cluster_dir: str
    socket_dir: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


class EmbeddedCluster:
    def __init__(self, project: Project):
        self.project = project
        self.state_dir = project.state_dir
        self.config_path = self.state_dir / "cluster.json"

    # -- configuration -------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self.config_path.exists() and (Path(self.config.cluster_dir) / "data" / "PG_VERSION").exists()

    @property
    def config(self) -> ClusterConfig:
        try:
            return ClusterConfig(**json.loads(self.config_path.read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise ConfigurationError(f"The embedded cluster's settings in {self.config_path} are unreadable ({err}); run `strata db stop` and remove .strata/.") from err

    def _save(self, config: ClusterConfig) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(config.to_json())
        tmp.chmod(0o600)
        tmp.replace(self.config_path)

    @property
    def data_dir(self) -> Path:
        return Path(self.config.cluster_dir) / "data"

    @property
    def log_file(self) -> Path:
        return Path(self.config.cluster_dir) / "server.log"

    def url(self, database: str = DATABASE_NAME) -> str:
        cfg = self.config
        return f"postgresql://{SUPERUSER}:{cfg.password}@127.0.0.1:{cfg.port}/{database}"

    # -- running commands as the cluster's user -------------------------------------------

    @staticmethod
    def _unprivileged_user() -> str | None:
        if os.geteuid() != 0:
            return None
        name = os.environ.get("STRATA_CLUSTER_USER", "postgres")
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise ConfigurationError(
                f"Running as root, the embedded cluster needs an unprivileged system user '{name}' "
                "(install postgresql, or set STRATA_CLUSTER_USER)."
            ) from None
        return name

    def _run(self, args: list[str], *, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        user = self.config.os_user if self.config_path.exists() else self._unprivileged_user()
        kwargs: dict = {"text": True}
        if capture:
            kwargs.update(capture_output=True)
        if user:
            entry = pwd.getpwnam(user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/")
            kwargs["env"] = {**os.environ, "HOME": entry.pw_dir, "USER": user, "LOGNAME": user}
        result = subprocess.run(args, **kwargs)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip().splitlines()
            raise StrataError(f"{Path(args[0]).name} failed: {detail[-1] if detail else 'no output'}")
        return result

    def _chown(self, path: Path, user: str | None) -> None:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _user_can_use(self, user: str | None, path: Path) -> bool:
        if not user:
            return True
        entry = pwd.getpwnam(user)
        probe = subprocess.run(
            ["test", "-x", str(path)], user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/"
        )
        return probe.returncode == 0

    # -- lifecycle ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self):
        """Serialize init/start/stop between concurrent CLI processes."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "cluster.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _outside_cluster_dir(self) -> Path:
        """Where the cluster lives when the server's user cannot reach the checkout."""
        return Path("/var/tmp") / f"strata-{hashlib.sha1(str(self.project.root).encode()).hexdigest()[:12]}"

    @staticmethod
    def _outside_socket_dir(cluster_dir: Path) -> Path:
        """Where the socket goes when its path under cluster_dir would be too long."""
        return Path("/tmp") / f"strata-{hashlib.sha1(str(cluster_dir).encode()).hexdigest()[:12]}"

    def init(self) -> None:
        bindir = find_bindir()
        user = self._unprivileged_user()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cluster_dir = self.state_dir / "cluster"
        if user and not self._user_can_use(user, self.state_dir):
            # The checkout is not reachable by the server's user (e.g. under /root): keep the
            # cluster in a private directory of its own instead.
            cluster_dir = self._outside_cluster_dir()
        cluster_dir.mkdir(parents=True, exist_ok=True)
        cluster_dir.chmod(0o700)
        self._chown(cluster_dir, user)
        socket_dir = cluster_dir / "socket"
        if len(str(socket_dir)) > _MAX_SOCKET_DIR:
            socket_dir = self._outside_socket_dir(cluster_dir)
        socket_dir.mkdir(parents=True, exist_ok=True)
        socket_dir.chmod(0o700)
        self._chown(socket_dir, user)
        config = ClusterConfig(
            bindir=str(bindir),
            port=_free_port(),
            password=secrets.token_hex(16),
            os_user=user,
            cluster_dir=str(cluster_dir),
            socket_dir=str(socket_dir),
        )
        self._save(config)
        data_dir = cluster_dir / "data"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        pwfile = cluster_dir / "pwfile"
        pwfile.write_text(config.password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile, user)
        try:
            self._run([
                str(bindir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "-E", "UTF8",
                "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}", "--no-instructions",
            ])
        finally:
            pwfile.unlink(missing_ok=True)
        conf = data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# Strata embedded cluster\ninclude_if_exists = 'strata.conf'\n")

    def _write_server_settings(self, config: ClusterConfig) -> None:
        lines = [f"{key} = {value}" for key, value in SERVER_SETTINGS.items()]
        lines.append(f"port = {config.port}")
        lines.append(f"unix_socket_directories = '{config.socket_dir}'")
        target = Path(config.cluster_dir) / "data" / "strata.conf"
        target.write_text("\n".join(lines) + "\n")
        self._chown(target, config.os_user)

    def running(self) -> bool:
        if not self.initialized:
            return False
        result = self._run([str(Path(self.config.bindir) / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False)
        return result.returncode == 0

    def start(self, *, notice: bool = False) -> bool:
        """Start the cluster (creating it first if needed); returns True if it was not running."""
        with self._exclusive():
            created = False
            if not self.initialized:
                if notice:
                    print("strata: creating and starting the embedded database under .strata/", file=sys.stderr)
                self.init()
                created = True
            elif self.running():
                return False
            elif notice:
                print("strata: starting the embedded database under .strata/", file=sys.stderr)
            config = self.config
            if not _port_is_free(config.port):
                config.port = _free_port()
                self._save(config)
            Path(config.socket_dir).mkdir(parents=True, exist_ok=True)
            self._chown(Path(config.socket_dir), config.os_user)
            self._write_server_settings(config)
            result = self._run(
                [str(Path(config.bindir) / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60"],
                check=False,
            )
            if result.returncode != 0:
                raise StrataError(f"The embedded database did not start; see {self.log_file}.")
            if created:
                self._create_database()
            return True

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> bool:
        with self._exclusive():
            return self._stop_held()

    def _stop_held(self) -> bool:
        """stop() for a caller that holds the lock (a second flock in this process would wait)."""
        if not self.running():
            return False
        self._run([str(Path(self.config.bindir) / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"])
        return True

    def remove(self) -> tuple[list[Path], list[Path]] | None:
        """Stop the cluster and delete it: its data, log and socket directories, including those
        kept outside .strata/ (under /var/tmp or /tmp when the checkout is out of the server
        user's reach), then its settings; all under the lock, so no command starts it again
        half-way. Returns the directories removed and those left alone, or None when there is
        no cluster. Only a directory inside .strata/ or the exact one init() would have chosen
        outside it for this checkout is removed, so an edited or copied cluster.json cannot aim
        the removal at anything else (another checkout's cluster included)."""
        if not self.config_path.exists():
            return None
        config = self.config
        cluster_dir, socket_dir = Path(config.cluster_dir), Path(config.socket_dir)
        owned_cluster = self._inside_state_dir(cluster_dir) or cluster_dir == self._outside_cluster_dir()
        owned_socket = (self._inside_state_dir(socket_dir) or socket_dir == self._outside_socket_dir(cluster_dir)
                        or (owned_cluster and socket_dir.is_relative_to(cluster_dir)))
        removed, kept = [], []
        with self._exclusive():
            self._stop_held()
            # The cluster first: a socket directory inside it goes with it.
            for path, owned in ((cluster_dir, owned_cluster), (socket_dir, owned_socket)):
                if not path.exists():
                    continue
                if owned:
                    shutil.rmtree(path)
                    removed.append(path)
                else:
                    kept.append(path)
            self.config_path.unlink(missing_ok=True)
        return removed, kept

    def _inside_state_dir(self, path: Path) -> bool:
        """Strictly inside .strata/ (never .strata/ itself, which holds the lock and settings)."""
        path, state = path.resolve(), self.state_dir.resolve()
        return path != state and path.is_relative_to(state)

    def status(self) -> dict:
        if not self.initialized:
            return {"initialized": False, "running": False, "state_dir": str(self.state_dir)}
        config = self.config
        return {
            "initialized": True,
            "running": self.running(),
            "state_dir": str(self.state_dir),
            "data_dir": str(self.data_dir),
            "socket_dir": config.socket_dir,
            "port": config.port,
            "server_version": server_major(Path(config.bindir)),
            "runs_as": config.os_user or pwd.getpwuid(os.geteuid()).pw_name,
            "log": str(self.log_file),
        }
