"""Root: in-image paths, symlinks resolved inside the root, never on the host."""

import errno
import os

import pytest

from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root
from pyimgtools.report import display_path, format_bytes, format_count, json_path


@pytest.fixture
def image(tmp_path):
    """A tiny usrmerged tree: /lib -> usr/lib, absolute and relative links."""
    (tmp_path / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "usr/lib/x86_64-linux-gnu/libc.so.6").write_bytes(b"x")
    os.symlink("usr/lib", str(tmp_path / "lib"))
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/passwd", str(tmp_path / "usr/abs-link"))  # absolute: inside the root
    os.symlink("../../../../../..", str(tmp_path / "usr/up"))  # climbs: clamps at the root
    os.symlink("loop-b", str(tmp_path / "loop-a"))
    os.symlink("loop-a", str(tmp_path / "loop-b"))
    return tmp_path


def test_realpath_resolves_inside_the_root(image):
    root = Root(str(image))
    assert root.realpath("/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert root.realpath("/usr/abs-link") == "/etc/passwd"  # not the host's /etc
    assert root.realpath("/usr/up/etc") == "/etc"
    assert root.realpath("/missing/../usr/./lib") == "/usr/lib"
    assert root.host("/etc/passwd") == str(image) + "/etc/passwd"
    assert root.image(str(image) + "/usr/lib") == "/usr/lib"
    assert root.realdir("/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"


def test_symlink_loop_is_eloop(image):
    with pytest.raises(OSError) as info:
        Root(str(image)).realpath("/loop-a")
    assert info.value.errno == errno.ELOOP


def test_host_root_is_identity():
    root = Root("/")
    assert root.host("/usr/lib") == "/usr/lib"
    assert root.realpath("/") == "/"


def test_bad_root_is_an_expected_error(tmp_path):
    with pytest.raises(PyimgtoolsError):
        Root(str(tmp_path / "absent"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(PyimgtoolsError):
        Root(str(tmp_path / "file"))


def test_report_formatting():
    assert format_bytes(512) == "512 B"
    assert format_bytes(41.3 * 1024 * 1024) == "41.3 MiB"
    assert format_count(1204, "file") == "1,204 files"
    assert format_count(1, "directory", "directories") == "1 directory"
    bad = b"caf\xe9\nname"
    assert display_path(bad) == "caf\\xe9\nname"
    assert json_path(bad) == {"bytes_hex": bad.hex()}
    assert json_path("plain") == "plain"


def test_json_keeps_undecodable_text_paths_lossless():
    from pyimgtools.report import to_jsonable
    raw = b"/tmp/caf\xe9"
    doc = to_jsonable({"paths": [os.fsdecode(raw), "/ok"]})
    assert doc == {"paths": [{"bytes_hex": raw.hex()}, "/ok"]}
    assert bytes.fromhex(doc["paths"][0]["bytes_hex"]) == raw
