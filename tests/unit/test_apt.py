"""apt invocation helpers: environment, lock waiting, errors, cleaning, dpkg state.

apt-get itself is replaced by small fake programs on PATH that print what
the real one prints in those situations (messages copied from apt 2.6)."""

import os

import pytest

from pyimgtools import apt
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root

LOCK_MSG = ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 "
            "(apt-get)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
            "is another process using it?")


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))

    def make(name, script):
        path = bindir / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
        return path
    return make


def test_noninteractive_env_and_dpkg_options():
    env = apt.noninteractive_env({"PATH": "/bin", "DEBIAN_FRONTEND": "dialog"})
    assert env["DEBIAN_FRONTEND"] == "noninteractive"
    assert env["PATH"] == "/bin"
    assert env["LC_ALL"] == "C"
    assert apt.DPKG_OPTIONS == ("-o", "Dpkg::Options::=--force-confdef",
                                "-o", "Dpkg::Options::=--force-confold")


def test_apt_get_passes_options_and_env(fake_bin, tmp_path):
    out = tmp_path / "argv"
    fake_bin("apt-get", 'printf "%%s\\n" "$@" > %s; echo "FRONTEND=$DEBIAN_FRONTEND"\n' % out)
    result = apt.apt_get(["install", "--no-install-recommends", "hello"], lock_timeout=7)
    argv = out.read_text().split("\n")
    assert argv[:2] == ["-y", "-q"]
    assert "Dpkg::Options::=--force-confdef" in argv and "Dpkg::Options::=--force-confold" in argv
    assert "DPkg::Lock::Timeout=7" in argv or "DPkg::Lock::Timeout=6" in argv
    assert argv[-4:-1] == ["install", "--no-install-recommends", "hello"]
    assert result.returncode == 0 and "FRONTEND=noninteractive" in result.output


def test_apt_get_failure_is_one_line_with_the_first_error(fake_bin):
    fake_bin("apt-get", 'echo "Reading package lists..."; echo "E: Unable to locate package nope" >&2;'
             ' echo "E: second" >&2; exit 100\n')
    with pytest.raises(PyimgtoolsError) as exc:
        apt.apt_get(["install", "nope"], what="apt-get install")
    assert str(exc.value) == "apt-get install failed: Unable to locate package nope"
    assert exc.value.exit_code == 1
    result = apt.apt_get(["install", "nope"], check=False)
    assert result.returncode == 100 and result.errors == ["Unable to locate package nope", "second"]


def test_lock_held_waits_then_says_so(fake_bin, monkeypatch):
    monkeypatch.setattr(apt, "_LOCK_POLL", 0.01)
    fake_bin("apt-get", "cat <<'X' >&2\n%s\nX\nexit 100\n" % LOCK_MSG)
    with pytest.raises(PyimgtoolsError) as exc:
        apt.apt_get(["update"], lock_timeout=0, what="apt-get update")
    msg = str(exc.value)
    assert "lock is still held after 0 s" in msg and "process 4242" in msg
    assert "\n" not in msg


def test_lock_released_while_waiting(fake_bin, monkeypatch, tmp_path):
    monkeypatch.setattr(apt, "_LOCK_POLL", 0.01)
    counter = tmp_path / "count"
    counter.write_text("")
    fake_bin("apt-get", 'echo x >> %s\nif [ $(wc -l < %s) -lt 3 ]; then\ncat <<\'X\' >&2\n%s\nX\n'
             'exit 100\nfi\necho done\n' % (counter, counter, LOCK_MSG))
    result = apt.apt_get(["update"], lock_timeout=30)
    assert result.returncode == 0 and "done" in result.output
    assert len(counter.read_text().split()) == 3


def test_missing_apt_get(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PyimgtoolsError) as exc:
        apt.apt_get(["update"])
    assert "cannot run apt-get" in str(exc.value)


def test_update_failures_name_the_source(fake_bin):
    # What apt-get 2.6 prints for an unreachable mirror (and exits 0).
    fake_bin("apt-get", r'''cat <<'X'
Ign:1 http://127.0.0.1:9/debian bookworm InRelease
Err:1 http://127.0.0.1:9/debian bookworm InRelease
  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
Reading package lists...
W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
W: Some index files failed to download. They have been ignored, or old ones used instead.
X
''')
    with pytest.raises(PyimgtoolsError) as exc:
        apt.update_lists()
    assert str(exc.value) == ("cannot refresh the apt lists: http://127.0.0.1:9/debian bookworm "
                              "InRelease: Could not connect to 127.0.0.1:9 (127.0.0.1). - connect "
                              "(111: Connection refused)")


def test_update_ok(fake_bin):
    fake_bin("apt-get", 'echo "Hit:1 http://deb.debian.org/debian bookworm InRelease"\n')
    assert apt.update_lists().returncode == 0


