"""keep against ldd + dpkg-query on this machine's real files (read-only).

The expected package set is derived without pyimgtools: every regular file
under the tree that starts with the ELF magic (the test's own walk), `ldd` on
each (these are this machine's own trusted files), every resolved path outside
the tree -> `dpkg-query --search` on both usrmerge spellings. Differences
between the two are listed in KNOWN_DIFFERENCES, each with its own test below.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import run_cli
from tests.harness import keepref
from tests.harness.elfwalk import elf_files, is_elf_file
from tests.harness.keepcli import keep_json, keep_packages
from tests.harness.ldd import resolved_and_missing, run_ldd
from tests.harness.prereq import PYENV_VERSIONS, require, require_tools

pytestmark = pytest.mark.main_only

PYENV_TREE = os.path.join(PYENV_VERSIONS, "3.11.7")
MULTIARCH_DIR = "/usr/lib/x86_64-linux-gnu"


def ldd(path):
    return resolved_and_missing(run_ldd(path))


_LDD_CACHE = {}


def ldd_all(tree):
    if tree not in _LDD_CACHE:
        files = elf_files(tree)
        with ThreadPoolExecutor(4) as ex:
            _LDD_CACHE[tree] = dict(zip(files, ex.map(ldd, files)))
    return _LDD_CACHE[tree]


def outside(path, tree):
    real = os.path.realpath(path)
    top = os.path.realpath(tree)
    return not (real == top or real.startswith(top + "/"))


def outside_links(tree):
    """{target: link} for symlinks under `tree` to ELF files outside it."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            target = os.path.realpath(path)
            if outside(target, tree) and is_elf_file(target):
                found.setdefault(target, path)
    return found


def ldd_packages(tree, with_links=True):
    """(packages, unowned library paths) derived from ldd + dpkg-query.

    with_links: also the symlinks under the tree to ELF files outside it (see
    test_symlink_out_of_the_tree_keeps_its_target): the target and what it loads.
    """
    libs = set()
    results = dict(ldd_all(tree))
    if with_links:
        targets = outside_links(tree)
        libs.update(targets)
        with ThreadPoolExecutor(4) as ex:
            results.update(zip(targets, ex.map(ldd, sorted(targets))))
    for resolved, _ in results.values():
        libs.update(p for p in resolved if outside(p, tree))
    owners = keepref.host_owners(sorted(libs))
    packages = set().union(*owners.values()) if owners else set()
    return packages, sorted(p for p, o in owners.items() if not o)


def require_system():
    require_tools("ldd", "dpkg-query")
    require(os.path.isdir(PYENV_TREE), "needs CPython 3.11.7 under %s" % PYENV_VERSIONS)


# What keep and the ldd derivation are allowed to disagree on, and why. Each
# entry has its own test below.
KNOWN_DIFFERENCES = {
    # ldd on a lone auditwheel library: its sibling (no RUNPATH) is "not found";
    # in the load tree of the extension module that loads it, the sibling is
    # already loaded. Inside the scanned tree, so no package differs.
    "resolved_in_context": "test_lone_library_not_found_by_ldd_is_resolved_in_context",
    # A symlink in the tree to an ELF file outside it (/usr/lib/x86_64-linux-gnu/
    # libclang-cpp.so.14 -> ../llvm-14/lib/...): keep scans the target and keeps
    # its package, since the tree makes it loadable; `find -type f` skips links.
    "outside_links": "test_symlink_out_of_the_tree_keeps_its_target",
    # A library needed by a file of the tree but only found through the RUNPATH
    # of programs outside it: missing for both, reported by keep.
    "missing_alone": "test_library_loaded_only_from_outside_the_tree_is_missing",
}


@pytest.mark.parametrize("tree", [PYENV_TREE, MULTIARCH_DIR])
def test_package_set_equals_ldd_derivation(tree):
    require_system()
    expected, expected_unowned = ldd_packages(tree)
    doc, proc = keep_json("--scan-all", "--allow-missing", tree)
    assert proc.returncode == 0, proc.stderr
    assert keep_packages(doc) == expected
    assert sorted(u["library"] for u in doc["unowned"]) == expected_unowned
    # what ldd cannot find on a lone file is missing for keep too, or resolved in
    # the context of another file of the tree (test_lone_library_...)
    lone = {(os.path.realpath(f), n) for f, (_, missing) in ldd_all(tree).items() for n in missing}
    keep_missing = {(m["needer"], m["name"]) for m in doc["missing"] + doc["resolved_in_context"]}
    assert keep_missing == lone
    # the default scan (files named *.py, *.txt, ... not opened) finds the same
    doc_default, _ = keep_json("--allow-missing", tree)
    assert keep_packages(doc_default) == expected


