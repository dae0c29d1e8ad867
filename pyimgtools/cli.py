"""Command-line entry point: the top-level parser, error -> exit code.

Each command's adapter is a module of pyimgtools.commands (commandnames
names them all) exposing

    register(subparsers, common) -> None   # adds its sub-parser, sets defaults(run=...)
    run(args, out, root) -> int            # (set as the sub-parser's `run` default)

`common` is the parent parser with the options every command takes
(commands.common_parent); commands that change anything also call
commands.add_dry_run(parser).
"""

import argparse
import importlib
import signal
import sys

from pyimgtools import __version__
from pyimgtools.commandnames import COMMANDS, adapter_module
from pyimgtools.commands import HelpFormatter, add_common, common_parent, examples
from pyimgtools.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE,
                               LibraryError, PyimgtoolsError, RequestError, Terminated,
                               UsageError)

DESCRIPTION = """\
Small, tested, stdlib-only commands for the RUN steps of Python container
images: byte-compile, prune, keep runtime libraries, apply security updates,
audit."""

EXIT_CODES = """\
exit codes: 0 done; 1 failed (one line 'pyimgtools: error: ...' on stderr);
2 usage error; 100 a check found work to do; 130 interrupted (SIGINT);
143 terminated (SIGTERM)."""


def chosen_command(argv):
    """The command named in argv, found without importing any command module.

    None when there is none, when it is unknown, or when --help comes first
    (then the full parser is built, to list or reject commands).
    """
    names = set(COMMANDS)
    tokens = iter(argv)
    for token in tokens:
        if token in ("-h", "--help"):
            return None
        if token == "--root":
            next(tokens, None)
        elif not token.startswith("-"):
            return token if token in names else None
    return None


def version_first(argv):
    """Whether argparse meets --version before a command, a -h or anything it
    could fail on: it prints the version and exits there, so the parser needs
    no command module (`pyimgtools --version` runs in RUN lines)."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--version":
            return True
        if token in ("-h", "--help", "--") or not token.startswith("-"):
            return False
        if token == "--root":
            next(tokens, None)
    return False


def build_parser(only=None):
    """The argument parser; with `only`, just that command's adapter (and so
    its library module) is imported (with only="", none: enough for --version).
    Start-up time counts in RUN lines."""
    parser = argparse.ArgumentParser(
        prog="pyimgtools",
        description=DESCRIPTION,
        epilog=EXIT_CODES + "\n\n" + examples(
            "pyimgtools prune --dry-run /usr/local",
            "pyimgtools keep --print /usr/local",
            "pyimgtools COMMAND --help"),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version="pyimgtools " + __version__)
    add_common(parser, None)
    common = common_parent()
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMANDS:
        if only is None or name == only:
            importlib.import_module(adapter_module(name)).register(subparsers, common)
    return parser


def main(argv=None):
    """Parse `argv`, run the command, turn every expected failure into one
    `pyimgtools: error:` line: the exit status (README, "Exit codes")."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser("" if version_first(argv) else chosen_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Only here: `pyimgtools --version` (argparse exits in parse_args) needs
    # neither, and its start-up counts in RUN lines; a command's library has
    # imported both already.
    from pyimgtools.fs import Root
    from pyimgtools.report import Output
    out = Output(json_mode=args.json, quiet=args.quiet, verbose=args.verbose)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        root = Root(args.root)
        return args.run(args, out, root)
    except PyimgtoolsError as exc:
        _print_error(str(exc), args.verbose)
        return exit_status(exc)
    except KeyboardInterrupt:
        _print_error("interrupted", args.verbose)
        return EXIT_INTERRUPTED
    except Terminated:
        _print_error("terminated (SIGTERM)", args.verbose)
        return EXIT_TERMINATED
    except OSError as exc:
        # Expected I/O trouble (permissions, full disk) the command did not foresee.
        where = " (%s)" % exc.filename if getattr(exc, "filename", None) else ""
        _print_error("%s%s" % (exc.strerror or exc, where), args.verbose)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into one line
        _print_error("internal error: %s: %s (run with -v for the traceback)"
                     % (type(exc).__name__, exc), args.verbose)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum, frame):
    """SIGTERM: unwind as for Ctrl-C, so the cleanup on the way out runs; a second
    one is ignored while it does (docker stop sends SIGKILL after its grace time)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def exit_status(exc):
    """The exit status of an expected failure: 2 for a usage error (or a
    library's RequestError), 1 for another library module's error (fs, dpkg,
    apt, ...), else the command's own."""
    if isinstance(exc, (UsageError, RequestError)):
        return EXIT_USAGE
    if isinstance(exc, LibraryError):
        return EXIT_FAILED
    return exc.exit_code


def _print_error(message, verbose):
    if verbose:
        import traceback  # only here: start-up counts in RUN lines
        traceback.print_exc()
    print("pyimgtools: error: " + " ".join(str(message).split()), file=sys.stderr)
