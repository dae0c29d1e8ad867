"""The checks of `pyimgtools audit` (see audit.py for the frame, audit_model.py for Finding).

Each check is a function `check(ctx) -> [Finding]` registered in `CHECKS`
with the finding ids it can produce (the ids are a stable interface: CI
configurations name them in `--ignore`). A check raises `Skip(reason)` when
it cannot look (no dpkg database, no environment visible, ...).

`Context` holds what several checks share and computes it once: the Python
installations, one walk of the whole tree (symlinks and `.dist-info`
directories), dpkg's database. Everything is read inside the root; nothing is
executed or written.
"""

import errno
import fnmatch
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from pyimgtools.audit_model import Finding
from pyimgtools.report import display_path, format_bytes, format_count

# Parts of the tree that hold no image content: run-time mounts and scratch.
_SKIP_TOP = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp")
# A symlink into these is resolved at run time (e.g. /etc/mtab -> ../proc/self/mounts).
_VIRTUAL = ("proc", "sys", "dev", "run")

# Compile throughput used for the start-up estimate: CPython 3.11 compiles its
# standard library (734 files, 12.1 MB of source, tests excluded) at about
# 4 MB/s on one core of a 2-CPU Debian 12 host (measured with compile()).
COMPILE_BYTES_PER_SECOND = 4.0e6


class Skip(Exception):
    """The check could not look; the message says why (shown as 'not checked')."""


@dataclass
class Check:
    id: str
    ids: Tuple[str, ...]
    run: Callable
    background: bool = False    # mostly waits for a subprocess: run in a thread


CHECKS = []


def check(check_id, *ids, background=False):
    def deco(fn):
        CHECKS.append(Check(check_id, tuple(ids) or (check_id,), fn, background))
        return fn
    return deco


def known_ids():
    result = set()
    for c in CHECKS:
        result.add(c.id)
        result.update(c.ids)
    return result


# -- shared context ---------------------------------------------------------------

@dataclass
class PythonInstall:
    prefix: str           # /usr, /usr/local, /root/.pyenv/versions/3.11.7
    version: Tuple[int, int]
    stdlib: str           # in-image path of lib/pythonX.Y
    executable: Optional[str]
    debian: bool          # Debian's own (prefix /usr, from dpkg)

    @property
    def name(self):
        return "%d.%d" % self.version

    def describe(self):
        who = "Debian's Python %s" % self.name if self.debian else "Python %s" % self.name
        return "%s in %s (%s)" % (who, self.prefix, self.executable or "no executable in bin/")


class Tree:
    """What one walk of the whole root collects."""

    def __init__(self):
        self.symlinks = []        # in-image paths
        self.dist_infos = []      # (in-image path, set of names inside)
        self.nested_roots = []    # directories that hold another root file system (not walked)
        self.venvs = []           # directories holding a pyvenv.cfg (virtual environments)


class Context:
    def __init__(self, root, env=None, env_source="", warn=None):
        self.root = root
        self.env = env
        self.env_source = env_source
        self._warn = warn
        self._cache = {}
        self._unreadable = {}     # walk -> ["path: cannot list: reason"] (not_read)
        self._lock = threading.Lock()

    def warn(self, text):
        if self._warn:
            self._warn(text)

    def env_description(self):
        return self.env_source or "none"

    def cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # what could not be read ------------------------------------------------
    def not_read(self, walk, path, action, exc):
        """Record that `walk` could not `action` the in-image `path` (a not-checked
        finding of the check that reports `walk`); a path that is not there is none."""
        if walk is None or getattr(exc, "errno", None) in (errno.ENOENT, errno.ENOTDIR):
            return
        text = "%s: cannot %s: %s" % (display_path(path), action,
                                      getattr(exc, "strerror", None) or exc)
        with self._lock:
            found = self._unreadable.setdefault(walk, [])
            if text not in found:
                found.append(text)

    def not_checked(self, walk, what):
        """[the not-checked Finding] for what `walk` could not read, or []."""
        items = sorted(self._unreadable.get(walk, ()))
        if not items:
            return []
        return [Finding(
            "not-checked", "error",
            "%s could not be read: the %s there were not checked"
            % (format_count(len(items), "path"), what),
            "run audit with the rights to read them (root with CAP_DAC_READ_SEARCH), or fix "
            "their permissions",
            evidence=items, paths=[i.rsplit(": cannot ", 1)[0] for i in items],
            data={"unreadable": items, "walk": walk})]

    # paths ---------------------------------------------------------------
    def host(self, path):
        return self.root.host(path)

    def listdir(self, path, walk=None):
        """Sorted names in an in-image directory; [] when it cannot be listed
        (recorded for `walk`'s not-checked finding unless it is not there)."""
        try:
            return sorted(os.listdir(self.root.host(self.root.realpath(path))))
        except OSError as exc:
            self.not_read(walk, path, "list", exc)
            return []

    def lexists(self, path):
        try:
            os.lstat(self.root.host(path))
            return True
        except OSError:
            return False

    # shared data ---------------------------------------------------------
    @property
    def pythons(self):
        return self.cached("pythons", lambda: find_pythons(self))

    @property
    def tree(self):
        return self.cached("tree", lambda: walk_tree(self))

    @property
    def dpkg(self):
        """pyimgtools.dpkg.Database, or None when the image has no dpkg status."""
        def load():
            from pyimgtools import dpkg
            if not self.lexists(dpkg.ADMINDIR + "/status"):
                return None
            return dpkg.Database(self.root)
        return self.cached("dpkg", load)

    def installed(self):
        db = self.dpkg
        return db.installed() if db is not None else {}


