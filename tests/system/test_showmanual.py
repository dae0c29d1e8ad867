"""build-deps saves the manual set read from dpkg's and apt's files
(Database.showmanual), on --dry-run and for real: it must be what
`apt-mark showmanual` prints on this machine, spelling included."""

import subprocess

from pyimgtools.dpkg import Database
from pyimgtools.fs import Root
from tests.harness.prereq import require_tools


def test_showmanual_matches_apt_mark_showmanual():
    require_tools("apt-mark")
    shown = subprocess.run(["apt-mark", "showmanual"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert Database(Root("/")).showmanual() == sorted(shown)
