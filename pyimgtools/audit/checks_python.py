"""Audit checks about the Python installations: two Pythons in one image."""

import re

from pyimgtools.audit.context import more
from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import check
from pyimgtools.report import format_bytes, format_count


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
    """More than one Python installation (e.g. Debian's python3 pulled in beside
    /usr/local's), with the packages that pulled Debian's in."""
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
            evidence.append("Debian's Python pulled in by: %s" % more(by, 8))
        evidence.append("Debian Python packages installed: %s (%s)"
                        % (format_count(len(python_pkgs), "package"), format_bytes(nbytes)))
        data["pulled_in_by"] = by
        data["debian_python_packages"] = python_pkgs
    title = "%s: %s" % (format_count(len(installs), "Python installation"),
                        more(sorted({i.prefix for i in installs}), 4))
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
