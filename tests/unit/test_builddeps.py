"""build-deps: the pieces that need neither root nor apt (the flow itself is
tested in tests/integration/test_builddeps.py)."""

import json

import pytest

from pyimgtools import builddeps
from pyimgtools.dpkg import parse_status
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root
from tests.conftest import run_cli

APT_SIMULATION = """\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
The following packages will be REMOVED:
  cpp* gcc* libpq-dev*
0 upgraded, 0 newly installed, 3 to remove and 0 not upgraded.
Purg gcc [4:12.2.0-3]
Purg cpp [4:12.2.0-3]
Purg libpq-dev [15.8-0+deb12u1]
Remv libfoo1 [1.0]
Inst bar (1.0 Debian:12/stable [amd64])
Conf bar (1.0 Debian:12/stable [amd64])
"""

STATUS = b"""\
Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same

Package: tzdata
Status: install ok installed
Architecture: all

Package: gcc
Status: install ok installed
Architecture: amd64
"""


def test_simulated_names():
    assert builddeps._simulated(APT_SIMULATION, "Purg", "Remv") == ["cpp", "gcc", "libfoo1",
                                                                   "libpq-dev"]
    assert builddeps._simulated(APT_SIMULATION, "Inst") == ["bar"]


def test_saved_names_map_to_installed_apt_names():
    installed = parse_status(STATUS)
    # apt-mark showmanual prints native Multi-Arch: same packages without :arch
    assert builddeps._resolve_names(["libc6", "tzdata", "notinstalled"], installed) == [
        "libc6:amd64", "libc6:i386", "tzdata"]
    assert builddeps._resolve_names(["libc6:i386"], installed) == ["libc6:i386"]


def test_extended_states_for_the_simulation():
    installed = parse_status(STATUS)
    text = builddeps._extended_states_text(installed, {"libc6:amd64", "tzdata"}, "amd64")
    assert text == ("Package: gcc\nArchitecture: amd64\nAuto-Installed: 1\n\n"
                    "Package: libc6\nArchitecture: i386\nAuto-Installed: 1\n")


def test_state_file_round_trip(tmp_path):
    root = Root(str(tmp_path))
    assert builddeps.read_state(root, builddeps.STATE_FILE) is None
    builddeps.write_state(root, builddeps.STATE_FILE, {"version": 1, "manual": ["a", "b"]})
    assert (tmp_path / "var/lib/pyimgtools/build-deps.json").exists()
    assert builddeps.read_state(root, builddeps.STATE_FILE)["manual"] == ["a", "b"]
    (tmp_path / "var/lib/pyimgtools/build-deps.json").write_text("{not json")
    with pytest.raises(PyimgtoolsError, match="cannot read the state file"):
        builddeps.read_state(root, builddeps.STATE_FILE)
    (tmp_path / "var/lib/pyimgtools/build-deps.json").write_text(json.dumps([1, 2]))
    with pytest.raises(PyimgtoolsError, match="not a pyimgtools build-deps state file"):
        builddeps.read_state(root, builddeps.STATE_FILE)


def test_saved_listing(tmp_path):
    listing = tmp_path / "manual.txt"
    listing.write_text("apt\nbash\n\nlibc6:i386\n")
    assert builddeps.read_saved_listing(Root("/"), str(listing)) == ["apt", "bash", "libc6:i386"]
    with pytest.raises(PyimgtoolsError, match="--saved"):
        builddeps.read_saved_listing(Root("/"), str(tmp_path / "nope"))


def test_lists_present(tmp_path):
    root = Root(str(tmp_path))
    assert not builddeps.lists_present(root)
    lists = tmp_path / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "lock").write_text("")
    assert not builddeps.lists_present(root)
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4").write_text("")
    assert builddeps.lists_present(root)


