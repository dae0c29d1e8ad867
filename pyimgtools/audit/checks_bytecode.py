"""Audit checks about bytecode: the standard library's and every site directory's
.pyc files (missing, stale, unreadable for a non-root user), with the estimated
compile cost per non-root start."""

import errno
import os

from pyimgtools.audit.context import DEBIAN_DIST_PACKAGES, PY_DIR, more
from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import Skip, check
from pyimgtools.fs import Root
from pyimgtools.report import display_path, format_bytes, format_count


# Compile throughput used for the start-up estimate: CPython 3.11 compiles its
# standard library (734 files, 12.1 MB of source, tests excluded) at about
# 4 MB/s on one core of a 2-CPU Debian 12 host (measured with compile()).
COMPILE_BYTES_PER_SECOND = 4.0e6


# -- standard library bytecode ----------------------------------------------------

_STDLIB_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def _pyc_header_len(version):
    if version >= (3, 7):
        return 16
    if version >= (3, 3):
        return 12
    return 8


def pyc_status(pyc_host, src_stat, version, src_host=None, root=None):
    """'ok', 'stale' or 'missing' for one source file and its cached .pyc.

    Timestamp pycs record the source's mtime and size (PEP 3147, 552); they
    are stale when either differs. Hash-based pycs: unchecked ones are always
    used; checked ones are verified when the running interpreter has the same
    magic number (importlib.util.source_hash), otherwise taken as valid.
    Both files are read through `root` (an fs.Root; default: the host's).
    """
    if root is None:
        root = Root("/")
    try:
        header = root.read_head(pyc_host, _pyc_header_len(version))
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "stale"
    if len(header) < _pyc_header_len(version):
        return "stale"
    if version >= (3, 7):
        flags = int.from_bytes(header[4:8], "little")
        if flags & 0b1:
            if not flags & 0b10:
                return "ok"
            import importlib.util
            if header[:4] != importlib.util.MAGIC_NUMBER or src_host is None:
                return "ok"
            try:
                source_hash = root.source_hash(src_host)
            except OSError:
                return "ok"
            return "ok" if source_hash == header[8:16] else "stale"
        fields = header[8:16]
    else:
        fields = header[4:]
    mtime = int.from_bytes(fields[0:4], "little")
    if mtime != int(src_stat.st_mtime) & 0xFFFFFFFF:
        return "stale"
    if len(fields) >= 8 and int.from_bytes(fields[4:8], "little") != src_stat.st_size & 0xFFFFFFFF:
        return "stale"
    return "ok"


def scan_stdlib(ctx, inst):
    """(missing, stale, unreadable) lists of (in-image .py path, source bytes, pyc bytes)
    for one installation's standard library.

    Test directories, site-packages and config-*/ are left out: they are not
    imported in normal use (and `prune` removes the tests).
    """
    return scan_bytecode(ctx, inst.stdlib, inst.version, _STDLIB_SKIP_DIRS, skip_config=True,
                         walk="stdlib-bytecode")


def _unreadable_for_others(src_mode, pyc_mode, pycache_mode):
    """A user who can read the source (by the "other" bits) cannot use the .pyc."""
    if not src_mode & 0o004:
        return False
    if pycache_mode is not None and (pycache_mode & 0o005) != 0o005:
        return True
    return not pyc_mode & 0o004


