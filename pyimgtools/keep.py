"""keep: mark the Debian packages that the ELF files under PATHs load.

Replaces the `find -executable -exec ldd | awk | dpkg-query --search |
apt-mark manual` pipeline of the official images, without running anything:

1. **scan** every regular file under the paths that starts with the ELF
   magic, executable bit or not (symlinks to files outside the paths are
   scanned once, as their target, and their target is kept);
2. **resolve** each file's load tree the way glibc's ld.so does
   (`pyimgtools.loader.Loader`);
3. **map** every library found outside the scanned paths to the package
   that owns it (`pyimgtools.dpkg.Database`, usrmerge- and diversion-aware);
4. **apply**: `ldconfig` when the cache is stale (see below), then one
   `apt-mark manual` with the packages not already manual.

A stale `ld.so.cache` (libraries in the directories of ld.so.conf that it
lacks, as after `make install` into /usr/local/lib without `ldconfig`) is
not fatal: the plan says so in one line and resolves as if `ldconfig` had
run (`ldcache.uncached_libraries`, `Loader(after_ldconfig=True)`), and apply
runs it (`ldconfig -r ROOT` with --root), as upstream's recipe does.

A DT_NEEDED that resolves nowhere is an error (exit 1) unless
`--allow-missing`: the image would fail at run time. A need that fails only
when a library is loaded on its own, but resolves in every load tree that
loads it (auditwheel's `*.libs` directories rely on this), is not an error.
"""

import fnmatch
import os
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pyimgtools import commandnames
from pyimgtools.elf import ELF_MAGIC
from pyimgtools.errors import EXIT_FAILED, PyimgtoolsError
from pyimgtools.fs import Canonical
from pyimgtools.report import display_path, envelope, format_count

NAME = commandnames.KEEP
DEFAULT_PATHS = ("/usr/local",)

# File names that are never opened by the scan (unless --scan-all): Python
# source, bytecode and stubs, and text/data formats. Neither ld.so (which
# loads sonames) nor CPython's importer (extension modules end in .so) loads
# such a file as an ELF object, and in a Python tree they are nine files in
# ten: not opening them is what makes the scan fast. For the same reason
# `__pycache__` directories (CPython writes only .pyc files there and loads
# nothing else from them) are not walked.
SKIP_SUFFIXES = frozenset((
    ".py", ".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi",
    ".txt", ".rst", ".md", ".html", ".htm", ".css", ".js", ".json", ".toml",
    ".cfg", ".ini", ".yaml", ".yml", ".xml", ".csv", ".h", ".hpp", ".c", ".cpp",
    ".f90", ".f", ".typed", ".decTest", ".svg", ".png", ".gif", ".jpg", ".ico",
    ".wav", ".aiff", ".au", ".mat", ".sav", ".npy", ".npz", ".gz", ".bz2",
    ".xz", ".zip", ".tar", ".pem", ".mo", ".po", ".tcl", ".tm", ".msg", ".enc",
))


@dataclass
class Edge:
    """One DT_NEEDED (or PT_INTERP) of one object in one load tree."""
    root: str                 # the scanned ELF file whose load tree this is
    needer: str               # the object that needs it (in-image path)
    name: str                 # DT_NEEDED name (or PT_INTERP path)
    path: Optional[str]       # where it resolved (in-image path); None = not found


@dataclass
class PackageReason:
    name: str                           # apt name (pkg:arch for Multi-Arch: same)
    manual: bool                        # already manual before this run
    libraries: List[str] = field(default_factory=list)
    needed_by: List[str] = field(default_factory=list)   # objects with the DT_NEEDED


@dataclass
class Missing:
    needer: str
    name: str
    roots: List[str]          # scanned files whose load tree fails


