"""One model of Debian's state: the commands that read dpkg's and apt's files
agree because they ask pyimgtools.dpkg / pyimgtools.apt, written once."""

import os

from pyimgtools import apt, audit, builddeps, dpkg
from pyimgtools.fs import Root
from tests.harness.dpkgdb import make_db
from tests.harness.prune_support import prune


def test_showmanual_is_spelled_as_apt_mark_prints_it(tmp_path):
    db = make_db(tmp_path)
    # apt-mark showmanual (apt's FullName(Pretty=true)): native and arch-all
    # packages bare, a foreign one as name:arch. The fixture's manual set is
    # libc6 (amd64 and i386, Multi-Arch: same), dpkg, postgresql-common, libpq-dev.
    assert db.showmanual() == ["dpkg", "libc6", "libc6:i386", "libpq-dev", "postgresql-common"]


def test_apt_spelling():
    assert dpkg.apt_spelling("libc6", "amd64", "amd64") == "libc6"
    assert dpkg.apt_spelling("libc6", "i386", "amd64") == "libc6:i386"
    assert dpkg.apt_spelling("tzdata", "all", "amd64") == "tzdata"


def test_state_sets():
    assert dpkg.FILES_PRESENT_STATES == set(dpkg.STATES) - {"not-installed", "config-files"}
    assert dpkg.CONFIGURED_STATES <= dpkg.FILES_PRESENT_STATES
    assert dpkg.INTERRUPTED_STATES <= dpkg.FILES_PRESENT_STATES
    assert "installed" not in dpkg.INTERRUPTED_STATES


def test_build_deps_and_apt_share_lists_present():
    assert builddeps.lists_present is apt.lists_present


LEFTOVER_TREE = {
    "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": b"r" * 10,
    "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4": b"p",
    "var/lib/apt/lists/partial/deb.debian.org_x_Packages": b"q",
    "var/lib/apt/lists/lock": b"",
    "var/cache/apt/archives/gcc_12_amd64.deb": b"d",
    "var/cache/apt/archives/lock": b"",
    "var/cache/apt/archives/partial/make_4.3_amd64.deb": b"d",
    "var/cache/apt/archives/partial/make_4.3_amd64.deb.FAILED": b"d",
    "var/cache/apt/pkgcache.bin": b"b",
    "var/cache/apt/srcpkgcache.bin": b"b",
    "var/cache/apt/other": b"o",
}


def _files(top):
    found = set()
    for dirpath, _dirs, files in os.walk(str(top)):
        for f in files:
            found.add("/" + os.path.relpath(os.path.join(dirpath, f), str(top)))
    return found


def _make(top):
    for rel, data in LEFTOVER_TREE.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_prune_apt_and_audit_agree_on_apt_leftovers(tmp_path):
    # Expected by hand: apt-get clean's files (archives/*.deb, partial/*, *.bin)
    # and everything in the lists; the lock files audit does not name.
    gone = {"/" + rel for rel in LEFTOVER_TREE
            if not rel.endswith("/other") and rel != "var/cache/apt/archives/lock"}
    for name in ("apt", "prune", "audit"):
        _make(tmp_path / name)
    root = Root(str(tmp_path / "apt"))
    apt.remove_lists(root)
    apt.remove_cached_debs(root)
    assert _files(tmp_path / "apt") == set("/" + r for r in LEFTOVER_TREE) - gone
    (tmp_path / "prune/usr/local").mkdir(parents=True)
    proc = prune("--root", tmp_path / "prune", "--caches", "/usr/local")
    assert proc.returncode == 0, proc.stderr
    assert _files(tmp_path / "prune") == set("/" + r for r in LEFTOVER_TREE) - gone
    (tmp_path / "audit/usr/local").mkdir(parents=True)
    found = audit.plan(Root(str(tmp_path / "audit")), env={}, env_source="test").findings
    named = {p for f in found if f.id.startswith("apt-") for p in f.paths}
    assert named == gone - {"/var/lib/apt/lists/lock"}
