"""`pyimgtools audit`: its options over audit.plan and audit.render."""

from pyimgtools import audit
from pyimgtools.commands import HelpFormatter, examples
from pyimgtools.errors import UsageError

FORMATS = ("text", "json", "sarif")


def register(subparsers, common):
    parser = subparsers.add_parser(
        audit.NAME, parents=[common], formatter_class=HelpFormatter,
        help="read-only hygiene report of an image (exit 100 on findings)",
        description=(
            "Look inside a built image (or a mounted rootfs with --root) for the usual\n"
            "mistakes of Python images: two Python installations, a standard library\n"
            "without usable bytecode, pending security updates, package-manager caches,\n"
            "build tools left installed, ELF files with unresolvable libraries, dead\n"
            "weight, broken metadata, missing CA certificates, a non-UTF-8 locale.\n"
            "Changes nothing. Exit 100 when a finding at or above --fail-on exists."),
        epilog=examples(
            "RUN pyimgtools audit --fail-on warn",
            "pyimgtools audit --root \"$(buildah mount $ctr)\" --json   # from outside, read-only",
            "pyimgtools audit --format sarif > audit.sarif   # for GitHub code scanning",
            "pyimgtools audit --env env.txt --ignore dangling-symlinks   # env.txt: one NAME=VALUE a line"))
    parser.add_argument("--fail-on", choices=audit.FAIL_ON_CHOICES, default="error",
                        help="exit 100 when a finding of this severity or worse exists (default: error)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="text (the default), json (the same as --json) or sarif (a SARIF "
                             "2.1.0 log on stdout, for code scanning; docs/sarif.md)")
    parser.add_argument("--env", metavar="FILE",
                        help="the image's environment (NAME=VALUE lines, or NUL-separated like "
                             "/proc/PID/environ) for the locale and cache checks; default inside "
                             "the image: PID 1's environment when PID 1 runs in this root, else "
                             "this process's")
    parser.add_argument("--ignore", metavar="ID", action="append", default=[],
                        help="leave out a finding or check id (repeatable)")
    parser.set_defaults(run=run)


def output_format(args):
    """--format, with --json as --format json; --json beside another format is a usage error."""
    if args.json and args.format not in (None, "json"):
        raise UsageError("--json is --format json: give --format %s or --json, not both" % args.format)
    return args.format or ("json" if args.json else "text")


def run(args, out, root):
    from pyimgtools.audit import checks as audit_checks

    fmt = output_format(args)
    out.json_mode = fmt != "text"   # stdout holds the one document; lines go to stderr

    known = audit_checks.known_ids()
    unknown = [i for i in args.ignore if i not in known]
    if unknown:
        raise UsageError("--ignore: unknown id %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(known))))
    env, source = audit.read_env(root, args.env)
    result = audit.plan(root, env=env, env_source=source, ignore=set(args.ignore), warn=out.warn)
    code = audit.exit_code(result.findings, args.fail_on)
    if fmt == "sarif":
        from pyimgtools.audit import sarif
        sarif.render(result, out, args.fail_on, code)
    else:
        audit.render(result, out, args.fail_on, code)
    return code