def test_purge_without_state_is_a_clear_error(tmp_path):
    proc = run_cli("--root", str(tmp_path), "build-deps", "purge", "--dry-run")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyimgtools: error: no build-deps state "
                                  "(/var/lib/pyimgtools/build-deps.json is missing)")
    assert "--saved FILE" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_purge_saved_file_missing(tmp_path):
    proc = run_cli("--root", str(tmp_path), "build-deps", "purge", "--saved",
                   str(tmp_path / "manual.txt"), "--dry-run")
    assert proc.returncode == 1
    assert "--saved %s: No such file or directory" % (tmp_path / "manual.txt") in proc.stderr


def test_usage():
    assert run_cli("build-deps").returncode == 2
    assert run_cli("build-deps", "install").returncode == 2
    helptext = run_cli("build-deps", "purge", "--help").stdout
    assert "--keep-runtime PATH" in helptext and "examples:" in helptext


# The keep fixture image (tests/harness/keepimage.py), with a cache older than /usr/local/lib.
from tests.harness.keepimage import image, image_template, stale_cache_image  # noqa: E402,F401


def test_purge_plan_with_a_stale_cache_runs_ldconfig_first_and_keeps_what_it_finds(image):
    stale_cache_image(image)
    pp, _db, _installed = builddeps.plan_purge(Root(str(image)), ["libbaz3"], ["/usr/local"],
                                               excludes=(), allow_missing=False)
    assert pp.keep.uncached == ["/usr/local/lib/libinternal.so.1"]
    assert pp.keep.ldconfig[1:] == ["-r", str(image)]
    assert pp.keep.missing == []
    # libinternal.so.1 found as after ldconfig: what it loads is kept
    assert pp.manual == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]
    assert sorted(pp.kept) == ["libbar2:amd64", "libc6:amd64", "libfoo1"]


@pytest.mark.parametrize("content, message", [
    # issue 14 item 11: an empty manual set would purge python3 and everything else
    ('{"manual": []}', "holds an empty manual package set: the purge would remove"),
    ('{"manual": [{"a": 1}]}', "'manual' holds [{\"a\": 1}], not package names"),
    ('{"manual": ["bash", ""]}', "'manual' holds [\"\"], not package names"),
    ('{"manual": ["bash"], "requested": "gcc"}', "'requested' holds \"gcc\", not package names"),
])
def test_state_file_is_validated(tmp_path, content, message):
    state = tmp_path / "var/lib/pyimgtools/build-deps.json"
    state.parent.mkdir(parents=True)
    state.write_text(content)
    for action in (["purge", "--dry-run"], ["install", "--dry-run", "gcc"]):
        proc = run_cli("--root", str(tmp_path), "build-deps", *action)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("pyimgtools: error: /var/lib/pyimgtools/build-deps.json ")
        assert message in proc.stderr


def test_empty_saved_listing_is_refused(tmp_path):
    listing = tmp_path / "manual.txt"
    listing.write_text("\n")
    proc = run_cli("--root", str(tmp_path), "build-deps", "purge", "--saved", listing, "--dry-run")
    assert proc.returncode == 1
    assert proc.stderr == ("pyimgtools: error: --saved %s holds an empty manual package set: the "
                           "purge would remove every package not needed at runtime (python3 too); "
                           "save 'apt-mark showmanual' before installing build dependencies\n"
                           % listing)


# -- dry runs counted like the real run (issue 14 item 9) ---------------------

import argparse  # noqa: E402
import io  # noqa: E402

from pyimgtools import apt  # noqa: E402
from pyimgtools.apt import AptResult  # noqa: E402
from pyimgtools.commands import build_deps  # noqa: E402
from pyimgtools.report import Output  # noqa: E402

PURGE_STATUS = b"""\
Package: dpkg
Status: install ok installed
Architecture: amd64
Installed-Size: 100

Package: gcc
Status: install ok installed
Architecture: amd64
Version: 4:12.2.0-3
Installed-Size: 50

Package: libpq5
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 15.8-0+deb12u1
Installed-Size: 1000

Package: libpq-dev
Status: install ok installed
Architecture: amd64
Version: 15.8-0+deb12u1
Installed-Size: 4000

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9
Installed-Size: 20000

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
Installed-Size: 300
"""

