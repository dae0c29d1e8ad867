"""Fuzzing pyimgtools.loader over generated image roots.

hypothesis builds small roots: libraries with random DT_NEEDED / RPATH /
RUNPATH / nodefaultlib (names and paths from a pool that includes DSTs, '..',
empty and relative entries, names with slashes), malformed files with the ELF
magic, and symlinks (relative, absolute, dangling, looping). For every file:

* load_tree raises nothing but ElfError/OSError, and only for the root itself;
* the tree is consistent (every edge's needer and target are objects, the root
  comes first, a missing edge has no path);
* the Loader's caches change nothing: a shared Loader that already resolved
  other files gives the same tree as a fresh one.
"""

import os
import shutil
import tempfile

import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pyimgtools.elf import ElfError  # noqa: E402
from pyimgtools.fs import Root  # noqa: E402
from pyimgtools.loader import Loader  # noqa: E402
from tests.harness.elfbuild import build_elf  # noqa: E402

DIRS = ["/opt/a", "/opt/b", "/opt/a/sub", "/usr/lib/x86_64-linux-gnu", "/usr/lib",
        "/opt/a/glibc-hwcaps/x86-64-v3", "/usr/local/lib"]
SONAMES = ["liba.so", "libb.so.1", "libc.so.6", "libd.so", "ld-linux-x86-64.so.2"]
NEEDED = SONAMES + ["libnope.so", "/opt/a/liba.so", "$ORIGIN/libb.so.1", "./rel.so", "",
                    "$ORIGIN/../b/libd.so", "sub/liba.so"]
PATH_ENTRIES = ["/opt/a", "/opt/b", "$ORIGIN", "${ORIGIN}/..", "$ORIGIN/../b", "", "rel",
                "/opt/$LIB", "/opt/a/$PLATFORM", "$UNKNOWN", "/nonexistent", "/opt/a/sub/..",
                "/usr/lib/x86_64-linux-gnu"]

paths_st = st.lists(st.sampled_from(PATH_ENTRIES), min_size=1, max_size=3).map(":".join)

lib_st = st.fixed_dictionaries({
    "dir": st.sampled_from(DIRS),
    "name": st.sampled_from(SONAMES + ["other.so"]),
    "soname": st.one_of(st.none(), st.sampled_from(SONAMES)),
    "needed": st.lists(st.sampled_from(NEEDED), max_size=4),
    "rpath": st.one_of(st.none(), paths_st),
    "runpath": st.one_of(st.none(), paths_st),
    "nodeflib": st.booleans(),
    "kind": st.sampled_from(["elf"] * 6 + ["garbage", "wrongclass", "link", "absl", "loop"]),
    "interp": st.booleans(),
})

image_st = st.tuples(st.lists(lib_st, min_size=1, max_size=10), st.booleans())


def make_root(libs, cache):
    base = tempfile.mkdtemp(prefix="loaderfuzz")
    files = []
    for i, lib in enumerate(libs):
        path = lib["dir"] + "/" + lib["name"]
        host = base + path
        os.makedirs(os.path.dirname(host), exist_ok=True)
        if os.path.lexists(host):
            continue
        kind = lib["kind"]
        if kind == "link":
            os.symlink("../b/" + lib["name"], host)
        elif kind == "absl":
            os.symlink("/opt/b/" + lib["name"], host)
        elif kind == "loop":
            os.symlink(lib["name"], host)
        else:
            if kind == "garbage":
                data = b"\x7fELF\x02\x01\x01" + bytes(range(i, i + 40))
            elif kind == "wrongclass":
                data = build_elf(bits=32, machine=3, soname=lib["soname"])
            else:
                data = build_elf(etype=3, soname=lib["soname"], needed=lib["needed"],
                                 rpath=lib["rpath"], runpath=lib["runpath"],
                                 flags_1=0x800 if lib["nodeflib"] else None,
                                 interp="/opt/a/liba.so" if lib["interp"] else None)
            with open(host, "wb") as f:
                f.write(data)
        files.append(path)
    os.makedirs(base + "/etc", exist_ok=True)
    if cache:
        with open(base + "/etc/ld.so.cache", "wb") as f:
            f.write(b"glibc-ld.so.cache1.1" + bytes(7))      # malformed: loader-wide warning
    else:
        with open(base + "/etc/ld.so.conf", "w") as f:
            f.write("/opt/b\ninclude /etc/ld.so.conf\n")
    return base, files


def check_tree(tree, path):
    keys = list(tree.objects)
    assert keys[0] == path
    for dep in tree.dependencies:
        assert dep.needer in tree.objects
        if dep.path is not None:
            assert dep.path in tree.objects, dep
            for alt in dep.alternatives:
                assert alt in tree.objects
        assert dep.via in ("rpath", "ld_library_path", "runpath", "cache", "default", "loaded",
                           "path", "interp")
    assert all(isinstance(w, str) for w in tree.warnings)


def snapshot(tree, loader):
    """What a tree says; the loader-wide warnings (about the cache) are carried by the
    first tree a Loader returns only, so they are left out."""
    return ([(d.needer, d.name, d.path, d.via, d.alternatives, d.error) for d in tree.dependencies],
            list(tree.objects), sorted(w for w in tree.warnings if w not in loader.warnings))


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(image_st, st.one_of(st.none(), st.just(["$ORIGIN/../b", "/opt/a", ""])))
def test_loader_on_generated_roots(image, ldlp):
    libs, cache = image
    base, files = make_root(libs, cache)
    try:
        root = Root(base)
        shared = Loader(root, ld_library_path=ldlp)
        for path in files + files[:1]:
            try:
                tree = shared.load_tree(path)
            except (ElfError, OSError):
                with pytest.raises((ElfError, OSError)):
                    Loader(root, ld_library_path=ldlp).load_tree(path)
                continue
            check_tree(tree, path)
            fresh_loader = Loader(root, ld_library_path=ldlp)
            fresh = fresh_loader.load_tree(path)
            assert snapshot(fresh, fresh_loader) == snapshot(tree, shared)
    finally:
        shutil.rmtree(base)
