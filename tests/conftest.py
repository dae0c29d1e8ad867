"""Test layers (CONVENTIONS.md): unit, system, integration, selected by marker.

A test's layer is the directory it lives in; `-m unit`, `-m "unit or system"`
and `-m integration` select them. `main_only` marks tests that need to run
once per `scripts/test`, not once per Python version (scripts/test sets
PYIMGTOOLS_TEST_SECONDARY=1 for the extra interpreters). `host_only` marks
tests that need this host itself (its pyenv CPythons): inside a Debian rootfs
(tests/harness/rootfs_pytest.py sets PYIMGTOOLS_TEST_ROOTFS=SUITE) they are
selected out, not failed.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("unit", "system", "integration")
SECONDARY = os.environ.get("PYIMGTOOLS_TEST_SECONDARY") == "1"
ROOTFS = os.environ.get("PYIMGTOOLS_TEST_ROOTFS")


def pytest_configure(config):
    for layer, text in (("unit", "pure functions and plans on small fixtures; no root"),
                        ("system", "read-only runs against this machine's dpkg database and ELF files"),
                        ("integration", "root only: debootstrapped chroots and buildah images"),
                        ("main_only", "run once per scripts/test, under the main interpreter"),
                        ("host_only", "needs this host (its pyenv CPythons); not run inside a rootfs")):
        config.addinivalue_line("markers", "%s: %s" % (layer, text))


def pytest_sessionstart(session):
    # Chroot copies left mounted by a run that was killed (main run only: the
    # secondary interpreters run no integration tests).
    if os.geteuid() == 0 and not SECONDARY:
        from tests.harness.rootfs import cleanup_stale_work
        cleanup_stale_work()


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = os.path.relpath(str(item.fspath), os.path.join(REPO, "tests"))
        layer = rel.split(os.sep)[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
        if SECONDARY and item.get_closest_marker("main_only"):
            item.add_marker(pytest.mark.skip(reason="runs once, under the main interpreter"))
        elif ROOTFS and item.get_closest_marker("host_only"):
            item.add_marker(pytest.mark.skip(reason="needs the host, not the %s rootfs" % ROOTFS))


def run_cli(*args, python=None, input=None, env=None, cwd=None):
    """Run `python -m pyimgtools ARGS` from this checkout; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = REPO
    full_env.update(env or {})
    return subprocess.run([python or sys.executable, "-m", "pyimgtools"] + [str(a) for a in args],
                          capture_output=True, text=True, input=input, env=full_env, cwd=cwd)


@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    """dist-like pyimgtools.pyz built by scripts/build-pyz for this session."""
    out = tmp_path_factory.mktemp("pyz") / "pyimgtools.pyz"
    subprocess.run([os.path.join(REPO, "scripts", "build-pyz"), str(out)], check=True,
                   capture_output=True, env=dict(os.environ, PYTHON=sys.executable))
    return str(out)


@pytest.fixture
def builder():
    """A buildah Builder whose images and containers are removed after the test."""
    from tests.harness.prereq import require_root, require_tools
    require_root()
    require_tools("buildah", "debootstrap")
    from tests.harness.buildah import Builder
    b = Builder()
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def chroot_factory():
    """make(suite, packages=()) -> an entered Chroot; all are torn down after the test."""
    from tests.harness.prereq import require_root, require_tools
    require_root()
    require_tools("debootstrap", "chroot")
    from tests.harness.rootfs import Chroot
    made = []

    def make(suite, packages=()):
        c = Chroot(suite, packages).__enter__()
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.__exit__(None, None, None)
