"""A sid rootfs with Debian's Python 3.14 and 3.15 and this checkout's pyz (issue 12).

The `sid` fixture (import it into a test module) yields a tests.harness.rootfs.Chroot
of sid with `rootfs.SID_PYTHONS` installed and the pyz at /usr/local/bin/pyimgtools;
`pyimgtools_in` runs that pyz under one of the image's interpreters. Shared by
tests/integration/test_compile_sid.py and test_pytarget_sid.py.
"""

import pytest

from tests.harness.prereq import require_root, require_tools
from tests.harness.rootfs import SID_PYTHONS, Chroot
from tests.harness.stdlib_compile import install_pyz


@pytest.fixture
def sid(pyz):
    require_root()
    require_tools("debootstrap", "chroot")
    with Chroot("sid", SID_PYTHONS) as root:
        install_pyz(root, pyz)
        yield root


def pyimgtools_in(root, python, *args, check=True):
    return root.run([python, "/usr/local/bin/pyimgtools"] + list(args), check=check)