# What apt-get -s prints for them: native Multi-Arch: same without :arch.
PURGE_SIMULATION = """\
Purg gcc [4:12.2.0-3]
Purg libpq5 [15.8-0+deb12u1]
Purg libpq-dev [15.8-0+deb12u1]
Purg libc6:i386 [2.36-9]
Purg tzdata [2024a-0+deb12u1]
"""
GONE = ("gcc", "libpq5:amd64", "libpq-dev", "libc6:i386", "tzdata")
SIMULATION = {"output": ""}
# `apt-cache show NAME=VERSION` for the packages the install simulation names
CANDIDATES = {
    "gcc=4:12.2.0-4": "Package: gcc\nArchitecture: amd64\nVersion: 4:12.2.0-4\n"
                      "Installed-Size: 50\nDescription: compiler\n continued\n",
    "cpp=4:12.2.0-4": "Package: cpp\nArchitecture: amd64\nVersion: 4:12.2.0-4\n"
                      "Installed-Size: 7\n",
    "libfoo1=1.0": "Package: libfoo1\nArchitecture: amd64\nMulti-Arch: same\nVersion: 1.0\n"
                   "Installed-Size: 9\n",
}
GONE_BYTES = (50 + 1000 + 4000 + 20000 + 300) * 1024    # Installed-Size, by hand


def _status_without(data, names):
    from pyimgtools.dpkg import parse_status
    keep_blocks = []
    for block in data.split(b"\n\n"):
        pkgs = parse_status(block)
        if not any(n in names for n in pkgs):
            keep_blocks.append(block)
    return b"\n\n".join(keep_blocks)


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """A root with PURGE_STATUS and an apt that simulates / performs from fixed text."""
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_bytes(PURGE_STATUS)
    (tmp_path / "usr/local").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    calls = []

    def apt_get(args, root=None, stream=None, what=None, **kw):
        calls.append(args)
        if args[0] == "purge":                     # the real purge: those packages go
            status.write_bytes(_status_without(PURGE_STATUS, GONE))
        if args[0] == "install":                   # a real install: gcc upgraded, cpp new
            status.write_bytes(PURGE_STATUS.replace(b"4:12.2.0-3", b"4:12.2.0-4") + b"""
Package: cpp
Status: install ok installed
Architecture: amd64
Installed-Size: 7

Package: libfoo1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Installed-Size: 9
""")
        return AptResult(argv=args, returncode=0, output=SIMULATION["output"], errors=[],
                         warnings=[])

    def apt_cache(args, root=None):
        assert args[0] == "show"
        return "\n".join(CANDIDATES[a] for a in args[1:])

    monkeypatch.setitem(SIMULATION, "output", PURGE_SIMULATION)
    monkeypatch.setattr(apt, "apt_get", apt_get)
    monkeypatch.setattr(apt, "apt_cache", apt_cache)
    for name in ("require_root", "check_dpkg_state", "apt_mark", "update_lists"):
        monkeypatch.setattr(apt, name, lambda *a, **k: None)
    cleaned = apt.CleanResult()
    monkeypatch.setattr(apt, "remove_lists", lambda *a, **k: cleaned)
    monkeypatch.setattr(apt, "remove_cached_debs", lambda *a, **k: cleaned)
    monkeypatch.setattr(apt, "apt_mark_showmanual", lambda *a, **k: ["dpkg"])
    return Root(str(tmp_path))


def _run(fn, root, **kw):
    stdout, stderr = io.StringIO(), io.StringIO()
    args = argparse.Namespace(state_file=builddeps.STATE_FILE, saved=None, keep_runtime=[],
                              exclude=[], allow_missing=False, allow_unreadable=False,
                              **kw)
    assert fn(args, Output(json_mode=True, stdout=stdout, stderr=stderr), root) == 0
    return json.loads(stdout.getvalue()), stderr.getvalue()


