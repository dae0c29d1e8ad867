"""The mount table: mountinfo parsing (proc(5) format), octal escapes, mount points under a tree."""

import os

import pytest

from pyimgtools.mounts import MountTable, ancestors_of, parse_mountinfo, unescape

# proc(5)'s example line, plus a bind mount of the same file system, escaped names and junk.
SAMPLE = (
    b"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    b"40 22 8:1 /srv/data /usr/local/lib/with\\040space rw,relatime shared:1 - ext4 /dev/vda rw\n"
    b"41 22 8:1 /x /usr/local/new\\012line rw - ext4 /dev/vda rw\n"
    b"42 22 8:1 /x /usr/local/back\\134slash rw - ext4 /dev/vda rw\n"
    b"43 22 0:5 / /usr/local/lib/python3.11/tests rw shared:9 master:3 - tmpfs none rw\n"
    b"44 22 0:6 / /usr/localother rw - tmpfs none rw\n"
    b"not a mountinfo line\n"
    b"45 22 0:7 / /too/short\n"
    b"\n"
)


def test_parse_proc5_example_and_escapes():
    mounts = parse_mountinfo(SAMPLE)
    assert len(mounts) == 7
    m = mounts[0]
    assert (m.mount_id, m.parent_id, m.root, m.mount_point, m.fstype, m.source) == (
        36, 35, b"/mnt1", b"/mnt/parent", b"ext3", b"/dev/root")
    points = [m.mount_point for m in mounts]
    assert b"/usr/local/lib/with space" in points
    assert b"/usr/local/new\nline" in points
    assert b"/usr/local/back\\slash" in points
    assert mounts[2].root == b"/srv/data"  # a bind mount shows the source directory as its root


def test_unescape_leaves_other_backslashes():
    assert unescape(b"a\\040b\\x\\1") == b"a b\\x\\1"


def test_mount_points_under_a_tree():
    table = MountTable(parse_mountinfo(SAMPLE))
    assert table.under("/usr/local") == sorted([
        b"/usr/local/back\\slash", b"/usr/local/lib/python3.11/tests", b"/usr/local/lib/with space",
        b"/usr/local/new\nline"])  # not /usr/localother, not /usr/local itself
    assert table.under(b"/usr/local/lib/") == [b"/usr/local/lib/python3.11/tests", b"/usr/local/lib/with space"]
    assert table.is_mount_point("/usr/local/lib/with space")
    assert not table.is_mount_point("/usr/local/lib")
    assert table.under("/") and b"/" not in table.under("/")


def test_ancestors_between_the_top_and_each_mount_point():
    points = [b"/t/a/b/m1", b"/t/a/m2", b"/t/c/m3"]
    assert ancestors_of(points, b"/t") == {b"/t", b"/t/a", b"/t/a/b", b"/t/c"}
    assert ancestors_of([b"/m"], b"/") == {b"/"}


def test_unreadable_table_is_reported_as_unavailable(tmp_path):
    table = MountTable.load(str(tmp_path / "missing"))
    assert not table.available and table.under("/") == []


@pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo"), reason="no /proc")
def test_this_process_mount_table_matches_proc_mounts():
    table = MountTable.load()
    assert table.available and table.points
    # the kernel's own list agrees (/proc/mounts uses the same escapes)
    with open("/proc/mounts", "rb") as f:
        listed = {unescape(line.split(b" ")[1]) for line in f if line.strip()}
    assert listed == set(table.points)


def test_the_file_system_type_of_a_path_is_its_nearest_mount_the_last_stacked():
    table = MountTable(parse_mountinfo(SAMPLE + (
        b"50 22 0:8 / /dev/shm rw - tmpfs shm rw\n"
        b"51 22 0:9 / /dev/shm rw - ramfs other rw\n")))     # stacked on it: this one is seen
    assert table.fstype_of("/usr/local/lib/python3.11/tests/x/y") == b"tmpfs"
    assert table.fstype_of("/usr/local/lib/python3.11/testsuite") == b"ext4"
    assert table.fstype_of("/usr/localother") == b"tmpfs"
    assert table.fstype_of("/usr/local") == b"ext4"
    assert table.fstype_of("/dev/shm/pyimgtools-image-1") == b"ramfs"
    assert MountTable([]).fstype_of("/tmp") is None
