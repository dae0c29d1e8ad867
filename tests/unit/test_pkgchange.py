"""pkgchange: a dry run's predicted database and the real one go through the same diff."""

from pyimgtools import apt, dpkg, pkgchange

BEFORE = dpkg.parse_status(b"""\
Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21
Installed-Size: 100

Package: libssl3
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 3.0.1
Installed-Size: 6000

Package: oldtool
Status: install ok installed
Architecture: all
Version: 1
Installed-Size: 30
""")

SIMULATION = """\
NOTE: This is only a simulation!
Remv oldtool [1]
Inst libssl3 [3.0.1] (3.0.2 Debian-Security:12/stable-security [amd64])
Inst libpq5 (15.8 Debian:12/stable [amd64])
Inst libfoo1:i386 (2.0 Debian:12/stable [i386])
Conf libpq5 (15.8 Debian:12/stable [amd64])
"""

SHOW = {
    "libssl3=3.0.2": "Package: libssl3\nArchitecture: amd64\nMulti-Arch: same\nVersion: 3.0.2\n"
                     "Installed-Size: 6010\nDescription: ssl\n lines\n .\n more\n",
    "libpq5=15.8": "Package: libpq5\nArchitecture: amd64\nMulti-Arch: same\nVersion: 15.8\n"
                   "Installed-Size: 900\n",
    "libfoo1:i386=2.0": "Package: libfoo1\nArchitecture: i386\nMulti-Arch: same\nVersion: 2.0\n"
                        "Installed-Size: 5\n",
}


def test_parse_simulation():
    installs, removals = pkgchange.parse_simulation(SIMULATION)
    assert installs == [("libssl3", "3.0.2"), ("libpq5", "15.8"), ("libfoo1:i386", "2.0")]
    assert removals == ["oldtool"]


def test_predicted_change_is_the_real_change(monkeypatch):
    asked = []

    def apt_cache(args, root=None):
        asked.append(args)
        return "\n".join(SHOW[a] for a in args[1:])

    monkeypatch.setattr(apt, "apt_cache", apt_cache)
    installs, removals = pkgchange.parse_simulation(SIMULATION)
    predicted = pkgchange.predict(BEFORE, "amd64", installs, removals)
    assert asked == [["show", "libssl3=3.0.2", "libpq5=15.8", "libfoo1:i386=2.0"]]
    change = pkgchange.diff(BEFORE, predicted)
    # named as dpkg and apt-mark name them (Multi-Arch: same with :arch)
    assert change.installed == ["libfoo1:i386", "libpq5:amd64"]
    assert change.upgraded == ["libssl3:amd64"]
    assert change.removed == ["oldtool"]
    assert (change.installed_bytes, change.upgraded_bytes, change.removed_bytes) == (
        905 * 1024, 6010 * 1024, 30 * 1024)
    assert change.change_bytes == (905 + 10 - 30) * 1024

    # what dpkg records after the real run: the same lists and totals
    after = dpkg.parse_status(b"""\
Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21
Installed-Size: 100

Package: libssl3
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 3.0.2
Installed-Size: 6010

Package: libpq5
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 15.8
Installed-Size: 900

Package: libfoo1
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.0
Installed-Size: 5
""")
    assert pkgchange.diff(BEFORE, after) == change


def test_a_version_apt_cache_does_not_show_still_counts(monkeypatch):
    monkeypatch.setattr(apt, "apt_cache", lambda args, root=None: "")
    predicted = pkgchange.predict(BEFORE, "amd64", [("newpkg", "1.0")], [])
    change = pkgchange.diff(BEFORE, predicted)
    assert change.installed == ["newpkg"] and change.installed_bytes == 0