def test_library_loaded_only_from_outside_the_tree_is_missing():
    """libsystemd-core needs libsystemd-shared from /usr/lib/systemd, found through
    the RUNPATH of systemd's executables, which are not under the tree. Alone it
    is unresolvable for ldd and for keep alike, so keep reports it (exit 1)."""
    require_system()
    lone = {(f, n) for f, (_, missing) in ldd_all(MULTIARCH_DIR).items() for n in missing}
    if not lone:
        pytest.skip("no library under %s that ldd cannot resolve alone" % MULTIARCH_DIR)
    proc = run_cli("keep", "--print", MULTIARCH_DIR)
    assert proc.returncode == 1
    for f, n in lone:
        assert "%s: needed by %s: not found" % (n, os.path.realpath(f)) in proc.stderr


def test_full_mapping_of_every_library_in_the_multiarch_dir(tmp_path):
    """Scanning /usr/lib/x86_64-linux-gnu maps nothing inside it. To compare the
    mapping of all ~1,000 of its ELF files, scan a directory of symlinks to
    them: keep scans each target and keeps the target's package, and maps every
    library the targets load."""
    require_system()
    results = ldd_all(MULTIARCH_DIR)
    farm = tmp_path / "farm"
    farm.mkdir()
    for i, path in enumerate(sorted(results)):
        os.symlink(path, str(farm / ("%05d-%s" % (i, os.path.basename(path)))))
    libs = set(results)
    for resolved, _ in results.values():
        libs.update(resolved)
    owners = keepref.host_owners(sorted(libs))
    expected = set().union(*owners.values())
    doc, proc = keep_json("--scan-all", "--allow-missing", str(farm))
    assert proc.returncode == 0, proc.stderr
    assert keep_packages(doc) == expected
    assert len(expected) > 50
    assert sorted(u["library"] for u in doc["unowned"]) == sorted(p for p, o in owners.items() if not o)


def test_lone_library_not_found_by_ldd_is_resolved_in_context():
    require_system()
    results = ldd_all(PYENV_TREE)
    lone = {(f, n) for f, (_, missing) in results.items() for n in missing}
    doc, _ = keep_json(PYENV_TREE)
    in_context = {(m["needer"], m["name"]) for m in doc["resolved_in_context"]}
    # everything ldd misses on a lone file, keep resolves in context, and nothing else
    assert lone, "the tree has no auditwheel library whose sibling ldd cannot find"
    assert {(os.path.realpath(f), n) for f, n in lone} == in_context
    assert doc["missing"] == []
    # and these are libraries of the tree itself: no package is involved
    assert all(f.startswith(PYENV_TREE + "/") and ".libs/" in f for f, _ in lone)


def test_upstream_pipeline_defects_are_absent():
    """What the upstream pipeline gets wrong on this tree, checked against keep."""
    require_system()
    doc, _ = keep_json(PYENV_TREE)
    names = keep_packages(doc)
    # usrmerge misses of the 2020 pipeline
    assert {"libssl3:amd64", "libffi8:amd64", "libsqlite3-0:amd64"} <= names
    # no substring or "*not" false keeps
    assert not [n for n in names if n.startswith(("llvm", "git", "maven", "nodejs", "systemd"))]
    assert not [n for n in names if n.endswith("-dev") or n.endswith("-dev:amd64")]


def test_symlink_out_of_the_tree_keeps_its_target():
    require_system()
    targets = outside_links(MULTIARCH_DIR)
    if not targets:
        pytest.skip("no symlink under %s to an ELF file outside it" % MULTIARCH_DIR)
    owners = keepref.host_owners(sorted(targets))
    doc, _ = keep_json("--allow-missing", MULTIARCH_DIR)
    kept = {p["name"]: p for p in doc["packages"]}
    for target, pkgs in owners.items():
        for pkg in pkgs:
            assert pkg in kept
            assert targets[target] in kept[pkg]["needed_by"]
    # without the links, the ldd derivation misses at least one of them
    plain, _ = ldd_packages(MULTIARCH_DIR, with_links=False)
    assert set().union(*owners.values()) - plain


def test_method_ldd_agrees_on_the_pyenv_tree():
    """--method ldd (opt-in comparison mode) gives the same set on this tree."""
    require_system()
    elf = run_cli("keep", "--print", "--exclude", "*tkinter*", PYENV_TREE)
    via_ldd = run_cli("keep", "--print", "--method", "ldd", "--exclude", "*tkinter*", PYENV_TREE)
    assert elf.returncode == 0, elf.stderr
    # ldd on a lone auditwheel library reports its sibling missing
    assert via_ldd.returncode == 1 and "libquadmath" in via_ldd.stderr
    assert via_ldd.stdout.split() == elf.stdout.split()
    assert "EXECUTES CODE" in run_cli("keep", "--help").stdout
