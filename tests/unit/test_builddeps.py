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


# The keep fixture image (tests/unit/test_keep.py), with a cache older than /usr/local/lib.
from tests.unit.test_keep import image, image_template, stale_cache_image  # noqa: E402,F401


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
