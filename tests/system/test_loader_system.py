"""pyimgtools.loader against `ldd` on this machine's ELF files (read-only).

For every regular ELF file under /usr/bin, /usr/lib/x86_64-linux-gnu and the
source-built CPython 3.11 tree (numpy/scipy wheels with their .libs
directories), each library ldd lists resolves to the same path in our load
tree -- including "not found" ones. ldd runs the system's ld.so on these
files (trusted: they are this machine's own). The differences that do exist
are about context, and each has its own test below.
"""

import concurrent.futures
import os
import shutil

import pytest

from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.elfwalk import elf_files as walk_elf_files
from tests.harness.ldd import RTLD, ldd
from tests.harness.loadview import ldd_view
from tests.harness.prereq import PYENV_VERSIONS, require

TREES = ["/usr/bin", "/usr/lib/x86_64-linux-gnu"]
SITE = "lib/python3.11/site-packages"


def pyenv_311():
    try:
        names = sorted(n for n in os.listdir(PYENV_VERSIONS) if n.startswith("3.11."))
    except OSError:
        return None
    return os.path.join(PYENV_VERSIONS, names[-1]) if names else None


_FILES = {}


def elf_files(top):
    """tests.harness.elfwalk.elf_files, cached per tree."""
    if top not in _FILES:
        _FILES[top] = walk_elf_files(top)
    return _FILES[top]


@pytest.fixture(scope="module")
def machine():
    require(shutil.which("ldd") is not None and os.path.exists(RTLD), "needs x86-64 glibc and ldd")
    require(os.path.exists("/etc/ld.so.cache"), "needs /etc/ld.so.cache")
    py = pyenv_311()
    require(py is not None, "needs CPython 3.11 under %s" % PYENV_VERSIONS)
    return py


@pytest.mark.main_only
def test_every_elf_file_resolves_like_ldd(machine):
    files = []
    for top in TREES + [machine]:
        found = elf_files(top)
        assert found, top
        files.extend(found)
    assert len(files) > 500
    loader = Loader(Root("/"))
    trees = {}
    for path in files:
        trees[path] = ldd_view(loader.load_tree(path))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        expected = dict(zip(files, pool.map(ldd, files)))
    diffs = {p: (trees[p], expected[p]) for p in files if trees[p] != expected[p]}
    assert not diffs, "%d of %d files differ, e.g. %r" % (len(diffs), len(files),
                                                          sorted(diffs.items())[:3])
    # The comparison is not vacuous: most files have dependencies, some resolve
    # through RPATH/RUNPATH ($ORIGIN), and ldd reports a few libraries missing.
    assert sum(1 for p in files if expected[p]) > 0.8 * len(files)
    assert any("/../" in (v or "") for e in expected.values() for v in e.values())


@pytest.mark.main_only
def test_load_order_matches_ldd(machine):
    """Objects appear in ld.so's breadth-first load order."""
    site = os.path.join(machine, SITE)
    samples = [os.path.join(machine, "bin/python3.11"), "/usr/bin/gcc", "/usr/bin/python3"]
    samples += elf_files(os.path.join(site, "scipy/odr"))[:2]
    loader = Loader(Root("/"))
    for path in samples:
        if not os.path.exists(path):
            continue
        order = [p for p in list(loader.load_tree(path).objects)[1:] if p != RTLD]
        printed = [v for v in ldd(path).values() if v is not None]
        assert order == printed, path


def _lone_missing(machine):
    """Libraries of the 3.11 tree that miss something when loaded alone."""
    loader = Loader(Root("/"))
    out = {}
    for path in elf_files(machine):
        tree = loader.load_tree(path)
        for dep in tree.missing:
            out.setdefault(path, set()).add(dep.name)
    return out


@pytest.mark.host_only
def test_lone_library_missing_what_its_loader_provides(machine):
    """Documented difference: ldd on scipy.libs/libgfortran alone says libquadmath is
    "not found" (no RPATH/RUNPATH of its own); loaded by a scipy extension module,
    it is found through the module's RPATH ($ORIGIN/../../scipy.libs): RPATH is
    inherited down the loading chain. Both the lone and the in-context view
    match ldd; keep must use the in-context one."""
    site = os.path.join(machine, SITE)
    missing = _lone_missing(machine)
    require(any("scipy.libs/libgfortran" in p for p in missing), "needs scipy's wheel")
    loader = Loader(Root("/"))
    for lib, names in missing.items():
        assert ".libs/" in lib, lib      # only vendored wheel libraries miss anything
        for name in names:
            assert ldd(lib)[name] is None                   # ldd agrees: not found alone
        # Some extension module of the same tree loads it and resolves the name.
        users = []
        for top in ("scipy", "numpy"):
            for path in elf_files(os.path.join(site, top)):
                tree = loader.load_tree(path)
                hits = [d for d in tree.dependencies if d.needer.endswith(os.path.basename(lib))
                        and d.name in names]
                if hits:
                    users.append((path, hits))
            if users:
                break
        assert users, lib
        path, hits = users[0]
        expected = ldd(path)
        for dep in hits:
            assert dep.path is not None and dep.via in ("rpath", "loaded")
            assert expected[dep.name] == dep.path
