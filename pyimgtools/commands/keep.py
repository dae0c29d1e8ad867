"""`pyimgtools keep`: its options and rendering over keep.plan and keep.apply."""

import time

from pyimgtools import keep
from pyimgtools.commands import HelpFormatter, add_allow_unreadable, add_dry_run, examples
from pyimgtools.errors import EXIT_OK
from pyimgtools.report import display_path, format_count


def register(subparsers, common):
    p = subparsers.add_parser(
        keep.NAME, parents=[common], formatter_class=HelpFormatter,
        help="mark the packages whose libraries the ELF files under PATHs load",
        description="Find every ELF file under PATHs (default /usr/local), resolve the\n"
                    "libraries it loads the way glibc's ld.so does, without running anything,\n"
                    "and mark the Debian packages that own them manual, so that\n"
                    "`apt-get purge --auto-remove` of the build dependencies keeps them.\n"
                    "When /etc/ld.so.cache lacks libraries of the ld.so.conf directories\n"
                    "(after `make install` into /usr/local/lib), ldconfig runs first\n"
                    "(ldconfig -r ROOT with --root); --dry-run and --print resolve as if it had.\n"
                    "A library that cannot be found is an error (exit 1).",
        epilog=examples(
            "pyimgtools keep                         # apt-mark manual what /usr/local needs",
            "pyimgtools keep --print /opt/venv       # just the package names",
            "pyimgtools keep --why libssl3 --exclude '*tkinter*'"))
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or directories to scan (default: /usr/local)")
    add_dry_run(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--print", action="store_true", dest="print_only",
                      help="only print the package names, one per line; mark nothing")
    mode.add_argument("--why", metavar="PKG",
                      help="show the libraries and ELF files that pull PKG in; mark nothing")
    p.add_argument("--exclude", metavar="GLOB", action="append", default=[],
                   help="leave out files whose name or in-image path matches GLOB "
                        "(repeatable; '*tkinter*' reproduces the official slim images)")
    p.add_argument("--allow-missing", action="store_true",
                   help="report libraries that cannot be found as warnings, not errors")
    add_allow_unreadable(p)
    p.add_argument("--ld-library-path", metavar="DIRS",
                   help="search these ':'-separated directories as LD_LIBRARY_PATH would "
                        "(the environment's LD_LIBRARY_PATH is never used)")
    p.add_argument("--scan-all", action="store_true",
                   help="also open files named like Python source, bytecode or text "
                        "(*.py, *.pyc, *.txt, ...) and walk __pycache__ directories, "
                        "which are skipped by default")
    p.add_argument("--method", choices=("elf", "ldd"), default="elf",
                   help="elf (default): read ELF headers, execute nothing. ldd: run ldd on "
                        "every file, for comparison only; this EXECUTES CODE (ldd runs a "
                        "dynamic loader on each file and, as ldd(1) warns, may run the "
                        "program's own code): trusted files only, never with --root")
    p.set_defaults(run=run)


def run(args, out, root):
    """keep's three modes: mark (or --dry-run), --print, --why."""
    start = time.monotonic()
    paths = args.paths or list(keep.DEFAULT_PATHS)
    ld_path = None
    if args.ld_library_path is not None:
        ld_path = [d for d in args.ld_library_path.split(":")]
    kp = keep.plan(root, paths, excludes=args.exclude, ld_library_path=ld_path,
                   method=args.method, scan_all=args.scan_all,
                   manual_flags=not (args.print_only and not out.json_mode))
    changes = None if args.print_only or args.why else "dry-run" if args.dry_run else "run"
    keep.report_plan(out, kp, changes)
    if kp.unreadable and not args.allow_unreadable:
        out.data(keep.document(kp, "print" if args.print_only else "why" if args.why else "mark",
                               seconds=time.monotonic() - start, dry_run=args.dry_run, marked=[],
                               allow_missing=args.allow_missing, allow_unreadable=False))
    keep.check_unreadable(out, kp, args.allow_unreadable)
    where = ", ".join(display_path(p) for p in kp.paths)

    if args.print_only:
        if not out.json_mode:
            for name in kp.package_names:
                print(name, file=out.stdout)
        out.data(keep.document(kp, "print", seconds=time.monotonic() - start,
                               allow_missing=args.allow_missing, allow_unreadable=args.allow_unreadable))
        keep.check_missing(out, kp, args.allow_missing)
        return EXIT_OK

    if args.why:
        wanted = args.why
        matches = [p for p in kp.packages
                   if p.name == wanted or p.name.split(":")[0] == wanted]
        out.data(keep.document(kp, "why", seconds=time.monotonic() - start, package=wanted,
                               matches=matches, allow_missing=args.allow_missing,
                               allow_unreadable=args.allow_unreadable))
        if not matches:
            out.line("%s: not needed by the ELF files under %s" % (wanted, where))
        for p in matches:
            out.line("%s%s:" % (p.name, " (already manual)" if p.manual else ""))
            for lib in p.libraries:
                out.line("  %s" % display_path(lib))
            out.line("  needed by %s:" % format_count(len(p.needed_by), "file"))
            for user in p.needed_by:
                out.line("    %s" % display_path(user))
        keep.check_missing(out, kp, args.allow_missing)
        return EXIT_OK

    if kp.missing and not args.allow_missing:
        # nothing is marked; the JSON document still says why
        out.data(keep.document(kp, "mark", seconds=time.monotonic() - start, dry_run=args.dry_run,
                               marked=[], allow_missing=False, allow_unreadable=args.allow_unreadable))
    keep.check_missing(out, kp, args.allow_missing)
    for p in kp.packages:
        out.detail("%s: %s" % (p.name, ", ".join(display_path(l) for l in p.libraries)))
    to_mark = kp.to_mark
    if args.dry_run:
        for name in to_mark:
            out.line("would mark manual: %s" % name)
        marked = []
    else:
        marked = keep.apply(root, kp, out)
        for name in marked:
            out.line("marked manual: %s" % name)
    out.data(keep.document(kp, "mark", seconds=time.monotonic() - start, dry_run=args.dry_run,
                           marked=marked, allow_missing=args.allow_missing,
                           allow_unreadable=args.allow_unreadable))
    out.summary("pyimgtools %s: %s needed by %s under %s; %s %s manual (%d already) in %.2f s"
                % (keep.NAME, format_count(len(kp.packages), "package"),
                   format_count(kp.scanned, "ELF file"), where,
                   "would mark" if args.dry_run else "marked",
                   format_count(len(to_mark), "package"),
                   len(kp.packages) - len(to_mark), time.monotonic() - start))
    return EXIT_OK