_PY_DIR = re.compile(r"\Apython(\d+)\.(\d+)\Z")


def _prefixes(ctx):
    """Directories that may hold a Python installation (PREFIX/lib/pythonX.Y/os.py)."""
    found = ["/usr", "/usr/local"]
    for name in ctx.listdir("/opt", "pythons"):
        found.append("/opt/" + name)
        found.extend("/opt/%s/%s" % (name, sub) for sub in ("python", "conda", "venv"))
    homes = ["/root"] + ["/home/" + n for n in ctx.listdir("/home", "pythons")]
    for home in homes:
        for base in (home + "/.pyenv/versions", home + "/.local/share/uv/python"):
            found.extend(base + "/" + n for n in ctx.listdir(base, "pythons"))
    return found


def find_pythons(ctx):
    """Every Python installation in the image: a PREFIX/lib/pythonX.Y/os.py.

    Virtual environments have no os.py of their own and are not counted.
    """
    result, seen = [], set()
    for prefix in _prefixes(ctx):
        for name in ctx.listdir(prefix + "/lib", "pythons"):
            m = _PY_DIR.match(name)
            if not m:
                continue
            stdlib = "%s/lib/%s" % (prefix, name)
            if not ctx.root.exists(stdlib + "/os.py"):
                continue
            try:
                real = ctx.root.realpath(stdlib)
            except OSError:
                continue
            if real in seen:
                continue
            seen.add(real)
            exe = "%s/bin/%s" % (prefix, name)
            result.append(PythonInstall(
                prefix=prefix, version=(int(m.group(1)), int(m.group(2))), stdlib=stdlib,
                executable=exe if ctx.lexists(exe) else None, debian=(prefix == "/usr")))
    return result


_ROOT_NAMES = {"etc", "usr", "var", "bin"}


def _looks_like_root(names):
    """A directory holding etc/, usr/, var/ and bin/ is another root (an image
    layer, a chroot): its symlinks point into itself, not into this root."""
    return _ROOT_NAMES <= names


def walk_tree(ctx):
    """One pass over the root (one file system, run-time mounts skipped)."""
    tree = Tree()
    root = ctx.root
    try:
        top_dev = os.lstat(root.host("/")).st_dev
    except OSError:
        return tree
    stack = ["/"]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(root.host(d))
        except OSError as exc:
            ctx.not_read("tree", d, "list", exc)
            continue
        base = "" if d == "/" else d
        with it:
            entries = list(it)
        if d != "/" and _looks_like_root({e.name for e in entries}):
            tree.nested_roots.append(d)   # another image's tree (container storage, a chroot)
            continue
        for e in entries:
            path = base + "/" + e.name
            try:
                if e.is_symlink():
                    tree.symlinks.append(path)
                    continue
                if not e.is_dir(follow_symlinks=False):
                    if e.name == "pyvenv.cfg" and d != "/":
                        tree.venvs.append(d)
                    continue
                if d == "/" and path in _SKIP_TOP:
                    continue
                if e.stat(follow_symlinks=False).st_dev != top_dev:
                    continue
            except OSError as exc:
                ctx.not_read("tree", path, "stat", exc)
                continue
            if e.name.endswith(".dist-info"):
                try:
                    names = set(os.listdir(e.path))
                except OSError as exc:
                    ctx.not_read("tree", path, "list", exc)
                    names = None
                tree.dist_infos.append((path, names))
            stack.append(path)
    return tree


def _size(ctx, path, seen=None, walk="sizes"):
    """Bytes of the regular files under an in-image path (no symlinks followed,
    hard links once); (bytes, files). What cannot be read goes to ctx.not_read(walk)."""
    seen = set() if seen is None else seen
    total = files = 0
    top = ctx.root.host(path)
    stack = [top]
    try:
        st = os.lstat(stack[0])
    except OSError:
        return 0, 0
    if not stat.S_ISDIR(st.st_mode):
        return (st.st_size, 1) if stat.S_ISREG(st.st_mode) else (0, 0)
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as exc:
            ctx.not_read(walk, path + d[len(top):], "list", exc)
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        key = (st.st_dev, st.st_ino)
                        if st.st_nlink > 1:
                            if key in seen:
                                continue
                            seen.add(key)
                        total += st.st_size
                        files += 1
                except OSError:
                    continue
    return total, files


