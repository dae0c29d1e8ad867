"""pyimgtools.dpkg against dpkg-query and apt-mark on this machine's database."""

import os
import subprocess

from pyimgtools.dpkg import Database
from pyimgtools.fs import Root
from tests.harness.dpkgquery import host_search, parse_search
from tests.harness.prereq import require_tools


def db():
    require_tools("dpkg-query", "apt-mark")
    return Database(Root("/"))


def test_installed_packages_match_dpkg_query():
    d = db()
    out = subprocess.run(["dpkg-query", "-W", "-f",
                          "${binary:Package}\t${Version}\t${Installed-Size}\t${db:Status-Status}\n"],
                         capture_output=True, text=True, check=True).stdout
    expected = {}
    for line in out.splitlines():
        name, version, size, status = line.split("\t")
        if status == "installed":
            expected[name] = (version, int(size) if size else None)
    native = d.native_arch()
    got = {}
    for p in d.installed().values():
        # binary:Package shows :arch for Multi-Arch: same only
        got[p.apt_name] = (p.version, p.installed_size)
    assert got == expected
    assert native == subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                    text=True, check=True).stdout.strip()


def test_manual_set_matches_apt_mark_showmanual():
    d = db()
    shown = subprocess.run(["apt-mark", "showmanual"], capture_output=True, text=True,
                           check=True).stdout.split()
    native = ":" + d.native_arch()
    # apt-mark prints native packages without :arch
    got = {n[:-len(native)] if n.endswith(native) else n for n in d.manual_packages()}
    assert got == set(shown)


def _every_nth(paths, n):
    return [p for i, p in enumerate(sorted(paths)) if i % n == 0]


def test_owners_match_dpkg_query_search_on_both_spellings():
    d = db()
    lib = "/usr/lib/x86_64-linux-gnu"
    names = [n for n in os.listdir(lib) if ".so" in n]
    sample = _every_nth(names, max(1, len(names) // 300))
    asked = []
    for n in sample:
        asked += [lib + "/" + n, "/lib/x86_64-linux-gnu/" + n]
    # both spellings of the loader: bookworm's libc6 lists /lib64/..., sid's /usr/lib64/...
    asked += ["/usr/bin/pg_config", "/bin/ls", "/usr/bin/ls", "/lib64/ld-linux-x86-64.so.2",
              "/usr/lib64/ld-linux-x86-64.so.2"]
    got = d.owners(asked).owners
    by_path, _diverted = parse_search(host_search(asked))
    for path in asked:
        alias = (path.replace("/usr/lib/", "/lib/", 1) if path.startswith("/usr/lib/")
                 else path.replace("/lib/", "/usr/lib/", 1) if path.startswith("/lib/")
                 else path.replace("/usr/bin/", "/bin/", 1) if path.startswith("/usr/bin/")
                 else path.replace("/bin/", "/usr/bin/", 1) if path.startswith("/bin/")
                 else path.replace("/usr/lib64/", "/lib64/", 1) if path.startswith("/usr/lib64/")
                 else path.replace("/lib64/", "/usr/lib64/", 1))
        expected = by_path.get(path, set()) | by_path.get(alias, set())
        if path == "/usr/bin/pg_config" and os.path.exists("/usr/bin/pg_config.libpq-dev"):
            # dpkg-query lists every package whose list holds the path; the file
            # there is the diverting package's
            expected = {"postgresql-common"}
        assert set(got[path]) == expected, path
