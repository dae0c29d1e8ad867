"""Skip-or-fail policy for missing prerequisites.

Locally a missing prerequisite (not root, no buildah, an absent CPython) skips
the test with the reason. With CI=true it fails instead: a green CI must mean
every layer really ran.
"""

import os
import shutil

import pytest

CACHE_DIR = os.environ.get("PYIMGTOOLS_TEST_CACHE", "/var/cache/pyimgtools-tests")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PYENV_VERSIONS = "/root/.pyenv/versions"


def require(condition, reason):
    """Skip (locally) or fail (CI=true) unless `condition` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail("missing prerequisite (CI=true makes this a failure): " + reason, pytrace=False)
    pytest.skip(reason)


def require_root():
    require(os.geteuid() == 0, "needs root (chroot, mount, buildah); run scripts/test as root")


def require_tools(*names):
    for name in names:
        require(shutil.which(name) is not None, "needs %s on PATH (scripts/test installs it as root)" % name)


def pyenv_python(minor):
    """Path of the source-built CPython `minor` ('3.11') under /root/.pyenv, or None."""
    try:
        entries = sorted(os.listdir(PYENV_VERSIONS))
    except OSError:
        return None
    for entry in reversed(entries):
        if entry == minor or entry.startswith(minor + "."):
            exe = os.path.join(PYENV_VERSIONS, entry, "bin", "python" + minor)
            if os.access(exe, os.X_OK):
                return exe
    return None


def require_pyenv_python(minor):
    exe = pyenv_python(minor)
    require(exe is not None, "needs CPython %s under %s" % (minor, PYENV_VERSIONS))
    return exe
