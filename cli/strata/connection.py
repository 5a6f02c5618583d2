"""Which database a command talks to, and connecting to it with errors a person can read."""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass

import psycopg

from strata.errors import ConfigurationError, DatabaseUnreachable, LoginRefused
from strata.project import Project, find_project

URL_ENV_VARS = ("STRATA_DATABASE_URL", "DATABASE_URL")


@dataclass
class Target:
    """A resolved database: its libpq URL and where the URL came from."""

    url: str
    source: str  # "option", an environment variable's name, or "embedded"


def resolve(explicit_url: str | None, *, project: Project | None = None, start_embedded: bool = True) -> Target:
    """--database-url, else $STRATA_DATABASE_URL, else $DATABASE_URL, else the embedded cluster
    (started on demand with a one-line notice on stderr)."""
    if explicit_url:
        return Target(explicit_url, "option")
    for name in URL_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return Target(value, name)
    from strata.embedded import EmbeddedCluster

    cluster = EmbeddedCluster(project or find_project())
    if start_embedded:
        cluster.start(notice=True)
    return Target(cluster.url(), "embedded")


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the given database URL"
    host = info.get("host") or "local socket"
    port = f":{info['port']}" if info.get("port") else ""
    # A password with a raw '@' or '/' in a URL is parsed into the host or database name.
    return mask_password(f"{info.get('dbname', '')}@{host}{port}".lstrip("@"), url)


# How often the server checks, while one of our statements runs, that we are still there.
DISCONNECT_CHECK_INTERVAL = "2s"


def _check_ports(url: str) -> None:
    """Refuses a port that is not a number before psycopg sees it: psycopg resolves a host name
    in Python with the port as a service name, and its refusal ("Servname not supported") read
    as an unreachable database."""
    try:
        port = psycopg.conninfo.conninfo_to_dict(url).get("port")
    except psycopg.ProgrammingError:
        return  # connect() reports the URL itself
    for value in (item.strip() for item in str(port or "").split(",")):
        if value and not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
            raise _invalid_url(mask_password(f'port "{value}" is not a number from 1 to 65535', url))


def _invalid_url(reason: str) -> ConfigurationError:
    """The error for a URL that cannot be used as written; `reason` is already masked."""
    return ConfigurationError(f"The database URL is not valid: {reason}.")


# A server that answers but turns the login away: the URL or the server's rules must change, so
# it is a configuration error (exit 2), where "unreachable" (exit 3) may pass by itself (a
# server starting up or full answers too, with FATAL, and stays exit 3). libpq's "no password
# supplied" is one: the server asked for a password the URL does not give.
_REFUSED_LOGIN = re.compile(r'authentication failed|no password supplied|(?:database|role) "[^"]*" does not exist'
                            r'|pg_hba\.conf|not permitted to log in|permission denied for database')


def connect(url: str, *, autocommit: bool = True, **kwargs) -> psycopg.Connection:
    _check_ports(url)
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10, **kwargs)
    except psycopg.ProgrammingError as err:
        raise _invalid_url(mask_password(_first_line(err), url)) from err
    except psycopg.OperationalError as err:
        reason = mask_password(_first_line(err), url).removeprefix("connection is bad: ")
        if re.search(r"\binvalid \S+ value\b", reason):  # libpq refusing an option's value, not the network
            raise _invalid_url(reason) from err
        if _REFUSED_LOGIN.search(reason):
            # The server's own words, without libpq's "connection to server at … failed:" before them.
            said = re.sub(r"^FATAL:\s+", "", reason.rsplit(" failed: ", 1)[-1])
            raise LoginRefused(f"The server refused the login to {describe_url(url)}: {said}.") from err
        raise DatabaseUnreachable(f"Cannot reach the database {describe_url(url)}: {reason}.") from err
    try:
        _end_work_when_gone(conn)
    except psycopg.Error as err:
        conn.close()
        if isinstance(err, psycopg.OperationalError):
            raise DatabaseUnreachable(f"Lost the database {describe_url(url)}: {mask_password(_first_line(err), url)}.") from err
        raise
    return conn


def _end_work_when_gone(conn: psycopg.Connection) -> None:
    """Have the server stop our statement when this process goes away. A server notices a
    closed connection only when it next writes to it, so a killed seed or bench left its
    backend working for minutes (a bulk seed's recount, a long verify), holding locks and CPU.
    Set after connecting rather than in the startup options: a server on a platform without
    the check (Windows) refuses a non-zero interval, one before PostgreSQL 14 does not know
    the setting, and neither refusal may stop the command (it may be the one that says the
    server is too old)."""
    try:
        conn.execute("SELECT pg_catalog.set_config('client_connection_check_interval', %s, false)",
                     (DISCONNECT_CHECK_INTERVAL,))
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.UndefinedObject):
        if not conn.autocommit:
            conn.rollback()
        return
    if not conn.autocommit:
        conn.commit()


def mask_password(text: str, url: str) -> str:
    """`text` with every form of the password in `url` (a libpq URL or conninfo) replaced by
    ***. libpq quotes the URL, or the part it could not parse, when it refuses one; and a
    password that is not what the user meant to write (a raw '@', '/', '?' or '#' in a URL, an
    unquoted space in a conninfo) is split into other fields, so each piece is masked too."""
    secrets: set[str] = set()
    try:
        secrets.add(psycopg.conninfo.conninfo_to_dict(url).get("password") or "")
    except psycopg.ProgrammingError:
        pass
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url)
    if scheme:
        # user:password@host: everything from the first ':' of the user part to the last '@'.
        rest = url[scheme.end():]
        colon, at = rest.find(":"), rest.rfind("@")
        if 0 <= colon < at and "/" not in rest[:colon]:
            secrets.add(rest[colon + 1:at])
    for value in re.findall(r"(?:^|[\s?&])password\s*=\s*('(?:[^'\\]|\\.)*'|[^&]*?)(?=\s+\w+\s*=|&|$)", url):
        secrets.add(value)
        secrets.add(value.strip("'"))
    pieces: set[str] = set()
    for secret in list(secrets):
        secrets.add(urllib.parse.unquote(secret))
        pieces.update(re.split(r"[@/?#\s]+", secret))
    # Masked where it stands alone, or a short one would mask letters and digits all over the
    # message (the "p" of postgresql, the "1" of 127.0.0.1); a long one wherever it appears.
    for secret in sorted((x for x in secrets | pieces if x), key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return text


def for_libpq_program(url: str) -> tuple[str, dict[str, str]]:
    """What to hand psql, pg_dump or pgbench: the URL as a conninfo string without its
    password, and an environment that carries the password (PGPASSWORD), so it stays out of
    the process list. An unparsable URL is handed over as it is, for the program to refuse."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return url, dict(os.environ)
    password = info.pop("password", None)
    env = dict(os.environ, PGPASSWORD=password) if password else dict(os.environ)
    return psycopg.conninfo.make_conninfo(**info), env


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        line = line.strip()
        # libpq prefixes some messages with 'connection to server at … failed:'
        if line:
            return line.rstrip(".")
    return type(err).__name__