def _more(items, n, fmt=str):
    shown = ", ".join(fmt(i) for i in items[:n])
    if len(items) > n:
        shown += " and %d more" % (len(items) - n)
    return shown


# -- two Python installations -----------------------------------------------------

_DEBIAN_PY_PKGS = ("python{v}", "python{v}-minimal", "libpython{v}-minimal", "libpython{v}-stdlib",
                   "libpython{v}")


def _dep_names(value):
    """Package names of a Depends-style field: 'a (>= 1) | b:any, c' -> ['a', 'b', 'c']."""
    names = []
    for part in value.split(","):
        for alt in part.split("|"):
            alt = alt.strip()
            if not alt:
                continue
            name = re.split(r"[\s(\[<]", alt, maxsplit=1)[0].split(":", 1)[0]
            if name:
                names.append(name)
    return names


def _dependency_graph(ctx):
    """{installed package name: set of installed names it depends on} (Depends and
    Pre-Depends, virtual names resolved through Provides)."""
    packages = [p for p in ctx.installed().values() if p.configured]
    installed = {p.name for p in packages}
    provides = {}
    for p in packages:
        for virtual in _dep_names(p.provides):
            provides.setdefault(virtual, set()).add(p.name)
    graph = {}
    for p in packages:
        deps = set()
        for name in _dep_names(p.depends) + _dep_names(p.pre_depends):
            if name in installed:
                deps.add(name)
            deps.update(provides.get(name, ()))
        deps.discard(p.name)
        graph.setdefault(p.name, set()).update(deps)
    return graph


def pulled_in_by(ctx, targets):
    """Installed packages that brought `targets` in: apt's manually installed
    packages that depend on them (directly or not); without apt's
    extended_states, the tops of the dependency chains."""
    graph = _dependency_graph(ctx)
    reverse = {}
    for pkg, deps in graph.items():
        for d in deps:
            reverse.setdefault(d, set()).add(pkg)
    reach = set(t for t in targets if t in graph)
    todo = list(reach)
    while todo:
        for parent in reverse.get(todo.pop(), ()):
            if parent not in reach:
                reach.add(parent)
                todo.append(parent)
    db = ctx.dpkg
    has_states = ctx.lexists("/var/lib/apt/extended_states")
    if has_states:
        manual_names = db.manual_packages()
        manual = {p.name for p in ctx.installed().values() if p.apt_name in manual_names}
        result = sorted(reach & manual)
    else:
        result = sorted(p for p in reach if not (reverse.get(p, set()) & reach))
    return result


@check("two-pythons")
def check_two_pythons(ctx):
    installs = ctx.pythons
    if len(installs) < 2:
        return []
    debian = [i for i in installs if i.debian]
    others = [i for i in installs if not i.debian]
    evidence = [i.describe() for i in installs]
    nbytes, data = 0, {"installations": [
        {"prefix": i.prefix, "version": i.name, "stdlib": i.stdlib, "executable": i.executable,
         "debian": i.debian} for i in installs]}
    if debian and others and ctx.dpkg is not None:
        installed = {p.name: p for p in ctx.installed().values()}
        targets = [t.format(v=i.name) for i in debian for t in _DEBIAN_PY_PKGS]
        targets = [t for t in targets if t in installed]
        by = pulled_in_by(ctx, targets) if targets else []
        python_pkgs = sorted(n for n in installed if n.startswith(("python3", "libpython3", "python2",
                                                                   "libpython2")))
        nbytes = sum((installed[n].installed_size or 0) * 1024 for n in python_pkgs)
        if by:
            evidence.append("Debian's Python pulled in by: %s" % _more(by, 8))
        evidence.append("Debian Python packages installed: %s (%s)"
                        % (format_count(len(python_pkgs), "package"), format_bytes(nbytes)))
        data["pulled_in_by"] = by
        data["debian_python_packages"] = python_pkgs
    title = "%s: %s" % (format_count(len(installs), "Python installation"),
                        _more(sorted({i.prefix for i in installs}), 4))
    if debian and others:
        fix = ("don't apt-get install python3*/…-dev on top of the image's own Python; "
               "apt-get purge --auto-remove %s" % " ".join(data.get("pulled_in_by") or ["python3"]))
    else:
        fix = "keep one Python installation per image (copy the one you need from a build stage)"
    paths = []
    for i in installs:
        paths.append(i.executable or i.stdlib)
    return [Finding("two-pythons", "warn", title, fix, evidence=evidence, paths=paths,
                    bytes=nbytes, reclaimable=bool(nbytes), data=data)]


# -- standard library bytecode ----------------------------------------------------

_STDLIB_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def _pyc_header_len(version):
    if version >= (3, 7):
        return 16
    if version >= (3, 3):
        return 12
    return 8


