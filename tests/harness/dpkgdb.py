"""A small hand-written dpkg database (status, *.list, diversions, apt's extended_states).

The expected facts of each test are worked out by hand from these files, not
from pyimgtools.dpkg: libc6 for amd64 and i386 (Multi-Arch: same), tzdata
(Multi-Arch: foreign), a diversion of /usr/bin/pg_config by postgresql-common, a
local diversion, a config-files-only package. `make_db` lays them out under a
usrmerged (or not) root and returns pyimgtools.dpkg's Database on it. Shared by
tests/unit/test_dpkg.py and test_debian_model.py.
"""

import os

from pyimgtools.dpkg import Database
from pyimgtools.fs import Root

STATUS = b"""\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12988
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u9
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Status: not a field

Package: libc6
Status: install ok installed
Installed-Size: 12000
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u9

Package: dpkg
Essential: yes
Status: install ok installed
Priority: required
Installed-Size: 6000
Architecture: amd64
Version: 1.21.22

Package: libstdc++6
Status: install ok installed
Installed-Size: 2600
Architecture: amd64
Multi-Arch: same
Version: 12.2.0-14

Package: tzdata
Status: install ok installed
Installed-Size: 3000
Architecture: all
Multi-Arch: foreign
Version: 2024a-0+deb12u1

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: postgresql-common
Status: install ok installed
Architecture: all
Version: 248

Package: libpq-dev
Status: install ok installed
Architecture: amd64
Version: 15.8-0+deb12u1
"""

LISTS = {
    "libc6:amd64": ["/.", "/lib", "/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu/libc.so.6",
                    "/lib/x86_64-linux-gnu/libm.so.6", "/lib64", "/lib64/ld-linux-x86-64.so.2"],
    "libc6:i386": ["/.", "/lib", "/lib/i386-linux-gnu", "/lib/i386-linux-gnu/libc.so.6"],
    "dpkg": ["/.", "/usr", "/usr/bin", "/usr/bin/dpkg"],
    "libstdc++6:amd64": ["/.", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                         "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"],
    "tzdata": ["/.", "/usr/share/zoneinfo/UTC"],
    "postgresql-common": ["/.", "/usr/bin/pg_config"],
    "libpq-dev": ["/.", "/usr/bin/pg_config", "/usr/lib/x86_64-linux-gnu/libpq.so"],
    # a list without a trailing newline, and a basename that is a substring of another
    "oddball": ["/.", "/usr/lib/x86_64-linux-gnu/xlibc.so.6"],
}

DIVERSIONS = b"/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\n" \
             b"/usr/bin/dpkg\n/usr/bin/dpkg.local\n:\n"

EXTENDED = b"""\
Package: libstdc++6
Architecture: amd64
Auto-Installed: 1

Package: tzdata
Architecture: amd64
Auto-Installed: 1

Package: dpkg
Architecture: amd64
Auto-Installed: 0
"""


def make_db(tmp_path, usrmerge=True, lists=LISTS, status=STATUS, diversions=DIVERSIONS):
    root = tmp_path / "root"
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "usr/lib/i386-linux-gnu").mkdir(parents=True)
    (root / "usr/lib64").mkdir(parents=True)
    if usrmerge:
        os.symlink("usr/lib", str(root / "lib"))
        os.symlink("usr/lib64", str(root / "lib64"))
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_bytes(status)
    (root / "var/lib/dpkg/diversions").write_bytes(diversions)
    for name, paths in lists.items():
        data = "\n".join(paths) + ("" if name == "oddball" else "\n")
        (info / (name + ".list")).write_bytes(os.fsencode(data))
    (info / "dpkg.md5sums").write_bytes(b"0123 usr/bin/dpkg\n")
    (root / "var/lib/apt").mkdir(parents=True)
    (root / "var/lib/apt/extended_states").write_bytes(EXTENDED)
    return Database(Root(str(root)))
