"""Errors the CLI turns into one sentence and an exit code (SPEC §4)."""

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class StrataError(Exception):
    """A failure explained in one sentence; `exit_code` tells scripts what kind it was."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigurationError(StrataError):
    """Bad usage or configuration: a missing binary, a malformed URL, a bad option value."""

    exit_code = EXIT_USAGE


class LoginRefused(ConfigurationError):
    """The server answered but turned the login away (wrong password, no such database or role,
    pg_hba.conf): the URL or the server's rules must change, so retrying will not help."""


class DatabaseUnreachable(StrataError):
    """The database could not be reached at all."""

    exit_code = EXIT_UNREACHABLE


class CheckFailed(StrataError):
    """A verification found a problem."""

    exit_code = EXIT_CHECK_FAILED