def pyc_status(pyc_host, src_stat, version, src_host=None):
    """'ok', 'stale' or 'missing' for one source file and its cached .pyc.

    Timestamp pycs record the source's mtime and size (PEP 3147, 552); they
    are stale when either differs. Hash-based pycs: unchecked ones are always
    used; checked ones are verified when the running interpreter has the same
    magic number (importlib.util.source_hash), otherwise taken as valid.
    """
    try:
        with open(pyc_host, "rb") as f:
            header = f.read(_pyc_header_len(version))
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
                with open(src_host, "rb") as f:
                    source = f.read()
            except OSError:
                return "ok"
            return "ok" if importlib.util.source_hash(source) == header[8:16] else "stale"
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
            status = pyc_status(pyc_host, st, version, e.path)
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
                                _more([display_path(i[0]) for i in items], 2)))
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
                m = _PY_DIR.match(name)
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
    trees = site_trees(ctx)
    if not trees:
        raise Skip("no site-packages or venv found")
    scans = [(tree, desc, scan_bytecode(ctx, tree, version, _SITE_SKIP_DIRS, walk="site-bytecode"))
             for tree, version, desc in trees]
    return (bytecode_findings(scans, "site", "in site-packages and venvs")
            + ctx.not_checked("site-bytecode", "site-packages and venv modules"))


# -- package-manager leftovers ----------------------------------------------------

def _files_in(ctx, directory, predicate, recursive=False, walk="leftovers"):
    """[(in-image path, bytes)] of regular files in a directory (not following links);
    what cannot be read goes to ctx.not_read(walk)."""
    result = []
    stack = [directory]
    while stack:
        d = stack.pop()
        try:
            host = ctx.root.host(ctx.root.realpath(d))
            it = os.scandir(host)
        except OSError as exc:
            ctx.not_read(walk, d, "list", exc)
            continue
        with it:
            for e in it:
                path = d.rstrip("/") + "/" + e.name
                try:
                    if e.is_dir(follow_symlinks=False):
                        if recursive:
                            stack.append(path)
                        continue
                    if e.is_file(follow_symlinks=False) and predicate(e.name):
                        result.append((path, e.stat(follow_symlinks=False).st_size))
                except OSError:
                    continue
    result.sort()
    return result


def _cache_dirs(ctx, tool):
    homes = ["/root"] + ["/home/" + n for n in ctx.listdir("/home")]
    dirs = [h + "/.cache/" + tool for h in homes]
    env = ctx.env or {}
    if env.get("XDG_CACHE_HOME", "").startswith("/"):
        dirs.append(env["XDG_CACHE_HOME"].rstrip("/") + "/" + tool)
    var = {"pip": "PIP_CACHE_DIR", "uv": "UV_CACHE_DIR"}[tool]
    if env.get(var, "").startswith("/"):
        dirs.append(env[var].rstrip("/"))
    return [d for d in dict.fromkeys(dirs) if ctx.root.isdir(d)]


# (apt.Leftover kind, title from [(path, bytes)], fix) of the findings apt-KIND
_APT_LEFTOVER_FINDINGS = (
    ("lists", lambda files: "apt's package lists left in /var/lib/apt/lists (%s)"
     % format_count(len(files), "file"),
     "rm -rf /var/lib/apt/lists/* in the RUN step that ran apt-get update"),
    ("debs", lambda files: "%s of downloaded packages left in /var/cache/apt/archives"
     % format_count(len(files), ".deb", ".debs"),
     "apt-get clean in the RUN step that installed them"),
    ("pkgcache", lambda files: "apt's binary caches left in /var/cache/apt (%s)"
     % ", ".join(os.path.basename(p) for p, _ in files),
     "apt-get clean (or rm -f /var/cache/apt/*.bin) in the same RUN step"),
)


@check("package-manager-leftovers", "apt-lists", "apt-debs", "apt-pkgcache", "pip-cache", "uv-cache",
       "not-checked")
def check_leftovers(ctx):
    from pyimgtools import apt
    findings = []
    left = {}
    for leftover in apt.LEFTOVERS:
        left.setdefault(leftover.kind, []).extend(_files_in(
            ctx, leftover.directory,
            lambda n, l=leftover: l.reported(n) and l.wants(n, False), recursive=leftover.whole))
    for kind, title, fix in _APT_LEFTOVER_FINDINGS:
        files = left[kind]
        if files:
            findings.append(Finding(
                "apt-" + kind, "warn", title(files), fix,
                evidence=["%s (%s)" % (display_path(p), format_bytes(b)) for p, b in files],
                paths=[p for p, _ in files], bytes=sum(b for _, b in files), reclaimable=True))
    for tool, fid, fix in (
            ("pip", "pip-cache", "pip install --no-cache-dir (or PIP_NO_CACHE_DIR=1), or rm -rf the cache in the same RUN step"),
            ("uv", "uv-cache", "uv --no-cache (or UV_NO_CACHE=1), or uv cache clean in the same RUN step")):
        dirs = _cache_dirs(ctx, tool)
        sized = [(d,) + _size(ctx, d, walk="leftovers") for d in dirs]
        sized = [s for s in sized if s[2]]
        if sized:
            total = sum(s[1] for s in sized)
            findings.append(Finding(
                fid, "warn", "%s cache left: %s" % (tool, ", ".join(display_path(s[0]) for s in sized)),
                fix, evidence=["%s: %s (%s)" % (display_path(d), format_count(n, "file"), format_bytes(b))
                               for d, b, n in sized],
                paths=[s[0] for s in sized], bytes=total, reclaimable=True))
    return findings + ctx.not_checked("leftovers", "apt lists, caches and pip/uv caches")