def scan_bytecode(ctx, top, version, skip_dirs, skip_config=False, walk="bytecode"):
    """(missing, stale, unreadable) lists of (in-image .py path, source bytes, pyc bytes)
    for every .py under the in-image directory `top`, for Python `version`.

    unreadable: the .pyc is there and valid, but a user who may read the source
    may not read it (its mode, or its __pycache__'s): that user compiles.
    What cannot be read goes to ctx.not_read(walk).
    """
    tag = "cpython-%d%d" % version
    legacy = version < (3, 2)
    missing, stale, unreadable = [], [], []
    try:
        top_host = ctx.root.host(ctx.root.realpath(top))
    except OSError:
        return missing, stale, unreadable
    stack = [(top_host, top)]
    while stack:
        host_dir, image_dir = stack.pop()
        try:
            entries = list(os.scandir(host_dir))
        except OSError as exc:
            ctx.not_read(walk, image_dir, "list", exc)
            continue
        pycache = None
        pycache_mode = None
        if not legacy:
            cache_dir = os.path.join(host_dir, "__pycache__")
            try:
                pycache = set(os.listdir(cache_dir))
                pycache_mode = os.lstat(cache_dir).st_mode
            except OSError as exc:
                pycache = set()
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    # which modules have a .pyc is unknown here: none is counted
                    ctx.not_read(walk, image_dir + "/__pycache__", "list", exc)
                    entries = [e for e in entries if not e.name.endswith(".py")]
        names = {e.name for e in entries}
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if e.name in skip_dirs or (skip_config and e.name.startswith("config-")):
                        continue
                    stack.append((e.path, image_dir + "/" + e.name))
                    continue
                if not e.name.endswith(".py") or not e.is_file(follow_symlinks=False):
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                ctx.not_read(walk, image_dir + "/" + e.name, "stat", exc)
                continue
            stem = e.name[:-3]
            if legacy:
                pyc_name = stem + ".pyc"
                present = pyc_name in names
                pyc_host = os.path.join(host_dir, pyc_name)
            else:
                pyc_name = "%s.%s.pyc" % (stem, tag)
                present = pyc_name in pycache
                pyc_host = os.path.join(host_dir, "__pycache__", pyc_name)
            path = image_dir + "/" + e.name
            if not present:
                missing.append((path, st.st_size, 0))
                continue
            status = pyc_status(pyc_host, st, version, e.path, ctx.root)
            try:
                pst = os.lstat(pyc_host)
            except OSError:
                pst = None
            if status == "stale":
                stale.append((path, st.st_size, pst.st_size if pst else 0))
            elif status == "missing":
                missing.append((path, st.st_size, 0))
            elif pst is not None and _unreadable_for_others(
                    st.st_mode, pst.st_mode, None if legacy else pycache_mode):
                unreadable.append((path, st.st_size, pst.st_size))
    missing.sort()
    stale.sort()
    unreadable.sort()
    return missing, stale, unreadable


def _cost(nbytes):
    seconds = nbytes / COMPILE_BYTES_PER_SECOND
    return "%.0f ms" % (seconds * 1000) if seconds < 1 else "%.1f s" % seconds


@check("stdlib-bytecode", "stdlib-missing-pyc", "stdlib-stale-pyc", "pyc-unreadable", "not-checked")
def check_stdlib_bytecode(ctx):
    """Standard-library modules of every Python installation without a usable .pyc
    (missing, stale, unreadable): each is compiled again at every non-root start."""
    if not ctx.pythons:
        # where a Python installation may be but could not be looked at
        missed = ctx.not_checked("pythons", "directories that may hold a Python installation")
        if missed:
            return missed
        raise Skip("no Python installation found")
    # No warning that audit's own imports wrote .pycs into the stdlib it checks:
    # pyimgtools/__init__.py sets sys.dont_write_bytecode for the whole process.
    scans = [(inst.stdlib, inst.describe(), scan_stdlib(ctx, inst)) for inst in ctx.pythons]
    return (bytecode_findings(scans, "stdlib", "of the standard library")
            + ctx.not_checked("stdlib-bytecode", "standard library modules")
            + ctx.not_checked("pythons", "directories that may hold a Python installation"))


