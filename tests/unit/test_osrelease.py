"""/etc/os-release parsing inside a root (os-release(5))."""

import os

import pytest

from pyimgtools import osrelease
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root

BOOKWORM = '''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
'''
NOBLE = '''PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
'''
STRETCH = '''PRETTY_NAME="Debian GNU/Linux 9 (stretch)"
NAME="Debian GNU/Linux"
VERSION_ID="9"
VERSION="9 (stretch)"
ID=debian
'''
ALPINE = '''NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
'''


def test_bookworm():
    osr = osrelease.OsRelease(osrelease.parse(BOOKWORM), "/etc/os-release")
    assert (osr.id, osr.version_id, osr.codename) == ("debian", "12", "bookworm")
    assert osr.pretty_name == "Debian GNU/Linux 12 (bookworm)"


def test_ubuntu_codename_and_id_like():
    osr = osrelease.OsRelease(osrelease.parse(NOBLE), "x")
    assert (osr.id, osr.codename, osr.id_like) == ("ubuntu", "noble", ["debian"])


def test_codename_from_version_when_no_version_codename():
    assert osrelease.OsRelease(osrelease.parse(STRETCH), "x").codename == "stretch"
    osr = osrelease.OsRelease({"ID": "debian", "VERSION_ID": "11"}, "x")
    assert osr.codename == "bullseye"


def test_quoting_comments_and_junk():
    fields = osrelease.parse("# comment\nA='single quoted'\nB=\"a \\\"b\\\" c\"\nnot a line\n"
                             "C=plain\n1BAD=x\nD=\"unterminated\n")
    assert fields["A"] == "single quoted"
    assert fields["B"] == 'a "b" c'
    assert fields["C"] == "plain"
    assert "1BAD" not in fields
    assert fields["D"] == "unterminated"


def test_read_inside_root_follows_debian_symlink(tmp_path):
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib/os-release").write_text(ALPINE)
    os.symlink("../usr/lib/os-release", str(tmp_path / "etc/os-release"))
    osr = osrelease.read(Root(str(tmp_path)))
    assert osr.id == "alpine"


def test_fallback_and_absent(tmp_path):
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text(NOBLE)
    assert osrelease.read(Root(str(tmp_path))).path == "/usr/lib/os-release"
    os.unlink(str(tmp_path / "usr/lib/os-release"))
    with pytest.raises(PyimgtoolsError) as exc:
        osrelease.read(Root(str(tmp_path)))
    assert "os-release" in str(exc.value)


def test_absolute_symlink_stays_inside_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv/os-release").write_text("ID=fedora\n")
    os.symlink("/srv/os-release", str(tmp_path / "etc/os-release"))
    assert osrelease.read(Root(str(tmp_path))).id == "fedora"
