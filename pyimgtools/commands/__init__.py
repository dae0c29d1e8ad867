"""The command line's adapters, one module per command (named by
adapter_module() in pyimgtools.commandnames), each holding only

    register(subparsers, common) -> None   # its sub-parser, set_defaults(run=run)
    run(args, out, root) -> int            # reads the namespace, calls the library
                                           # function, renders, returns the exit code

The work is the library's (docs/planners.md): no adapter plans or applies
anything itself, and no library module imports argparse or this package.
This module holds what the adapters share: the common options, --dry-run,
--allow-unreadable, the help formatter and the examples epilog.
"""

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in epilogs as written."""


def examples(*lines):
    """An epilog listing real examples, for every command's --help."""
    return "examples:\n" + "\n".join("  " + line for line in lines)


def common_parent():
    """Options every command accepts, after the command name.

    Their defaults are SUPPRESS so that a value given before the command name
    (`pyimgtools --json audit`) is not overwritten by the sub-parser.
    """
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, argparse.SUPPRESS)
    return common


def add_common(parser, default):
    """The common options; `default` None gives each its own default (the top-level parser's)."""
    group = parser.add_argument_group("common options")
    group.add_argument("--root", metavar="DIR", default="/" if default is None else default,
                       help="the image's file-system root; absolute paths are read inside it (default: /)")
    group.add_argument("--json", action="store_true", default=False if default is None else default,
                       help="print one JSON document on stdout; logs go to stderr")
    group.add_argument("-q", "--quiet", action="store_true", default=False if default is None else default,
                       help="print only the summary line and errors")
    group.add_argument("-v", "--verbose", action="store_true", default=False if default is None else default,
                       help="more detail; tracebacks for unexpected errors")


def add_dry_run(parser):
    """For commands that change the file system or the package database."""
    parser.add_argument("--dry-run", action="store_true",
                        help="print exactly what a real run would do, change nothing")


def add_allow_unreadable(parser):
    """keep's and build-deps purge's --allow-unreadable."""
    parser.add_argument("--allow-unreadable", action="store_true",
                        help="go on when a directory cannot be listed or a file cannot be read "
                             "(root without CAP_DAC_READ_SEARCH); each is a warning")