# -- build tools ------------------------------------------------------------------

_BUILD_TOOLS = re.compile(
    r"\A(?:gcc|g\+\+|cpp|gfortran|clang|llvm|rustc|cargo|golang-go|gccgo|make|cmake|ninja-build|"
    r"meson|autoconf|automake|libtool|pkgconf|pkg-config|build-essential|dpkg-dev|bison|flex|nasm|"
    r"yasm|binutils)(?:-[0-9][0-9.]*)?\Z")
_NOT_BUILD_TOOLS = re.compile(r"\Agcc-[0-9.]+-base\Z")


def is_build_tool(name):
    """Compilers, make and friends, binutils, and every *-dev package."""
    if _NOT_BUILD_TOOLS.match(name):
        return False
    return (bool(_BUILD_TOOLS.match(name)) or name.endswith("-dev")
            or name.startswith("binutils-"))


@check("build-tools")
def check_build_tools(ctx):
    if ctx.dpkg is None:
        raise Skip("no dpkg database (/var/lib/dpkg/status)")
    pkgs = sorted((p for p in ctx.installed().values() if is_build_tool(p.name)),
                  key=lambda p: (-(p.installed_size or 0), p.dpkg_name))
    if not pkgs:
        return []
    total = sum((p.installed_size or 0) * 1024 for p in pkgs)
    manual = ctx.dpkg.manual_packages() if ctx.lexists("/var/lib/apt/extended_states") else set()
    names = sorted(p.apt_name for p in pkgs)
    return [Finding(
        "build-tools", "warn",
        "build tools left installed: %s" % _more(names, 6),
        "purge them in the RUN step that used them: pyimgtools build-deps purge --keep-runtime "
        "/usr/local (or apt-get purge --auto-remove %s)" % " ".join(
            (sorted(p.apt_name for p in pkgs if p.apt_name in manual) or names)[:6] + ["…"]),
        evidence=["%s %s: %s installed%s" % (p.apt_name, p.version,
                                             format_bytes((p.installed_size or 0) * 1024),
                                             " (manually installed)" if p.apt_name in manual else "")
                  for p in pkgs],
        paths=[], bytes=total, reclaimable=True,
        data={"packages": [{"package": p.apt_name, "version": p.version,
                            "installed_bytes": (p.installed_size or 0) * 1024,
                            "manual": p.apt_name in manual} for p in pkgs]})]


# -- broken metadata ---------------------------------------------------------------

def _dpkg_excludes(ctx):
    """(path-exclude, path-include) patterns of /etc/dpkg/dpkg.cfg.d/*."""
    excl, incl = [], []
    files = ["/etc/dpkg/dpkg.cfg"] + ["/etc/dpkg/dpkg.cfg.d/" + n
                                      for n in ctx.listdir("/etc/dpkg/dpkg.cfg.d", "tree")]
    for path in files:
        try:
            with ctx.root.open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] == "path-exclude":
                excl.append(parts[1].strip())
            elif len(parts) == 2 and parts[0] == "path-include":
                incl.append(parts[1].strip())
    return excl, incl


def _excluded(path, excl, incl):
    # dpkg: the last matching exclude wins unless a later include matches; in
    # practice include patterns re-admit a subset of excluded ones.
    return (any(fnmatch.fnmatchcase(path, p) for p in excl)
            and not any(fnmatch.fnmatchcase(path, p) for p in incl))


def dangling_symlinks(ctx):
    """[(link, target text, resolved in-image path or reason)] for links whose
    target does not exist inside the root (loops included). Links into
    /proc, /sys, /dev, /run, or into paths the image's dpkg configuration
    excludes (path-exclude, e.g. man pages in slim images), are not counted."""
    root = ctx.root
    excl, incl = _dpkg_excludes(ctx)
    result = []
    for link in ctx.tree.symlinks:
        try:
            target = os.readlink(root.host(link))
        except OSError as exc:
            ctx.not_read("tree", link, "read the link", exc)
            continue
        parent = link.rsplit("/", 1)[0] or "/"
        if "/" not in target and target not in (".", ".."):
            try:
                st = os.lstat(root.host(parent.rstrip("/") + "/" + target))
                if not stat.S_ISLNK(st.st_mode):
                    continue
            except OSError:
                pass
        try:
            resolved = root.realpath(link)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                result.append((link, target, "symlink loop"))
            else:
                ctx.not_read("tree", link, "resolve", exc)
            continue
        if resolved.split("/")[1] in _VIRTUAL:
            continue
        try:
            os.lstat(root.host(resolved))
            continue
        except OSError:
            pass
        if excl and (_excluded(resolved, excl, incl) or _excluded(link, excl, incl)):
            continue  # into, or itself in, what the image excludes (trixie's
            # python3-pip keeps doc links into libjs-sphinxdoc, a Recommends)
        result.append((link, target, resolved))
    result.sort()
    return result


DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


@check("broken-metadata", "broken-dist-info", "dangling-symlinks", "not-checked")
def check_broken_metadata(ctx):
    findings = []
    broken = []
    for path, names in sorted(ctx.tree.dist_infos):
        if names is None:
            continue
        lacking = [n for n in ("METADATA", "RECORD") if n not in names]
        if lacking == ["RECORD"] and path.startswith(DEBIAN_DIST_PACKAGES + "/"):
            continue  # Debian's packages drop RECORD by policy; dpkg owns the files
        if lacking:
            broken.append((path, lacking))
    if broken:
        findings.append(Finding(
            "broken-dist-info", "warn",
            "%s without METADATA or RECORD (importlib.metadata / pip cannot see or uninstall them)"
            % format_count(len(broken), ".dist-info directory", ".dist-info directories"),
            "reinstall them: pip install --force-reinstall --no-deps NAME (and let prune keep *.dist-info)",
            evidence=["%s: no %s" % (display_path(p), " and no ".join(l)) for p, l in broken],
            paths=[p for p, _ in broken], data={"missing": {p: l for p, l in broken}}))
    dangling = dangling_symlinks(ctx)
    if dangling:
        findings.append(Finding(
            "dangling-symlinks", "warn",
            "%s pointing at nothing inside the image" % format_count(len(dangling), "symlink"),
            "remove the links or restore their targets (often: a file deleted by hand after install)",
            evidence=["%s -> %s (%s)" % (display_path(l), display_path(t),
                                         r if r == "symlink loop" else "%s missing" % display_path(r))
                      for l, t, r in dangling],
            paths=[l for l, _, _ in dangling]))
    return findings + ctx.not_checked("tree", "symlinks and .dist-info directories")


# -- missing runtime pieces ---------------------------------------------------------

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _ssl_modules(ctx):
    found = []
    for inst in ctx.pythons:
        dyn = inst.stdlib + "/lib-dynload"
        for name in ctx.listdir(dyn):
            if name.startswith("_ssl.") and name.endswith(".so"):
                found.append(dyn + "/" + name)
    return found


@check("ca-certificates", "no-ca-certificates")
def check_ca_certificates(ctx):
    ssl = _ssl_modules(ctx)
    if not ssl:
        return []
    if ctx.root.exists(CA_BUNDLE):
        return []
    installed = {p.name for p in ctx.installed().values()}
    if "ca-certificates" in installed:
        return []
    evidence = ["Python's ssl module is present: %s" % ", ".join(display_path(p) for p in ssl),
                "%s does not exist" % CA_BUNDLE]
    if ctx.dpkg is not None:
        evidence.append("package ca-certificates is not installed")
    return [Finding(
        "no-ca-certificates", "warn",
        "no CA certificates: HTTPS from Python (pip, urllib, requests without certifi) fails to verify",
        "apt-get install -y --no-install-recommends ca-certificates",
        evidence=evidence, paths=ssl)]


_UTF8 = re.compile(r"utf-?8", re.IGNORECASE)


@check("locale", "locale-not-utf8")
def check_locale(ctx):
    if ctx.env is None:
        raise Skip("environment not visible: %s" % ctx.env_source)
    env = ctx.env
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        if env.get(var):
            name, value = var, env[var]
            break
    else:
        name, value = None, None
    if value is not None and _UTF8.search(value):
        return []
    if name is None:
        what = "LANG (and LC_ALL, LC_CTYPE) unset: the C locale"
    else:
        what = "%s=%s" % (name, value)
    evidence = ["%s (from %s)" % (what, ctx.env_source),
                "Python 3.7+ coerces the C locale to UTF-8 (PEP 538); other programs and "
                "Python 3.6 or older see ASCII"]
    if env.get("PYTHONUTF8") == "1":
        evidence.append("PYTHONUTF8=1 is set (Python's UTF-8 mode)")
    return [Finding("locale-not-utf8", "warn", "the default locale is not UTF-8: " + what,
                    "ENV LANG C.UTF-8", evidence=evidence, data={"variable": name, "value": value})]


# -- pending security updates (security-upgrade's planner) ---------------------------

