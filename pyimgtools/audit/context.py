"""What several audit checks share, computed once per audit: the Python
installations, one walk of the whole tree (symlinks and `.dist-info`
directories), dpkg's database, and the helpers they read the tree with.
Everything is read inside the root; nothing is executed or written.
"""

import errno
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import Optional, Tuple

from pyimgtools.audit.layers import DEFAULT_MAX_WASTE, DEFAULT_MIN_EFFICIENCY
from pyimgtools.audit.model import Finding
from pyimgtools.report import display_path, format_count


# Parts of the tree that hold no image content: run-time mounts and scratch.
_SKIP_TOP = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp")


# A symlink into these is resolved at run time (e.g. /etc/mtab -> ../proc/self/mounts).
VIRTUAL = ("proc", "sys", "dev", "run")


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
    """What the checks of one audit share, each computed once on first use: the
    root, the image's environment, the Python installations, one walk of the tree,
    dpkg's database and its installed packages."""

    def __init__(self, root, env=None, env_source="", warn=None, max_waste=None,
                 min_efficiency=None, user=None, workdir=None):
        self.root = root
        self.env = env
        self.env_source = env_source
        # the layer checks' thresholds (audit IMAGE only)
        self.max_waste = DEFAULT_MAX_WASTE if max_waste is None else max_waste
        self.min_efficiency = (DEFAULT_MIN_EFFICIENCY if min_efficiency is None
                               else min_efficiency)
        # the image config's User and WorkingDir (audit IMAGE), else None: no
        # check depends on them yet; they are in the report's results.image
        self.user = user
        self.workdir = workdir
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


PY_DIR = re.compile(r"\Apython(\d+)\.(\d+)\Z")


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
            m = PY_DIR.match(name)
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


def size_of(ctx, path, seen=None, walk="sizes"):
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


def more(items, n, fmt=str):
    shown = ", ".join(fmt(i) for i in items[:n])
    if len(items) > n:
        shown += " and %d more" % (len(items) - n)
    return shown


# -- package-manager leftovers ----------------------------------------------------

def files_in(ctx, directory, predicate, recursive=False, walk="leftovers"):
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


DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def library_scan_paths(ctx):
    """Where audit looks for ELF files: /usr/local, /opt and every Python
    installation that is not the distribution's (what dpkg does not vouch for)."""
    paths = ["/usr/local", "/opt"]
    for inst in ctx.pythons:
        if not inst.debian and not any(inst.prefix == p or inst.prefix.startswith(p + "/")
                                       for p in paths):
            paths.append(inst.prefix)
    return [p for p in paths if ctx.root.isdir(p)]
