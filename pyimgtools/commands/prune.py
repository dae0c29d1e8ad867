"""`pyimgtools prune`: its options and rendering over prune.prune_trees."""

from pyimgtools import prune
from pyimgtools.commands import HelpFormatter, add_dry_run, examples
from pyimgtools.errors import EXIT_OK


def register(subparsers, common):
    parser = subparsers.add_parser(
        prune.NAME, parents=[common], formatter_class=HelpFormatter,
        help="remove test suites, bytecode and other dead weight from a tree",
        description="Remove what the official python images' `find … -exec rm -rf` removes "
                    "(test/tests/idle_test directories, *.pyc, *.pyo, libpython*.a, and the "
                    "__pycache__ directories that leaves empty), safely: no symlink is followed, "
                    "a sourceless foo.pyc (no foo.py beside it: the module itself) is kept, "
                    "no mount point crossed (bind mounts included), any file name works, and a "
                    "test package that other code imports at module level is kept.",
        epilog=examples(
            "pyimgtools prune                      # /usr/local, the upstream rules",
            "pyimgtools prune --dry-run --json /usr/local/lib/python3.12/site-packages",
            "pyimgtools prune --keep-bytecode --docs --caches --keep '*/networkx/tests' /usr/local"))
    _add_target_options(parser.add_argument)
    add_dry_run(parser)
    _add_rule_options(parser.add_argument_group("rules").add_argument)
    parser.set_defaults(run=run)


# The keyword arguments of prune_trees that are options (finalize passes them through).
OPTION_NAMES = ("paths", "allow_system_dirs", "keep_bytecode", "no_tests", "static_libs", "docs",
                "caches", "tk", "keep", "no_import_check")


def add_options(add):
    """prune's own options, declared through `add` (argparse's add_argument
    signature): finalize's --prune-NAME copies."""
    _add_target_options(add)
    _add_rule_options(add)


def _add_target_options(add):
    add("paths", nargs="*", metavar="PATH", default=None,
        help="trees to prune (default: /usr/local)")
    add(prune.ALLOW_FLAG, action="store_true",
        help="allow a file-system root, an empty path or a top-level system "
             "directory (%s) as PATH" % ", ".join(sorted(prune.SYSTEM_DIRS)[:4] + ["…"]))


def _add_rule_options(add):
    add("--keep-bytecode", action="store_true",
        help="keep *.pyc/*.pyo (to prune after `pyimgtools compile`)")
    add("--no-tests", action="store_true", help="keep test/tests/idle_test directories")
    add("--static-libs", action="store_true",
        help="remove every *.a static library, not only libpython*.a")
    add("--docs", action="store_true",
        help="remove share/{doc,man,info,locale} contents, keeping copyright files, "
             "locale.alias and the man/manN directories")
    add("--caches", action="store_true",
        help="remove pip/uv caches in /root/.cache and $HOME/.cache, "
             "/var/cache/apt/archives/*.deb, /var/cache/apt/*.bin, /var/lib/apt/lists/*")
    add("--tk", action="store_true",
        help="remove tkinter, idlelib, turtledemo, _tkinter*.so and the idle scripts")
    add("--keep", action="append", metavar="GLOB", default=[],
        help="protect paths matching GLOB (fnmatch on the full in-image path, "
             "`*` matches `/` too); repeatable")
    add("--no-import-check", action="store_true",
        help="remove test directories even when other code imports them (upstream behaviour)")


def run(args, out, root):
    outcome = prune.prune_trees(root=root, out=out, dry_run=bool(getattr(args, "dry_run", False)),
                                **{k: getattr(args, k) for k in OPTION_NAMES})
    prune.report(outcome, out)
    if out.json_mode:
        out.data(prune.document(outcome))
    error = prune.failure(outcome)
    if error:
        raise error
    return EXIT_OK
