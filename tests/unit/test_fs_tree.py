"""pyimgtools.fs.Dir / open_dir: changing a tree through descriptors.

Issue 14 item 2: apt's list and cache cleanup followed symlinks inside --root
(R/var an absolute link deleted a file outside R). Expected values are the
plain file-system facts (what is left on disk), checked with os.* calls.
"""

import errno
import os

import pytest

from pyimgtools import apt, fs
from pyimgtools.fs import Root
from tests.harness.fstree import outside_var, tree_files


def test_apt_cleanup_never_follows_an_absolute_var_link_out_of_the_root(tmp_path):
    outside = outside_var(tmp_path)
    before = tree_files(outside)
    img = tmp_path / "img"
    img.mkdir()
    os.symlink(str(outside), str(img / "var"))    # absolute: means R/<that path> in the image
    root = Root(str(img))
    assert apt.remove_lists(root).files == 0
    assert apt.remove_cached_debs(root).files == 0
    assert tree_files(outside) == before


def test_apt_cleanup_resolves_links_inside_the_root(tmp_path):
    outside = outside_var(tmp_path)
    before = tree_files(outside)
    img = tmp_path / "img"
    (img / "data/var/lib/apt/lists/partial").mkdir(parents=True)
    (img / "data/var/lib/apt/lists/partial/x").write_bytes(b"x")
    (img / "data/var/lib/apt/lists/InRelease").write_bytes(b"y" * 10)
    (img / "data/var/cache/apt/archives").mkdir(parents=True)
    (img / "data/var/cache/apt/archives/a.deb").write_bytes(b"z")
    os.symlink("/data/var", str(img / "var"))      # as chroot(8) would resolve it
    os.symlink(str(outside / "lib"), str(img / "data/var/lib/apt/lists/escape"))
    root = Root(str(img))
    assert apt.remove_lists(root).files == 3        # two files and the link itself
    assert apt.remove_cached_debs(root).files == 1
    assert os.listdir(str(img / "data/var/lib/apt/lists")) == []
    assert os.listdir(str(img / "data/var/cache/apt/archives")) == []
    assert tree_files(outside) == before


def test_open_dir_walks_from_the_root_down(tmp_path):
    img = tmp_path / "img"
    (img / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", str(img / "lib"))
    os.symlink("/../../..", str(img / "up"))
    os.symlink("loop2", str(img / "loop1"))
    os.symlink("loop1", str(img / "loop2"))
    (img / "file").write_bytes(b"")
    root = Root(str(img))
    with fs.open_dir(root, "/lib") as d:
        assert d.path == "/usr/lib" and os.path.samestat(os.fstat(d.fd), os.stat(str(img / "usr/lib")))
    with fs.open_dir(root, "/up/usr/../usr/lib") as d:
        assert d.path == "/usr/lib"
    for path, code in (("/missing", errno.ENOENT), ("/file", errno.ENOTDIR), ("/loop1", errno.ELOOP)):
        with pytest.raises(OSError) as info:
            fs.open_dir(root, path)
        assert info.value.errno == code and info.value.filename == path
    with fs.open_dir(root, "/lib/new/deeper", create=True) as d:
        assert d.path == "/usr/lib/new/deeper"
    assert (img / "usr/lib/new/deeper").is_dir()


def test_dir_changes_entries_by_descriptor(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_bytes(b"outside")
    os.chmod(str(outside / "target"), 0o600)
    img = tmp_path / "img"
    (img / "state").mkdir(parents=True)
    os.symlink(str(outside / "target"), str(img / "state/link"))
    os.symlink(str(outside), str(img / "state/dirlink"))
    root = Root(str(img))
    with fs.open_dir(root, "/state") as d:
        d.write_atomic("f.json", b"{}", mode=0o640)
        assert (img / "state/f.json").read_bytes() == b"{}"
        assert os.stat(str(img / "state/f.json")).st_mode & 0o777 == 0o640
        d.write_atomic("link", b"new")                  # replaces the link, not its target
        assert not os.path.islink(str(img / "state/link"))
        for call in (lambda: d.chmod("dirlink", 0o777), lambda: d.subdir("dirlink")):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
        with d.subdir("sub", create=True) as sub:
            sub.write_atomic("x", b"1")
            d.chmod("sub", 0o700)
        assert os.stat(str(img / "state/sub")).st_mode & 0o777 == 0o700
        d.check(d.dev, d.ino)
        with pytest.raises(fs.IdentityChanged):
            d.check(d.dev, d.ino + 1)
        assert sorted(os.listdir(str(img / "state"))) == ["dirlink", "f.json", "link", "sub"]
    assert (outside / "target").read_bytes() == b"outside"
    assert os.stat(str(outside / "target")).st_mode & 0o777 == 0o600
