"""The reference keep is compared with: ldd's resolved paths and dpkg-query --search's owners.

Nothing here uses pyimgtools. ldd's output is parsed by tests/harness/ldd.py,
dpkg-query's by tests/harness/dpkgquery.py, ELF files found by
tests/harness/elfwalk.py. `ldd` is run only on trusted files (the
machine's own, or a test rootfs's). Owners come from `dpkg-query --search`
on both usrmerge spellings of each library. Its output lists, per matching
path, the packages whose lists name exactly that path, after the
`diversion by PKG from: / to:` lines of a diverted path; dpkg's rule for a
diversion is applied to it: a package's file at a diverted path is at the
diverted-to path instead, unless the package is the diverting one (trixie's
libreadline8t64 diverts the /lib spelling of its library to
`*.usr-is-merged` and lists the /usr/lib one).
"""

from tests.harness.dpkgquery import host_search, parse_search
from tests.harness.elfwalk import is_elf_file

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


def outside_link_targets(root, tops):
    """Targets (resolved inside the chroot) of symlinks under tops to ELF files
    outside them, e.g. /usr/bin/pidof -> /sbin/killall5: keep keeps those."""
    out = root.run(["sh", "-c", 'find "$@" -type l -exec readlink -f {} +', "links"]
                   + list(tops)).stdout
    found = set()
    for target in out.splitlines():
        if any(target.startswith(t + "/") for t in tops):
            continue
        if is_elf_file(root.host(target)):
            found.add(target)
    return sorted(found)


def owners(paths, search):
    """{path: set of packages} for in-image paths (libraries), as dpkg resolves them.

    search(argv_tail) runs `dpkg-query --search ARGS` where the database is and
    returns its stdout (a missing path only makes it exit 1).
    """
    def query(asked):
        listers, diverted = {}, {}
        for i in range(0, len(asked), 400):
            got_l, got_d = parse_search(search(asked[i:i + 400]))
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


def host_owners(paths):
    """owners() with dpkg-query run on this machine's database."""
    return owners(paths, host_search)
