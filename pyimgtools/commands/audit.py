"""`pyimgtools audit`: its options over audit.plan and audit.render."""

import re
import time

from pyimgtools import audit
from pyimgtools.commands import HelpFormatter, examples
from pyimgtools.errors import UsageError

FORMATS = ("text", "json", "sarif")

_SIZE = re.compile(r"\A([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\Z", re.IGNORECASE)


def parse_size(text):
    """'10M', '1G', '512KiB', '1048576' -> bytes (binary units)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(text)
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def _size_arg(text):
    import argparse
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a size: %r (e.g. 10M, 1G, 4096)" % text) from None


def _fraction_arg(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("not a fraction between 0 and 1: %r" % text)
    return value


def register(subparsers, common):
    parser = subparsers.add_parser(
        audit.NAME, parents=[common], formatter_class=HelpFormatter,
        help="read-only hygiene report of an image (exit 100 on findings)",
        description=(
            "Look inside a built image (an image archive or layout as IMAGE, a mounted\n"
            "rootfs with --root, or from inside the image) for the usual\n"
            "mistakes of Python images: two Python installations, a standard library\n"
            "without usable bytecode, pending security updates, package-manager caches,\n"
            "build tools left installed, ELF files with unresolvable libraries, dead\n"
            "weight, broken metadata, missing CA certificates, a non-UTF-8 locale; given\n"
            "an IMAGE, also bytes wasted across layers, grouped by the layer that brought them.\n"
            "Changes nothing. Exit 100 when a finding at or above --fail-on exists."),
        epilog=examples(
            "RUN pyimgtools audit --fail-on warn",
            "docker save app | pyimgtools audit - --fail-on warn --max-waste 50M",
            "pyimgtools audit --root \"$(buildah mount $ctr)\" --json   # from outside, read-only",
            "pyimgtools audit --format sarif > audit.sarif   # for GitHub code scanning",
            "pyimgtools audit --env env.txt --ignore dangling-symlinks   # env.txt: one NAME=VALUE a line"))
    parser.add_argument("image", metavar="IMAGE", nargs="?",
                        help="a docker save tarball, an oci-archive tarball, an OCI image-layout "
                             "directory, or - (a tar stream on stdin); not with --root")
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="the image of a multi-platform index to audit (default: the host's)")
    parser.add_argument("--max-waste", metavar="BYTES", type=_size_arg, default=None,
                        help="layer-waste is a warning above this many bytes (10M, 1G; "
                             "default 10M), info at or below")
    parser.add_argument("--min-efficiency", metavar="FRACTION", type=_fraction_arg, default=None,
                        help="layer-efficiency warns below this fraction of useful bytes "
                             "(default 0.90, as dive's CI mode)")
    parser.add_argument("--tmpdir", metavar="DIR",
                        help="where IMAGE's view is written and removed again (default: "
                             "$TMPDIR or /tmp, the tree on /dev/shm when it is a tmpfs with room)")
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
    if args.image is None:
        for option in ("platform", "max_waste", "min_efficiency", "tmpdir"):
            if getattr(args, option) is not None:
                raise UsageError("--%s needs an IMAGE" % option.replace("_", "-"))
        env, source = audit.read_env(root, args.env)
        return _audit(args, out, root, env, source, fmt)
    if not root.is_host:
        raise UsageError("give either IMAGE or --root DIR, not both")
    from pyimgtools.audit import needs
    start = time.monotonic()
    with needs.image_view(args.image, platform=args.platform, tmpdir=args.tmpdir) as view:
        env, source = audit.read_env(view, args.env)
        return _audit(args, out, view, env, source, fmt, start)


def _audit(args, out, root, env, source, fmt, start=None):
    result = audit.plan(root, env=env, env_source=source, ignore=set(args.ignore), warn=out.warn,
                        max_waste=args.max_waste, min_efficiency=args.min_efficiency)
    if start is not None:      # reading the image is part of the audit's time
        result.seconds = time.monotonic() - start
    code = audit.exit_code(result.findings, args.fail_on)
    if fmt == "sarif":
        from pyimgtools.audit import sarif
        image = layers = None
        if result.image_root is not None:    # the image reference, each finding's layer
            from pyimgtools.audit.layers import Attribution, annotate
            attribution = Attribution(result.image_root)
            image = args.image

            def layers(f):
                return annotate({}, f, attribution)
        sarif.render(result, out, args.fail_on, code, image=image, layers=layers)
    else:
        audit.render(result, out, args.fail_on, code)
    return code
