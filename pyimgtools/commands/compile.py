"""`pyimgtools compile`: its options and rendering over compile.compile_trees."""

import argparse
import sys

from pyimgtools import compile as compiler
from pyimgtools.commands import HelpFormatter, add_dry_run, examples


def register(subparsers, common):
    parser = subparsers.add_parser(
        compiler.NAME, parents=[common], formatter_class=HelpFormatter,
        help="byte-compile the standard library (and more) of an interpreter",
        description="Write the .pyc files of the target interpreter's standard library (or "
                    "of PATHs), compiled by that interpreter, in parallel; files already up "
                    "to date are left alone, whatever the invalidation mode.",
        epilog=examples(
            "pyimgtools compile",
            "pyimgtools compile --python /usr/local/bin/python3.12 --site-packages -O 0 -O 1",
            "pyimgtools compile --invalidation-mode unchecked-hash --dry-run /app"))
    add_options(parser.add_argument)
    add_dry_run(parser)
    parser.set_defaults(run=run)


# The keyword arguments of compile_trees that are options (finalize passes them through).
OPTION_NAMES = ("paths", "python", "site_packages", "workers", "optimize", "invalidation_mode",
                "exclude", "force", "keep_going")


def add_options(add):
    """compile's own options, declared through `add` (argparse's add_argument
    signature): its parser's, and finalize's --compile-NAME copies."""
    add("paths", nargs="*", metavar="PATH",
        help="directories or files to compile (default: the standard library)")
    add("--python", metavar="PATH", default=None,
        help="the interpreter the .pyc files are for; it does the compiling "
             "(default: the one running pyimgtools, %s). With --root, a path "
             "in the image (default: the image's python3), run by the image's "
             "own loader" % (sys.executable or "?"))
    add("--site-packages", action="store_true",
        help="also compile the interpreter's purelib and platlib (site-packages)")
    add("-j", "--workers", type=_non_negative, default=0, metavar="N",
        help="worker processes (default, or 0: the CPUs this process may use, "
             "capped by a container's CPU quota)")
    add("-O", "--optimize", type=int, choices=(0, 1, 2), action="append", metavar="LEVEL",
        help="optimization level 0, 1 or 2; repeat for several (default: 0)")
    add("--invalidation-mode", choices=compiler.MODES, default=compiler.DEFAULT_MODE,
        help="checked-hash (default): the interpreter checks the source's hash, "
             "so the .pyc stays valid when mtimes are rewritten and is never used "
             "for an edited source; timestamp: valid while the source's mtime "
             "and size are unchanged; unchecked-hash: never checked at import, "
             "fastest, but UNSAFE if the source can change after this step "
             "(an edited file keeps running its old bytecode)")
    add("-x", "--exclude", action="append", metavar="REGEX",
        help="skip files whose path matches REGEX (re.search); repeatable")
    add("-f", "--force", action="store_true",
        help="recompile even the .pyc files that are up to date")
    add("--keep-going", action="store_true",
        help="accepted for compatibility: a file that fails never stops the "
             "others (each failure is listed, the exit status is 1)")


def _non_negative(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError("expected a number >= 0, got %r" % text)
    return n


def run(args, out, root):
    outcome = compiler.compile_trees(root=root, out=out, dry_run=args.dry_run,
                                     **{k: getattr(args, k) for k in OPTION_NAMES})
    compiler.report(outcome, out)
    out.data(compiler.document(outcome))
    error = compiler.failure(outcome)
    if error:
        raise error
    return 0