@dataclass
class KeepPlan:
    """What keep found under its paths: the packages their ELF files need, with
    why, and what could not be resolved or read."""
    paths: List[str]
    method: str
    scanned: int = 0                  # ELF files whose load tree was resolved
    files_seen: int = 0               # regular files under the paths
    packages: List[PackageReason] = field(default_factory=list)
    unowned: Dict[str, List[str]] = field(default_factory=dict)   # library -> needed_by
    missing: List[Missing] = field(default_factory=list)
    resolved_in_context: List[Missing] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    # Directories that could not be listed and files that could not be read:
    # what they need is unknown, so the plan is incomplete ("path: reason").
    unreadable: List[str] = field(default_factory=list)
    # A stale ld.so.cache: the libraries of the ld.so.conf directories it
    # lacks, and the ldconfig command that apply runs first. The plan is
    # resolved as if that command had run (dry run and real run alike).
    uncached: List[str] = field(default_factory=list)
    ldconfig: List[str] = field(default_factory=list)

    @property
    def package_names(self):
        return [p.name for p in self.packages]

    @property
    def to_mark(self):
        return [p.name for p in self.packages if not p.manual]


# -- scan ---------------------------------------------------------------------

@dataclass
class ScanResult:
    tops: List[str]
    files: List[str]
    outside: Dict[str, str]
    files_seen: int
    unreadable: List[str] = field(default_factory=list)   # "path: reason", not scanned


def _excluded(path, excludes):
    if not excludes:
        return False
    base = path.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(base, g) or fnmatch.fnmatchcase(path, g) for g in excludes)


def _is_elf(host_path):
    try:
        fd = os.open(host_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        return os.read(fd, 4) == ELF_MAGIC
    except OSError:
        return None
    finally:
        os.close(fd)


def _within(path, tops):
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in tops)


def scan(root, paths, excludes=(), scan_all=False, warnings=None, unreadable=None):
    """ELF files under `paths` (in-image), and symlink targets outside them.

    `tops` are the canonical scan paths, `files` the in-image paths of the
    ELF files found (symlinks to files inside the paths are skipped: their
    targets are scanned anyway), `outside` maps the canonical target of a
    symlink that points out of the paths to the symlink's path.
    """
    warnings = [] if warnings is None else warnings
    unreadable = [] if unreadable is None else unreadable
    tops = [_scan_top(root, p) for p in paths]
    files = []
    links = []
    seen = 0
    # Other file systems below the paths (/proc in a whole-root scan, bind
    # mounts) are not walked: the mount table says where they are.
    from pyimgtools.mounts import MountTable
    table = MountTable.load()
    skip = frozenset() if scan_all else SKIP_SUFFIXES
    for top in tops:
        host_top = root.host(top)
        if not os.path.isdir(host_top):
            if os.path.isfile(host_top):
                seen += 1
                ok = None if _excluded(top, excludes) else _is_elf(host_top)
                if ok:
                    files.append(top)
                elif ok is None and not _excluded(top, excludes):
                    unreadable.append("%s: cannot read" % display_path(top))
            continue
        mounts = {os.fsdecode(m) for m in table.under(host_top)}
        seen += _scan_tree(host_top, top, mounts, skip, excludes, scan_all,
                           files, links, warnings, unreadable)
    outside = _outside_targets(root, links, tops, excludes, warnings)
    files.sort()
    return ScanResult(tops, files, outside, seen, unreadable)


def _scan_top(root, path):
    """A scan PATH as its canonical in-image path; a one-line error when it is not there."""
    p = os.fsdecode(path)
    if not p.startswith("/"):
        p = "/" + p if not root.is_host else os.path.abspath(p)
    try:
        real = root.realpath(p)
    except OSError as exc:
        raise PyimgtoolsError("%s: %s" % (display_path(p), exc.strerror or exc)) from None
    if not os.path.lexists(root.host(real)):
        raise PyimgtoolsError("%s: no such file or directory%s" % (
            display_path(p), "" if root.is_host else " in %s" % root.path))
    return real