_HOW_TO_CHECK = ("in the image as root: pyimgtools security-upgrade --check (refreshes the lists; "
                 "exit 100 when updates are pending)")


def apt_cache_readonly(ctx, args):
    """stdout of the apt-cache this audit runs under, reading the image's apt state.

    Inside the image (--root /) that is the image's own apt-cache; from outside
    it is the host's apt-cache with Dir= pointed at the root (nothing of the
    image is executed). The binary caches are disabled so that apt writes
    nothing (Dir::Cache::pkgcache "").
    """
    import subprocess
    argv = ["apt-cache", "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]
    if not ctx.root.is_host:
        argv += ["-o", "Dir=" + ctx.root.path + "/"]
    env = dict(os.environ, LC_ALL="C", LANGUAGE="")
    proc = subprocess.run(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("apt-cache %s exited %d: %s" % (args[0], proc.returncode,
                                                          err[-1] if err else ""))
    return proc.stdout.decode("utf-8", "replace")


def _unknown(why, evidence=()):
    return [Finding("security-updates-unknown", "info",
                    "pending security updates unknown: " + why,
                    _HOW_TO_CHECK, evidence=list(evidence))]


def _lists_age(ctx):
    newest = 0
    # only the lists' age for a message: what cannot be read is not recorded (walk=None)
    for path, _ in _files_in(ctx, "/var/lib/apt/lists", lambda n: n.endswith("Release"),
                             walk=None):
        try:
            newest = max(newest, os.lstat(ctx.root.host(path)).st_mtime)
        except OSError:
            pass
    if not newest:
        return None
    import time
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(newest))


@check("security-updates", "security-updates", "security-updates-unknown", background=True)
def check_security_updates(ctx):
    from pyimgtools import apt, security
    from pyimgtools.errors import PyimgtoolsError
    if ctx.dpkg is None:
        raise Skip("no dpkg database (/var/lib/dpkg/status)")
    try:
        distro = security.detect(ctx.root)
    except PyimgtoolsError as exc:
        raise Skip(str(exc))
    if not apt.lists_present(ctx.root):
        return _unknown("no apt lists in the image (as a finished image should be)")
    sources = [s for s in apt.read_sources(ctx.root) if security.is_security_source(s, distro)]
    if not sources:
        return _unknown("no %s security source is configured (security-upgrade adds one "
                        "for its run)" % distro.codename)
    try:
        files, pending, held = security.plan_updates(
            installed=security.read_status(ctx.root), native_arch=ctx.dpkg.native_arch(),
            apt_cache=lambda query: apt_cache_readonly(ctx, query), parallel=1)
    except (OSError, RuntimeError) as exc:
        return _unknown("apt-cache could not be asked (%s)" % exc)
    if not any(security.is_security_file(f.release) for f in files.values()):
        return _unknown("the apt lists hold no %s security index (apt-get update with the "
                        "security source never ran)" % distro.codename)
    if not pending:
        return []
    age = _lists_age(ctx)
    evidence = ["%s %s -> %s (%s)" % (u.package, u.installed, u.candidate, u.suite) for u in pending]
    evidence += ["held, not counted: %s %s -> %s" % (u.package, u.installed, u.candidate) for u in held]
    if age:
        evidence.append("according to the apt lists in the image, from %s" % age)
    return [Finding(
        "security-updates", "error",
        "%s pending for %s" % (format_count(len(pending), "security update"), distro.pretty_name),
        "pyimgtools security-upgrade (in the image's last RUN step that touches packages)",
        evidence=evidence,
        data={"pending": [{"package": u.package, "installed": u.installed, "candidate": u.candidate,
                           "suite": u.suite} for u in pending],
              "held": [u.package for u in held], "lists_date": age})]


# -- unresolvable libraries (keep's planner) -----------------------------------------

class _NoPackages:
    """Stands in for dpkg.Database in an image without dpkg (keep maps owners)."""

    def owners(self, paths):
        from pyimgtools.dpkg import OwnerIndex
        return OwnerIndex(owners={os.fsdecode(p): [] for p in paths})

    def manual_packages(self):
        return set()


def library_scan_paths(ctx):
    """Where audit looks for ELF files: /usr/local, /opt and every Python
    installation that is not the distribution's (what dpkg does not vouch for)."""
    paths = ["/usr/local", "/opt"]
    for inst in ctx.pythons:
        if not inst.debian and not any(inst.prefix == p or inst.prefix.startswith(p + "/")
                                       for p in paths):
            paths.append(inst.prefix)
    return [p for p in paths if ctx.root.isdir(p)]


@check("unresolved-libs", "unresolved-libs", "not-checked")
def check_unresolved_libs(ctx):
    from pyimgtools import keep
    paths = library_scan_paths(ctx)
    if not paths:
        return []
    db = ctx.dpkg if ctx.dpkg is not None else _NoPackages()
    # As the image is: a stale ld.so.cache fails at run time (keep would run ldconfig).
    plan = keep.plan(ctx.root, paths, db=db, run_ldconfig=False)
    return _not_checked(plan, paths) + _unresolved(plan, paths)


def _not_checked(plan, paths):
    """What the library scan could not read: it may hold ELF files that cannot load."""
    if not plan.unreadable:
        return []
    return [Finding(
        "not-checked", "error",
        "%s under %s could not be read: the ELF files there were not checked"
        % (format_count(len(plan.unreadable), "path"), ", ".join(paths)),
        "run audit with the rights to read them (root with CAP_DAC_READ_SEARCH), or fix "
        "their permissions",
        evidence=list(plan.unreadable),
        paths=[u.rsplit(": cannot ", 1)[0] for u in plan.unreadable],
        data={"unreadable": plan.unreadable, "scanned_paths": paths})]


def _unresolved(plan, paths):
    from pyimgtools import keep
    if not plan.missing:
        return []
    by_needer = {}
    for m in plan.missing:
        by_needer.setdefault(m.needer, []).append(m.name)
    names = sorted({m.name for m in plan.missing})
    evidence = ["%s needs %s: not found" % (display_path(n), ", ".join(display_path(x) for x in sorted(v)))
                for n, v in sorted(by_needer.items())]
    evidence.append("searched like ld.so (RPATH/RUNPATH, ld.so.cache, default directories) from "
                    "the ELF files under %s (%s scanned)" % (", ".join(paths),
                                                            format_count(plan.scanned, "ELF file")))
    notice = keep.ldconfig_notice(plan)
    if notice:
        evidence.append(notice + ": run ldconfig")
    return [Finding(
        "unresolved-libs", "error",
        "%s cannot load: %s not found" % (format_count(len(by_needer), "ELF file"), _more(names, 4)),
        "install the package that ships %s (apt-file search), or run pyimgtools keep (build-deps "
        "purge --keep-runtime) before purging build dependencies" % names[0],
        evidence=evidence, paths=sorted(by_needer),
        data={"missing": [{"needer": m.needer, "library": m.name, "load_trees": m.roots}
                          for m in plan.missing], "scanned_paths": paths,
              "elf_files": plan.scanned})]


# -- dead weight (prune's planner) ------------------------------------------------------

def _dead_weight_rules():
    from pyimgtools import prune
    # What is waste in a finished image: tests, every static library, docs. Not
    # bytecode (that is what the image should have) and not the caches (their
    # own finding ids above).
    return prune.Rules(tests=True, bytecode=False, static_libs=True, docs=True, caches=False,
                       tk=False)


@check("dead-weight")
def check_dead_weight(ctx):
    from pyimgtools import prune
    from pyimgtools.mounts import MountTable
    paths = library_scan_paths(ctx)
    if not paths:
        return []
    plan = prune.make_plan(ctx.root, paths, _dead_weight_rules(), MountTable.load())
    files, dirs, total, by_rule, hard = plan.totals()
    if not plan.removals:
        return []
    removed_dirs = set(id(r.node) for r in plan.removals if r.kind == "d")
    tops = [r for r in plan.removals if id(r.parent) not in removed_dirs]
    tops.sort(key=lambda r: r.path())
    evidence = ["%s: %s, %s, %s" % (rule, format_count(c["files"], "file"),
                                    format_count(c["dirs"], "directory", "directories"),
                                    format_bytes(c["bytes"]))
                for rule, c in sorted(by_rule.items())]
    if hard["files"]:
        evidence.append("hard links counted once: %s; %s stay linked elsewhere (not freed)"
                        % (format_count(hard["files"], "file"), format_bytes(hard["bytes_not_freed"])))
    for k in plan.kept:
        evidence.append("kept, imported at run time: %s (%s line %d imports %s)" % (
            display_path(k.path), display_path(k.importer), k.lineno, k.imported))
    evidence.extend("%s%s (%s)" % (display_path(r.path()), "/" if r.kind == "d" else "", r.rule)
                    for r in tops)
    rules = sorted(by_rule)
    flags = " ".join(f for f, rule in (("--static-libs", "static-libs"), ("--docs", "docs"))
                     if rule in rules)
    if "tests" not in rules:
        flags = ("--no-tests " + flags).strip()
    return [Finding(
        "dead-weight", "warn",
        "%s: %s in %s under %s" % (", ".join(rules), format_count(files, "file"),
                                   format_count(dirs, "directory", "directories"), _more(paths, 3)),
        "pyimgtools prune --keep-bytecode %s%s (in the RUN step that installed them)"
        % (flags + " " if flags else "", " ".join(sorted(t.image for t in plan.trees)[:3])
           + (" …" if len(plan.trees) > 3 else "")),
        evidence=evidence, paths=[r.path() for r in tops], bytes=total, reclaimable=True,
        data={"by_rule": by_rule, "hard_links": hard, "files": files, "dirs": dirs,
              "kept": [k.path for k in plan.kept]})]
