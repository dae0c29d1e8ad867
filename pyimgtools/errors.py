"""Expected failures and the exit codes they map to (see README.md, "Exit codes")."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WORK_FOUND = 100  # a check found work to do (pending updates, audit findings)


class PyimgtoolsError(Exception):
    """A failure the user can act on: printed as one line, no traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PyimgtoolsError):
    exit_code = EXIT_USAGE
