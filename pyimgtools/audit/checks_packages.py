"""Audit checks about packages: package-manager leftovers (apt lists, .debs,
pip/uv caches), build tools left installed, broken metadata and dangling symlinks."""

import errno
import fnmatch
import os
import re
import stat

from pyimgtools.audit.context import DEBIAN_DIST_PACKAGES, VIRTUAL, files_in, more, size_of
from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import Skip, check
from pyimgtools.report import display_path, format_bytes, format_count


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
    """apt's lists, .debs and pkgcache (apt.LEFTOVERS: the same definition
    security-upgrade and prune use) and pip/uv caches left in the image."""
    from pyimgtools import apt
    findings = []
    left = {}
    for leftover in apt.LEFTOVERS:
        left.setdefault(leftover.kind, []).extend(files_in(
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
        sized = [(d,) + size_of(ctx, d, walk="leftovers") for d in dirs]
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
    """Compilers, -dev packages and build systems left installed (is_build_tool),
    with their installed size and whether they are marked manual."""
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
        "build tools left installed: %s" % more(names, 6),
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
        if resolved.split("/")[1] in VIRTUAL:
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


@check("broken-metadata", "broken-dist-info", "dangling-symlinks", "not-checked")
def check_broken_metadata(ctx):
    """.dist-info directories without METADATA or RECORD, and symlinks whose
    target is missing (outside dpkg's path-exclude filters)."""
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
