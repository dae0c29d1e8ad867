"""Expected failures, by layer, and the exit codes they map to (see README.md, "Exit codes").

Library modules (fs, dpkg, apt, ldcache, elf, osrelease, image_python,
pytarget) raise their own subclass of LibraryError and pass no exit codes
(RequestError carries 2 for finalize, which reads exit_code); commands raise
PyimgtoolsError or UsageError. cli.main is the one place that turns any of
them into the line `pyimgtools: error: MESSAGE` and an exit status
(cli.exit_status).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WORK_FOUND = 100     # a check found work to do (pending updates, audit findings)
EXIT_INTERRUPTED = 130    # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_TERMINATED = 143     # 128 + SIGTERM (docker stop, a CI timeout)


class PyimgtoolsError(Exception):
    """A failure the user can act on: printed as one line, no traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PyimgtoolsError):
    """The command line asks for something that cannot be done (exit 2)."""
    exit_code = EXIT_USAGE


class Terminated(BaseException):
    """SIGTERM arrived (cli.main turns it into this exception). Not an Exception:
    like KeyboardInterrupt it passes every `except Exception`, and the cleanup on
    the way out runs (compile's workers are stopped, their temporary files removed)."""


class LibraryError(PyimgtoolsError):
    """Base of the library modules' own errors; the CLI reports them as failures (exit 1)."""


class RequestError(LibraryError):
    """A library was asked for something that cannot be; the CLI reports it as a
    usage error (exit 2): the request came from the command line."""
    exit_code = EXIT_USAGE   # for callers that read exit_code (finalize's steps)


class RootError(LibraryError):
    """fs: the --root directory cannot be used."""


class DpkgError(LibraryError):
    """dpkg: its database is missing, unreadable or malformed."""


class AptError(LibraryError):
    """apt: an apt/dpkg run failed, a lock stayed held, a sources file is malformed."""


class LdconfigError(LibraryError):
    """ldcache: ldconfig could not be run or failed."""


class OsReleaseError(LibraryError):
    """osrelease: the distribution cannot be told."""


class TargetPythonError(LibraryError):
    """image_python / pytarget: the --python interpreter cannot be used."""
