"""The reference keep is compared with: ldd's resolved paths and dpkg-query --search's owners.

Nothing here uses pyimgtools. `ldd` is run only on trusted files (the
machine's own, or a test rootfs's). Owners come from `dpkg-query --search`
on both usrmerge spellings of each library. Its output lists, per matching
path, the packages whose lists name exactly that path, after the
`diversion by PKG from: / to:` lines of a diverted path; dpkg's rule for a
diversion is applied to it: a package's file at a diverted path is at the
diverted-to path instead, unless the package is the diverting one (trixie's
libreadline8t64 diverts the /lib spelling of its library to
`*.usr-is-merged` and lists the /usr/lib one).
"""

import os
import re

_ALIASES = (("/usr/lib/", "/lib/"), ("/usr/lib64/", "/lib64/"), ("/usr/bin/", "/bin/"),
            ("/usr/sbin/", "/sbin/"))


def spellings(path):
    """The path and its usrmerge alias."""
    out = [path]
    for merged, old in _ALIASES:
        if path.startswith(merged):
            out.append(old + path[len(merged):])
        elif path.startswith(old):
            out.append(merged + path[len(old):])
    return out


def elf_files(tree, root_path=""):
    """Regular files (not symlinks) under host directory `tree` that start with the
    ELF magic, sorted; with `root_path`, as paths inside that root."""
    found = []
    for dirpath, _dirs, names in os.walk(tree):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        found.append(path)
            except OSError:
                pass
    if root_path:
        found = ["/" + os.path.relpath(p, root_path) for p in found]
    return sorted(found)


def outside_link_targets(root, tops):
    """Targets (resolved inside the chroot) of symlinks under tops to ELF files
    outside them, e.g. /usr/bin/pidof -> /sbin/killall5: keep keeps those."""
    out = root.run(["sh", "-c", 'find "$@" -type l -exec readlink -f {} +', "links"]
                   + list(tops)).stdout
    found = set()
    for target in out.splitlines():
        if any(target.startswith(t + "/") for t in tops) or not os.path.isfile(root.host(target)):
            continue
        with open(root.host(target), "rb") as f:
            if f.read(4) == b"\x7fELF":
                found.add(target)
    return sorted(found)


def parse_ldd(text):
    """(resolved paths, missing names) of one `ldd FILE` output."""
    resolved, missing = set(), set()
    for line in text.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            rest = rest.strip()
            if rest.startswith("not found"):
                missing.add(name.strip())
            elif rest.startswith("/"):
                resolved.add(rest.rsplit(" (", 1)[0])
        elif line.startswith("/"):
            resolved.add(line.rsplit(" (", 1)[0])
    return resolved, missing


_DIVERSION_LINE = re.compile(r"^(?:diversion by (\S+)|local diversion) (from|to): (/.*)$")


def parse_dpkg_search(text):
    """({path: set of listing packages}, {diverted path: (diverting package or None, to)})."""
    listers, diverted = {}, {}
    pending = {}
    for line in text.splitlines():
        m = _DIVERSION_LINE.match(line)
        if m:
            by, which, path = m.groups()
            if which == "from":
                pending[by] = path
            elif by in pending:
                diverted[pending.pop(by)] = (by, path)
            continue
        pkgs, sep, path = line.partition(": /")
        if sep:
            listers.setdefault("/" + path, set()).update(p.strip() for p in pkgs.split(","))
    return listers, diverted


def owners(paths, search):
    """{path: set of packages} for in-image paths (libraries), as dpkg resolves them.

    search(argv_tail) runs `dpkg-query --search ARGS` where the database is and
    returns its stdout (a missing path only makes it exit 1).
    """
    def query(asked):
        listers, diverted = {}, {}
        for i in range(0, len(asked), 400):
            got_l, got_d = parse_dpkg_search(search(asked[i:i + 400]))
            for k, v in got_l.items():
                listers.setdefault(k, set()).update(v)
            diverted.update(got_d)
        return listers, diverted

    listers, diverted = query(sorted({s for p in paths for s in spellings(p)}))
    # A file at a diverted-to path is the file the other packages list under the
    # original path: ask for those lists too.
    came_from = {to: (orig, by) for orig, (by, to) in diverted.items()}
    originals = sorted({o for o, _by in came_from.values()} - set(listers))
    if originals:
        listers.update(query(originals)[0])
    result = {}
    for p in paths:
        found = set()
        for s in spellings(p):
            by = diverted[s][0] if s in diverted else False
            found.update(pkg for pkg in listers.get(s, ())
                         if by is False or (by is not None and pkg.split(":")[0] == by))
            if s in came_from:
                orig, by = came_from[s]
                found.update(pkg for pkg in listers.get(orig, ())
                             if by is None or pkg.split(":")[0] != by)
        result[p] = found
    return result


def chroot_owners(root, paths):
    """owners() with dpkg-query run inside a tests.harness.rootfs.Chroot."""
    return owners(paths, lambda args: root.run(["dpkg-query", "--search"] + args,
                                               check=False).stdout)