def test_purge_dry_run_counts_what_the_real_run_counts(fake_apt):
    builddeps.write_state(fake_apt, builddeps.STATE_FILE, {"version": 1, "manual": ["dpkg"]})
    dry, log = _run(build_deps.run_purge, fake_apt, dry_run=True)
    assert dry["remove"] == sorted(GONE)
    assert dry["remove_bytes"] == GONE_BYTES
    assert "would remove 5 packages (24.8 MiB)" in log
    real, _ = _run(build_deps.run_purge, fake_apt, dry_run=False)
    assert real["removed"] == dry["remove"]
    assert real["removed_bytes"] == dry["remove_bytes"]


def test_install_dry_run_of_installed_packages_has_nothing_to_install(fake_apt, monkeypatch):
    monkeypatch.setattr(builddeps, "lists_present", lambda root: True)
    SIMULATION["output"] = "NOTE: This is only a simulation!\n0 upgraded, 0 newly installed\n"
    dry, log = _run(build_deps.run_install, fake_apt, dry_run=True, packages=["gcc"])
    assert dry["install"] == [] and dry["upgrade"] == []
    assert "would install" not in log
    assert "nothing to install (gcc already installed)" in log


def test_install_dry_run_labels_upgrades(fake_apt, monkeypatch):
    monkeypatch.setattr(builddeps, "lists_present", lambda root: True)
    SIMULATION["output"] = ("Inst gcc [4:12.2.0-3] (4:12.2.0-4 Debian:12/stable [amd64])\n"
                       "Inst cpp (4:12.2.0-4 Debian:12/stable [amd64])\n"
                       "Inst libfoo1 (1.0 Debian:12/stable [amd64])\n"
                       "Conf cpp (4:12.2.0-4 Debian:12/stable [amd64])\n")
    dry, log = _run(build_deps.run_install, fake_apt, dry_run=True, packages=["gcc", "cpp"])
    # libfoo1 is Multi-Arch: same: named as dpkg and the real run name it
    assert dry["install"] == ["cpp", "libfoo1:amd64"] and dry["upgrade"] == ["gcc"]
    assert dry["install_bytes"] == (7 + 9) * 1024 and dry["upgrade_bytes"] == 50 * 1024
    assert "would install: cpp\n" in log and "would upgrade: gcc\n" in log
    assert "would install: gcc" not in log
    assert "would install 2 packages (16.0 KiB), upgrade 1 package (dry run)" in log
    real, log = _run(build_deps.run_install, fake_apt, dry_run=False, packages=["gcc", "cpp"])
    assert real["installed"] == dry["install"] and real["upgraded"] == dry["upgrade"]
    for key in ("install_bytes", "upgrade_bytes", "change_bytes"):
        assert real[key.replace("install_", "installed_").replace("upgrade_", "upgraded_")] \
            == dry[key], key


def test_install_is_a_library_function_returning_what_it_did(fake_apt, monkeypatch):
    # No argparse namespace: keyword arguments in, an outcome out (the adapter renders it).
    monkeypatch.setattr(builddeps, "lists_present", lambda root: True)
    SIMULATION["output"] = "Inst cpp (4:12.2.0-4 Debian:12/stable [amd64])\n"
    log = io.StringIO()
    out = Output(stdout=log, stderr=log)
    dry = builddeps.install(root=fake_apt, out=out, packages=("cpp",), dry_run=True)
    assert dry.dry_run and dry.simulated and dry.requested == ["cpp"]
    assert dry.change.installed == ["cpp"] and dry.change.installed_bytes == 7 * 1024
    assert log.getvalue().splitlines()[-1] == "would install: cpp"   # no summary line yet
    assert builddeps.read_state(fake_apt, builddeps.STATE_FILE) is None   # nothing saved
    real = builddeps.install(root=fake_apt, out=out, packages=["cpp"])
    # no extended_states in the root: every package of PURGE_STATUS is manual
    assert not real.dry_run and real.saved_manual == ["dpkg", "gcc", "libc6:i386", "libpq-dev",
                                                      "libpq5", "tzdata"]
    assert builddeps.read_state(fake_apt, builddeps.STATE_FILE)["requested"] == ["cpp"]
