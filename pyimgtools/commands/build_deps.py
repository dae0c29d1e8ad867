"""`pyimgtools build-deps install|purge`: their options and rendering over
builddeps.install and builddeps.purge."""

from pyimgtools import builddeps
from pyimgtools.commands import HelpFormatter, add_allow_unreadable, add_dry_run, examples
from pyimgtools.errors import EXIT_OK


def register(subparsers, common):
    p = subparsers.add_parser(
        builddeps.NAME, parents=[common], formatter_class=HelpFormatter,
        help="install build dependencies; purge them later, keeping the runtime libraries",
        description="Install build dependencies and later purge them again, keeping the "
                    "packages whose libraries the built files load (see `keep`).",
        epilog=examples(
            "pyimgtools build-deps install gcc libpq-dev python3-dev",
            "pyimgtools build-deps purge --keep-runtime /opt/venv",
            "apt-mark showmanual > /tmp/manual.txt; ...; "
            "pyimgtools build-deps purge --saved /tmp/manual.txt"))
    sub = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    sub.required = True

    inst = sub.add_parser(
        "install", parents=[common], formatter_class=HelpFormatter,
        help="save the manual set, install packages with --no-install-recommends",
        epilog=examples("pyimgtools build-deps install gcc libpq-dev",
                        "pyimgtools build-deps install --dry-run build-essential"))
    inst.add_argument("packages", nargs="+", metavar="PKG")
    _add_state_file(inst)
    add_dry_run(inst)
    inst.set_defaults(run=run_install)

    purge = sub.add_parser(
        "purge", parents=[common], formatter_class=HelpFormatter,
        help="restore the saved manual set, keep runtime packages, purge the rest",
        epilog=examples(
            "pyimgtools build-deps purge                            # keeps what /usr/local needs",
            "pyimgtools build-deps purge --keep-runtime /opt/venv --keep-runtime /usr/local",
            "pyimgtools build-deps purge --saved /tmp/manual.txt --exclude '*tkinter*'"))
    purge.add_argument("--keep-runtime", metavar="PATH", action="append", default=[],
                       help="keep the packages the ELF files under PATH need (repeatable; "
                            "default /usr/local)")
    purge.add_argument("--exclude", metavar="GLOB", action="append", default=[],
                       help="passed to keep: leave matching files out of the scan")
    purge.add_argument("--allow-missing", action="store_true",
                       help="go on when a needed library cannot be found")
    add_allow_unreadable(purge)
    purge.add_argument("--saved", metavar="FILE",
                       help="take the manual set from FILE, a plain 'apt-mark showmanual' "
                            "listing, instead of the state file")
    _add_state_file(purge)
    add_dry_run(purge)
    purge.set_defaults(run=run_purge)


def _add_state_file(parser):
    parser.add_argument("--state-file", metavar="FILE", default=builddeps.STATE_FILE,
                        help="in-image path of the state file (default %s)" % builddeps.STATE_FILE)


def run_install(args, out, root):
    outcome = builddeps.install(root=root, out=out, packages=args.packages,
                                state_file=args.state_file, dry_run=bool(args.dry_run))
    out.data(builddeps.install_document(outcome))
    builddeps.install_report(outcome, out)
    return EXIT_OK


def run_purge(args, out, root):
    try:
        outcome = builddeps.purge(root=root, out=out, saved=args.saved, state_file=args.state_file,
                                  keep_runtime=args.keep_runtime, exclude=args.exclude,
                                  allow_missing=args.allow_missing,
                                  allow_unreadable=args.allow_unreadable, dry_run=bool(args.dry_run))
    except builddeps.PurgeRefused as exc:
        out.data(builddeps.purge_document(exc.outcome))   # the document says why
        raise
    out.data(builddeps.purge_document(outcome))
    builddeps.purge_report(outcome, out)
    return EXIT_OK