def _scan_tree(host_top, top, mounts, skip, excludes, scan_all, files, links, warnings,
               unreadable):
    """Walk one directory: ELF files to `files`, symlinks to `links`; the number of files seen."""
    seen = 0
    stack = [(host_top, top)]
    while stack:
        host_dir, img_dir = stack.pop()
        try:
            with os.scandir(host_dir) as it:
                entries = list(it)
        except OSError as exc:
            unreadable.append("%s: cannot list: %s" % (display_path(img_dir),
                                                       exc.strerror or exc))
            continue
        prefix = img_dir.rstrip("/") + "/"
        for e in entries:
            name = e.name
            try:
                if e.is_dir(follow_symlinks=False):     # d_type: no syscall
                    if name == "__pycache__" and not scan_all:
                        continue      # CPython's bytecode cache: .pyc files only
                    if mounts and e.path in mounts:
                        warnings.append("%s: another file system, not scanned"
                                        % display_path(prefix + name))
                        continue
                    stack.append((e.path, prefix + name))
                    continue
                if name[name.rfind("."):] in skip:
                    seen += 1
                    continue
                if e.is_symlink():
                    links.append(prefix + name)
                    continue
                if not e.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            seen += 1
            img = prefix + name
            if excludes and _excluded(img, excludes):
                continue
            ok = _is_elf(e.path)
            if ok is None:
                unreadable.append("%s: cannot read" % display_path(img))
            elif ok:
                files.append(img)
    return seen


def _outside_targets(root, links, tops, excludes, warnings):
    """{canonical target: link} for the links that point to an ELF file outside `tops`."""
    outside = {}
    for link in links:
        if _excluded(link, excludes):
            continue
        try:
            target = root.realpath(link)
        except OSError as exc:
            warnings.append("%s: %s" % (display_path(link), exc.strerror or exc))
            continue
        if _within(target, tops) or target in outside:
            continue
        host = root.host(target)
        if os.path.isfile(host) and _is_elf(host):
            outside[target] = link
    return outside


# -- resolve ------------------------------------------------------------------

def stale_cache(root):
    """(uncached libraries, ldconfig argv) when ld.so.cache lacks libraries ldconfig would add."""
    from pyimgtools import ldcache
    try:
        cache = ldcache.read_cache(root)
    except (ldcache.CacheError, OSError):
        cache = None          # unreadable: ldconfig rewrites it as well
    uncached = ldcache.uncached_libraries(root, cache)
    return (uncached, ldcache.ldconfig_argv(root)) if uncached else ([], [])


def _elf_edges(root, files, ld_library_path, warnings, after_ldconfig=False):
    from pyimgtools.elf import ElfError
    from pyimgtools.loader import Loader
    loader = Loader(root, ld_library_path=ld_library_path, after_ldconfig=after_ldconfig)
    edges = []
    resolved = 0
    for f in files:
        try:
            tree = loader.load_tree(f)
        except (ElfError, OSError, ValueError) as exc:
            warnings.append("%s: %s" % (display_path(f), exc))
            continue
        resolved += 1
        for w in tree.warnings:
            warnings.append(w)
        for dep in tree.dependencies:
            edges.append(Edge(f, dep.needer, dep.name, dep.path))
            # hwcaps variants other CPUs load instead: kept as well.
            for alt in getattr(dep, "alternatives", ()) or ():
                edges.append(Edge(f, dep.needer, dep.name, alt))
    return edges, resolved


def _parse_ldd(root_file, text):
    edges = []
    for line in text.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            rest = rest.strip()
            name = name.strip()
            if rest.startswith("not found"):
                edges.append(Edge(root_file, root_file, name, None))
            elif rest.startswith("/"):
                edges.append(Edge(root_file, root_file, name, rest.rsplit(" (", 1)[0]))
        elif line.startswith("/"):
            path = line.rsplit(" (", 1)[0]
            edges.append(Edge(root_file, root_file, path, path))
    return edges


