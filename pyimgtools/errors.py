"""Expected failures and the exit codes they map to (see README.md, "Exit codes")."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WORK_FOUND = 100  # a check found work to do (pending updates, audit findings)
EXIT_INTERRUPTED = 130  # SIGINT: 128 + 2, as the shell reports a process it kills
EXIT_TERMINATED = 143   # SIGTERM: 128 + 15 (docker stop, a CI timeout)


class PyimgtoolsError(Exception):
    """A failure the user can act on: printed as one line, no traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PyimgtoolsError):
    exit_code = EXIT_USAGE


class Terminated(BaseException):
    """SIGTERM arrived (cli.main turns it into this exception). Not an Exception:
    like KeyboardInterrupt it passes every `except Exception`, and the cleanup on
    the way out runs (compile's workers are stopped, their temporary files removed)."""