def bytecode_findings(scans, prefix, what):
    """Findings PREFIX-missing-pyc, PREFIX-stale-pyc and pyc-unreadable from
    [(tree, description, (missing, stale, unreadable))], with the compile cost."""
    findings = []
    kinds = (("missing", prefix + "-missing-pyc", 0), ("stale", prefix + "-stale-pyc", 1),
             ("unreadable", "pyc-unreadable", 2))
    for kind, fid, index in kinds:
        groups = [(tree, desc, lists[index]) for tree, desc, lists in scans if lists[index]]
        if not groups:
            continue
        evidence, paths, src_total, pyc_total, count = [], [], 0, 0, 0
        for tree, desc, items in groups:
            src = sum(i[1] for i in items)
            src_total += src
            pyc_total += sum(i[2] for i in items)
            count += len(items)
            paths.extend(i[0] for i in items)
            label = {"missing": "without a .pyc", "stale": "with a stale timestamp .pyc",
                     "unreadable": "with a .pyc other users cannot read"}[kind]
            evidence.append("%s (%s): %s %s (%s of source), up to %s of compiling per "
                            "non-root start, e.g. %s" % (
                                tree, desc, format_count(len(items), "module"), label,
                                format_bytes(src), _cost(src),
                                more([display_path(i[0]) for i in items], 2)))
        evidence.append("estimated start-up cost: up to %s of compiling in every process "
                        "that imports them when __pycache__ is not writable (non-root user, "
                        "read-only root)" % _cost(src_total))
        verb = "has" if count == 1 else "have"
        if kind == "missing":
            title = "%s %s %s no .pyc" % (format_count(count, "module"), what, verb)
            fix = "pyimgtools compile, or finalize (in the same RUN step, after prune)"
        elif kind == "stale":
            title = ("%s %s %s a timestamp .pyc whose recorded mtime or size "
                     "no longer matches the source" % (format_count(count, "module"), what, verb))
            fix = "pyimgtools compile (checked-hash pycs survive rewritten mtimes)"
        else:
            title = ("%s %s %s a .pyc (or __pycache__) that users who can read the source "
                     "cannot read" % (format_count(count, "module"), what, verb))
            fix = "pyimgtools compile (it makes each .pyc as readable as its source)"
        findings.append(Finding(fid, "warn", title, fix, evidence=evidence, paths=paths,
                                bytes=pyc_total, reclaimable=False,
                                data={"modules": count, "source_bytes": src_total,
                                      "estimated_compile_seconds": round(
                                          src_total / COMPILE_BYTES_PER_SECOND, 3),
                                      "trees": [g[0] for g in groups]}))
    return findings


# -- site-packages and venv bytecode ----------------------------------------------

_SITE_SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__"}


def site_trees(ctx):
    """[(in-image site directory, (major, minor), description)] of every Python
    environment in the image: each installation's site-packages/dist-packages
    (Debian's /usr/lib/python3/dist-packages and /usr/local/.../dist-packages for
    its own Python) and every venv's (a directory with a pyvenv.cfg)."""
    found, seen = [], set()

    def add(path, version, desc):
        try:
            real = ctx.root.realpath(path)
        except OSError:
            return
        if real in seen or not os.path.isdir(ctx.root.host(real)):
            return
        seen.add(real)
        found.append((path, version, desc))

    for inst in ctx.pythons:
        for name in ("site-packages", "dist-packages"):
            add("%s/%s" % (inst.stdlib, name), inst.version, inst.describe())
        if inst.debian:
            add("/usr/local/lib/python%s/dist-packages" % inst.name, inst.version, inst.describe())
    default = _debian_default(ctx)
    if default is not None:
        add(DEBIAN_DIST_PACKAGES, default.version, default.describe())
    for venv in sorted(ctx.tree.venvs):
        for lib in ("lib", "lib64"):
            for name in ctx.listdir(venv + "/" + lib, "site-bytecode"):
                m = PY_DIR.match(name)
                if m:
                    add("%s/%s/%s/site-packages" % (venv, lib, name),
                        (int(m.group(1)), int(m.group(2))), "venv %s" % venv)
    return found


def _debian_default(ctx):
    """Debian's Python that /usr/bin/python3 runs (its dist-packages are shared)."""
    debian = [i for i in ctx.pythons if i.debian]
    if not debian:
        return None
    try:
        real = ctx.root.realpath("/usr/bin/python3")
    except OSError:
        real = None
    for inst in debian:
        if real and inst.executable and real.endswith("/python" + inst.name):
            return inst
    return max(debian, key=lambda i: i.version)


@check("site-bytecode", "site-missing-pyc", "site-stale-pyc", "pyc-unreadable", "not-checked")
def check_site_bytecode(ctx):
    """Modules in site-packages, dist-packages and venvs without a usable .pyc
    (tests left out), per environment, with the compile cost of a non-root start."""
    trees = site_trees(ctx)
    if not trees:
        raise Skip("no site-packages or venv found")
    scans = [(tree, desc, scan_bytecode(ctx, tree, version, _SITE_SKIP_DIRS, walk="site-bytecode"))
             for tree, version, desc in trees]
    return (bytecode_findings(scans, "site", "in site-packages and venvs")
            + ctx.not_checked("site-bytecode", "site-packages and venv modules"))
