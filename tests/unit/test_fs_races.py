"""Races: a directory swapped for a symlink to outside the tree while apt's
cleanup runs (issue 14 item 2). Each run rebuilds the tree, swaps while the
cleanup runs, and checks that nothing outside changed. Bounded: 24 runs of a
few dozen cleanups each, about two seconds."""

import os

import pytest

from pyimgtools import apt
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root
from tests.harness import race
from tests.harness.fstree import outside_var, tree_files
from tests.harness.prereq import require

pytestmark = pytest.mark.main_only

RUNS = 24
CLEANUPS = 15


def _image(base):
    for rel in ("var/lib/apt/lists/a/b/InRelease", "var/lib/apt/lists/a/c", "var/lib/apt/lists/top",
                "var/cache/apt/archives/x.deb", "var/cache/apt/archives/partial/y.deb",
                "var/cache/apt/srcpkgcache.bin"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(b"image")


def test_apt_cleanup_under_a_symlink_swapping_race(tmp_path):
    require(race.available(), "needs renameat2 (glibc >= 2.28)")
    outside = outside_var(tmp_path)
    before = tree_files(outside)
    swaps = 0
    for run in range(RUNS):
        img = tmp_path / ("img%d" % run)
        _image(img)
        if run % 2 == 0:
            # the image's /var itself trades places with a link to the host directory
            os.symlink(str(outside), str(img / "var-alt"))
            pairs = [(img / "var", img / "var-alt")]
        else:
            # a directory inside the lists trades places with a link out
            os.symlink(str(outside / "lib/apt/lists"), str(img / "var/lib/apt/alt"))
            os.symlink(str(outside / "cache/apt/archives"), str(img / "var/cache/apt/alt"))
            pairs = [(img / "var/lib/apt/lists/a", img / "var/lib/apt/alt"),
                     (img / "var/cache/apt/archives/partial", img / "var/cache/apt/alt")]
        root = Root(str(img))
        with race.Swapper(pairs) as swapper:
            for _ in range(CLEANUPS):
                for clean in (apt.remove_lists, apt.remove_cached_debs):
                    try:
                        clean(root)
                    except PyimgtoolsError:
                        pass    # a directory replaced mid-way is an error, not an escape
        swaps += swapper.swaps
        assert tree_files(outside) == before, "run %d changed the outside directory" % run
    assert swaps >= RUNS