def _ldd_edges(root, files, warnings):
    """The comparison method: runs ldd, i.e. the programs' interpreters."""
    if not root.is_host:
        raise PyimgtoolsError("--method ldd cannot analyse --root %s (ldd runs the host's loader)"
                              % root.path)
    edges = []
    resolved = 0
    for f in files:
        proc = subprocess.run(["ldd", f], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
        out = proc.stdout.decode("utf-8", "surrogateescape")
        if proc.returncode != 0 and "=>" not in out:
            continue          # "not a dynamic executable" and the like
        resolved += 1
        edges.extend(_parse_ldd(f, out))
    return edges, resolved


# -- plan ---------------------------------------------------------------------

def plan(root, paths=DEFAULT_PATHS, excludes=(), ld_library_path=None, method="elf",
         scan_all=False, db=None, manual_flags=True, run_ldconfig=True):
    """Everything `keep` would do, computed without changing anything.

    manual_flags=False skips reading which packages are manual already
    (`--print` does not need it); every PackageReason.manual is then False.
    run_ldconfig=False (audit: the image as it is) resolves with the cache as
    it is; `uncached` still lists what a stale cache lacks, `ldconfig` is empty.
    """
    from pyimgtools.dpkg import Database
    warnings = []
    found = scan(root, paths, excludes, scan_all=scan_all, warnings=warnings)
    tops, files, outside = found.tops, found.files, found.outside
    result = KeepPlan(paths=list(tops), method=method, warnings=warnings,
                      unreadable=found.unreadable)
    result.files_seen = found.files_seen
    roots = files + sorted(outside)
    if method == "ldd":
        edges, result.scanned = _ldd_edges(root, roots, warnings)
    else:
        result.uncached, result.ldconfig = stale_cache(root)
        if not run_ldconfig:
            result.ldconfig = []
        edges, result.scanned = _elf_edges(root, roots, ld_library_path, warnings,
                                           after_ldconfig=bool(result.ldconfig))

    # Canonical spellings: the loader reports paths as it opens them
    # ($ORIGIN/../../x.libs/...), one object may be reached by several.
    canon = Canonical(root)

    def real(path):
        return canon.try_file(path) or path     # a symlink loop: the path as it is

    for e in edges:
        e.needer = real(e.needer)

    _sort_missing(edges, result)
    needed_by = _needed_by(edges, outside, tops, real)
    db = db or Database(root)
    owners = _owners(root, db, needed_by)
    manual = db.manual_packages() if manual_flags else set()
    result.packages = _package_reasons(needed_by, owners, manual, result.unowned)
    return result


def _sort_missing(edges, result):
    """Missing needs: an error (result.missing) unless the need fails only in the
    needer's own load tree and resolves in another tree that loads the needer
    (result.resolved_in_context)."""
    resolved_pairs = set()
    failing = {}
    for e in edges:
        if e.path is None:
            failing.setdefault((e.needer, e.name), set()).add(e.root)
        else:
            resolved_pairs.add((e.needer, e.name))
    for (needer, name), in_roots in sorted(failing.items()):
        entry = Missing(needer, name, sorted(in_roots))
        if in_roots == {needer} and (needer, name) in resolved_pairs:
            result.resolved_in_context.append(entry)
        else:
            result.missing.append(entry)


def _needed_by(edges, outside, tops, real):
    """{library outside the scanned paths: the objects that need it}."""
    needed_by = {}
    for e in edges:
        if e.path is None or _within(real(e.path), tops):
            continue
        needed_by.setdefault(e.path, set()).add(e.needer)
    for target, link in outside.items():
        needed_by.setdefault(target, set()).add(link)
    return needed_by


def _owners(root, db, needed_by):
    """{library: [package]}; a library found under a name no package lists (a
    link made by ldconfig) gets its target's owner."""
    owners = db.owners(sorted(needed_by)).owners
    unlisted = [p for p, o in owners.items() if not o]
    if unlisted:
        real_of = {}
        for p in unlisted:
            try:
                real_of[p] = root.realpath(p)
            except OSError:
                pass
        by_real = db.owners(sorted(set(real_of.values()))).owners
        for p, r in real_of.items():
            owners[p] = by_real.get(r, [])
    return owners


def _package_reasons(needed_by, owners, manual, unowned):
    """[PackageReason] by package name; libraries no package owns go to `unowned`."""
    reasons = {}
    for lib in sorted(needed_by):
        names = owners.get(lib) or []
        if not names:
            unowned[lib] = sorted(needed_by[lib])
            continue
        for name in names:
            r = reasons.get(name)
            if r is None:
                r = reasons[name] = PackageReason(name, name in manual)
            r.libraries.append(lib)
            r.needed_by.extend(needed_by[lib])
    for r in reasons.values():
        r.needed_by = sorted(set(r.needed_by))
    return [reasons[n] for n in sorted(reasons)]


# -- apply --------------------------------------------------------------------

def apply_ldconfig(keep_plan, out=None):
    """Run the plan's ldconfig, if any (before anything is marked, as upstream's recipe does)."""
    if keep_plan.ldconfig:
        from pyimgtools import apt, ldcache
        apt.require_root("running ldconfig")
        if out is not None:
            out.line("%s: running %s" % (ldconfig_notice(keep_plan), ldconfig_text(keep_plan)))
        ldcache.run_ldconfig(keep_plan.ldconfig)


def ldconfig_notice(keep_plan):
    """One line saying the cache is stale, or None."""
    if not keep_plan.uncached:
        return None
    from pyimgtools import ldcache
    first, more = keep_plan.uncached[0], len(keep_plan.uncached) - 1
    return "%s lacks %s of the %s directories (%s%s)" % (
        ldcache.CACHE_PATH, format_count(len(keep_plan.uncached), "library", "libraries"),
        ldcache.CONF_PATH, display_path(first), " and %d more" % more if more else "")


def ldconfig_text(keep_plan):
    return " ".join(display_path(a) for a in keep_plan.ldconfig)


def report_plan(out, keep_plan, changes):
    """Warnings, the stale-cache line and unowned libraries, in every mode of keep and build-deps.

    `changes`: "dry-run", "run" or None (--print, --why: nothing is changed).
    A real run says it runs ldconfig when it does (apply_ldconfig).
    """
    for w in keep_plan.warnings:
        out.warn(w)
    notice = ldconfig_notice(keep_plan)
    if notice and changes == "dry-run":
        out.line("%s: would run %s" % (notice, ldconfig_text(keep_plan)))
    elif notice and changes is None:
        out.warn("%s: resolved as if %s had run; nothing run" % (notice, ldconfig_text(keep_plan)))
    for lib, users in sorted(keep_plan.unowned.items()):
        out.warn("%s (needed by %s) belongs to no package" % (
            display_path(lib), display_path(users[0]) + (" and %d more" % (len(users) - 1)
                                                         if len(users) > 1 else "")))


def apply(root, keep_plan, out=None):
    """ldconfig if the cache is stale, then apt-mark manual the packages not yet
    manual; returns the names marked."""
    apply_ldconfig(keep_plan, out)
    names = keep_plan.to_mark
    if names:
        from pyimgtools import apt
        apt.require_root("marking packages manual")
        apt.apt_mark("manual", names, root=None if root.is_host else root)
    return names


def check_unreadable(out, keep_plan, allow_unreadable):
    """What could not be read may need libraries nobody keeps: an error (exit 1)
    unless allow_unreadable, then each path is a warning."""
    if not keep_plan.unreadable:
        return
    for text in keep_plan.unreadable:
        if allow_unreadable:
            out.warn(text + " (not scanned)")
        else:
            print("pyimgtools: error: %s" % text, file=out.stderr)
    if not allow_unreadable:
        raise PyimgtoolsError("%s under %s cannot be read: the libraries they need are unknown "
                              "(run with the rights to read them, or --allow-unreadable to go on)"
                              % (format_count(len(keep_plan.unreadable), "path"),
                                 ", ".join(display_path(p) for p in keep_plan.paths)),
                              EXIT_FAILED)


def missing_text(m):
    """The line that reports a missing library (a warning or an error)."""
    return "%s: needed by %s: not found" % (display_path(m.name), display_path(m.needer))


def check_missing(out, keep_plan, allow_missing):
    """Report missing libraries; raises (exit 1) unless allow_missing."""
    if not keep_plan.missing:
        return
    for m in keep_plan.missing:
        text = missing_text(m)
        if allow_missing or out.json_mode:
            out.warn(text)
        else:
            print("pyimgtools: error: " + text, file=out.stderr)
    if not allow_missing:
        raise PyimgtoolsError("%s cannot be found: the image would fail at run time "
                              "(--allow-missing to go on)" % format_count(
                                  len(keep_plan.missing), "needed library", "needed libraries"),
                              EXIT_FAILED)


def plan_document(keep_plan):
    """The KeepPlan as JSON (keep's results; build-deps purge's `keep`)."""
    return {
        "paths": keep_plan.paths,
        "method": keep_plan.method,
        "files_seen": keep_plan.files_seen,
        "elf_files": keep_plan.scanned,
        "packages": keep_plan.packages,
        "to_mark": keep_plan.to_mark,
        "unowned": [{"library": k, "needed_by": v} for k, v in sorted(keep_plan.unowned.items())],
        "missing": keep_plan.missing,
        "resolved_in_context": keep_plan.resolved_in_context,
        "warnings": keep_plan.warnings,
        "unreadable": keep_plan.unreadable,
        "uncached": keep_plan.uncached,
        "ldconfig": keep_plan.ldconfig or None,
    }


def problems(keep_plan, allow_missing, allow_unreadable):
    """(failures, warnings) of the JSON envelope (report.envelope): unreadable
    paths and missing libraries are failures unless allowed, then warnings
    (the lines check_unreadable and check_missing print)."""
    failures, warnings = [], []
    for text in keep_plan.unreadable:
        if allow_unreadable:
            warnings.append(text + " (not scanned)")
        else:   # "PATH: cannot read" / "PATH: cannot list: REASON" (scan)
            path, _sep, error = text.rpartition(": cannot ")
            failures.append({"path": path, "error": "cannot " + error})
    for m in keep_plan.missing:
        if allow_missing:   # printed after the document in some modes: listed here
            warnings.append(missing_text(m))
        else:
            failures.append({"item": m.name, "error": "not found",
                             "message": "needed by %s" % display_path(m.needer)})
    return failures, warnings


def document(keep_plan, action, *, seconds, dry_run=False, marked=None, package=None,
             matches=None, allow_missing=False, allow_unreadable=False):
    """keep's --json document. action: "mark", "print" or "why" (package: the
    --why name, matches: its KeepPackages); marked: the names marked (None
    outside "mark"); allow_*: whether missing libraries and unreadable paths
    are warnings rather than failures."""
    failures, warnings = problems(keep_plan, allow_missing, allow_unreadable)
    counts = {"packages": len(keep_plan.packages if matches is None else matches),
              "elf_files": keep_plan.scanned}
    if action == "why":
        own = {"action": "why", "package": package, "paths": keep_plan.paths,
               "packages": matches, "missing": keep_plan.missing}
    else:
        own = dict(plan_document(keep_plan), action=action)
        del own["warnings"]     # the envelope's (every warning line keep printed)
    if marked is not None:
        own["marked"] = marked
        to_mark = len(keep_plan.to_mark)
        counts.update(marked=0 if failures else to_mark,   # a refused run marks nothing
                      already_manual=len(keep_plan.packages) - to_mark)
    # --print and --why change nothing: not a dry run
    return envelope(NAME, dry_run=bool(dry_run) and action == "mark", seconds=seconds,
                    counts=counts, results=own, warnings=warnings, failures=failures, **own)