def test_apt_mark(fake_bin, tmp_path):
    log = tmp_path / "log"
    fake_bin("apt-mark", 'echo "$@" >> %s\nif [ "$1" = showmanual ]; then printf "bash\\nlibc6:i386\\n"; fi\n'
             % log)
    assert apt.apt_mark_showmanual() == ["bash", "libc6:i386"]
    apt.apt_mark("auto", ["p%d" % i for i in range(1200)])
    calls = log.read_text().splitlines()
    assert [len(c.split()) for c in calls[1:]] == [501, 501, 201]
    with pytest.raises(ValueError):
        apt.apt_mark("purge", ["x"])


def test_apt_mark_failure(fake_bin):
    fake_bin("apt-mark", 'echo "E: Unable to locate package nope" >&2; exit 100\n')
    with pytest.raises(PyimgtoolsError) as exc:
        apt.apt_mark("manual", ["nope"])
    assert str(exc.value) == "apt-mark manual failed: Unable to locate package nope"


def test_require_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PyimgtoolsError) as exc:
        apt.require_root("security-upgrade")
    assert "security-upgrade needs root" in str(exc.value)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    apt.require_root("x")


def _tree(root, files):
    for rel, data in files.items():
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_remove_lists_and_debs(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.deb").write_bytes(b"x")
    img = tmp_path / "img"
    _tree(img, {
        "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": b"a" * 100,
        "/var/lib/apt/lists/partial/x": b"b",
        "/var/lib/apt/lists/lock": b"",
        "/var/cache/apt/archives/libssl3_3.0.deb": b"c" * 10,
        "/var/cache/apt/archives/partial/half.deb.FAILED": b"d",
        "/var/cache/apt/archives/lock": b"",
        "/var/cache/apt/pkgcache.bin": b"e",
        "/var/cache/apt/other": b"f",
    })
    os.symlink(str(outside), str(img / "var/lib/apt/lists/link-out"))
    os.symlink(str(outside / "keep.deb"), str(img / "var/cache/apt/archives/link.deb"))
    root = Root(str(img))
    res = apt.remove_lists(root)
    assert os.listdir(str(img / "var/lib/apt/lists")) == []
    assert res.files == 4 and res.bytes > 0
    res = apt.remove_cached_debs(root)
    assert sorted(os.listdir(str(img / "var/cache/apt/archives"))) == ["lock", "partial"]
    assert os.listdir(str(img / "var/cache/apt/archives/partial")) == []
    assert sorted(os.listdir(str(img / "var/cache/apt"))) == ["archives", "other"]
    assert res.files == 4
    assert (outside / "keep.deb").exists()  # symlinks are removed, never followed
    assert not apt.lists_present(root)


def test_lists_present(tmp_path):
    _tree(tmp_path, {"/var/lib/apt/lists/lock": b""})
    (tmp_path / "var/lib/apt/lists/partial").mkdir()
    assert not apt.lists_present(Root(str(tmp_path)))
    _tree(tmp_path, {"/var/lib/apt/lists/x_Packages.lz4": b"x"})
    assert apt.lists_present(Root(str(tmp_path)))


STATUS_OK = b"""Package: bash
Status: install ok installed
Version: 5.2

Package: old
Status: deinstall ok config-files
Version: 1
"""


def test_dpkg_interrupted(tmp_path):
    _tree(tmp_path, {"/var/lib/dpkg/status": STATUS_OK})
    (tmp_path / "var/lib/dpkg/updates").mkdir()
    root = Root(str(tmp_path))
    assert apt.dpkg_interrupted(root) is None
    apt.check_dpkg_state(root)
    _tree(tmp_path, {"/var/lib/dpkg/updates/0003": b"Package: bash\n"})
    assert "interrupted" in apt.dpkg_interrupted(root)
    os.unlink(str(tmp_path / "var/lib/dpkg/updates/0003"))
    _tree(tmp_path, {"/var/lib/dpkg/status": STATUS_OK + b"\nPackage: libx\nStatus: install ok "
                     b"half-configured\nVersion: 2\n"})
    with pytest.raises(PyimgtoolsError) as exc:
        apt.check_dpkg_state(root)
    assert "libx (half-configured)" in str(exc.value)
    assert "dpkg --configure -a" in str(exc.value)


def test_update_err_lines_of_fallbacks_that_succeed_are_no_failure(fake_bin):
    # apt 2.6 with a file: flat repository and Acquire::CompressionTypes::Order gz.
    fake_bin("apt-get", r'''cat <<'X'
Get:3 file:/srv/repo ./ Packages
Err:3 file:/srv/repo ./ Packages
  Method gave a blank filename
Get:4 http://deb.debian.org/debian bookworm InRelease [151 kB]
Get:3 file:/srv/repo ./ Packages
Err:3 file:/srv/repo ./ Packages
  Method gave a blank filename
Get:3 file:/srv/repo ./ Packages [236 B]
Fetched 12.7 MB in 2s (8443 kB/s)
Reading package lists...
X
''')
    assert apt.update_lists().returncode == 0
