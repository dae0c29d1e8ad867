"""`pyimgtools security-upgrade`: its options and rendering over security.upgrade."""

from pyimgtools import apt, security
from pyimgtools.commands import HelpFormatter, add_dry_run, examples


def register(subparsers, common):
    parser = subparsers.add_parser(
        security.NAME, parents=[common], formatter_class=HelpFormatter,
        help="install exactly the pending security updates (or --check for them)",
        description=(
            "Install the distribution's pending security updates and nothing else\n"
            "(Debian buster+ and Ubuntu focal+), non-interactively, then remove the apt\n"
            "lists and cached .debs. Updates are chosen from the release fields apt\n"
            "reports (Label Debian-Security, Suite/Codename CODENAME-security).\n"
            "Exit codes: 0 done / nothing pending; 1 failed; 100 --check found\n"
            "pending updates."),
        epilog=examples(
            "RUN pyimgtools security-upgrade",
            "pyimgtools security-upgrade --check --json   # CI gate: exit 100 when pending",
            "pyimgtools security-upgrade --dry-run --keep-lists"))
    add_dry_run(parser)
    add_options(parser.add_argument)
    parser.set_defaults(run=run)


# The keyword arguments of upgrade() that are options (finalize passes them through).
OPTION_NAMES = ("check", "no_update", "no_add_source", "keep_lists", "lock_timeout")


def add_options(add):
    """security-upgrade's own options, declared through `add` (argparse's
    add_argument signature): its parser's, and finalize's copies."""
    add("--check", action="store_true",
        help="only report the pending security updates; exit 100 when there "
             "are any (works without root when the apt lists are present)")
    add("--no-update", action="store_true",
        help="use the apt lists as they are, do not run apt-get update")
    add("--no-add-source", action="store_true",
        help="fail instead of adding a temporary security source when none "
             "is configured")
    add("--keep-lists", action="store_true",
        help="keep /var/lib/apt/lists and the cached .debs afterwards")
    add("--lock-timeout", type=int, default=apt.DEFAULT_LOCK_TIMEOUT, metavar="SECONDS",
        help="wait this long for the apt/dpkg lock (default: %(default)s)")


def run(args, out, root):
    outcome = security.upgrade(root=root, out=out, dry_run=args.dry_run,
                               **{k: getattr(args, k) for k in OPTION_NAMES})
    out.data(security.document(outcome))
    security.report(outcome, out)
    return security.exit_code(outcome)
