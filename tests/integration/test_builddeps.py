"""build-deps install / purge in real Debian chroots (bookworm, trixie).

The flow of the issue: Debian's python3 and python3-venv first; then
`build-deps install gcc python3-dev libpq-dev`; psycopg2 built from source
into a venv; `build-deps purge --keep-runtime /opt/venv`. Afterwards gcc and
libpq-dev are gone, libpq5 stays and `import psycopg2` works. The control
purges with --keep-runtime pointing elsewhere: libpq5 goes and the import
breaks, which shows the first result is keep's doing, not luck.

pip cannot reach PyPI inside the chroot: the psycopg2 sdist and the
setuptools/wheel wheels its build needs are downloaded on the host into a
cached wheelhouse and installed with --no-index --find-links.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.harness.prereq import CACHE_DIR, require

pytestmark = pytest.mark.main_only

WHEELHOUSE = os.path.join(CACHE_DIR, "wheelhouse-psycopg2")
MAX_AGE = 7 * 24 * 3600
PYIMGTOOLS = "PYTHONPATH=/opt/pyimgtools-src python3 -m pyimgtools"


def wheelhouse():
    """psycopg2 sdist + setuptools and wheel wheels, downloaded on the host once a week."""
    stamp = os.path.join(WHEELHOUSE, ".complete")
    try:
        if time.time() - os.stat(stamp).st_mtime < MAX_AGE:
            return WHEELHOUSE
    except FileNotFoundError:
        pass
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    os.makedirs(WHEELHOUSE)
    for args in (["--no-binary", ":all:", "--no-deps", "psycopg2"],
                 ["--only-binary", ":all:", "--no-deps", "setuptools", "wheel"]):
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", WHEELHOUSE]
                              + args, capture_output=True, text=True)
        require(proc.returncode == 0, "cannot download %s from PyPI: %s"
                % (args[-1], proc.stderr[-500:]))
    open(stamp, "w").close()
    return WHEELHOUSE


def install_pyimgtools(root):
    dest = root.host("/opt/pyimgtools-src")
    shutil.copytree(os.path.join(REPO, "pyimgtools"), os.path.join(dest, "pyimgtools"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def build_psycopg2(root):
    """Everything before the purge; returns nothing, asserts each step."""
    wheels = wheelhouse()
    root.apt_install("python3", "python3-venv")
    install_pyimgtools(root)
    root.run("python3 -m venv /opt/venv")
    proc = root.run(PYIMGTOOLS + " build-deps install gcc python3-dev libpq-dev")
    assert "build-deps install: installed" in proc.stdout
    assert os.path.exists(root.host("/var/lib/pyimgtools/build-deps.json"))
    shutil.copytree(wheels, root.host("/tmp/wheels"))
    root.run("/opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels "
             "--no-binary psycopg2 psycopg2")
    # Built here, from source, against libpq5:
    assert root.run("ls /opt/venv/lib/python3*/site-packages/psycopg2/_psycopg*.so").stdout


def installed(root, package):
    proc = root.run("dpkg-query -W -f '${db:Status-Status}' %s" % package, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "installed"


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_purge_keeps_what_the_venv_needs(chroot_factory, suite):
    root = chroot_factory(suite)
    build_psycopg2(root)
    dry = root.run(PYIMGTOOLS + " build-deps purge --dry-run --keep-runtime /opt/venv")
    lines = dry.stdout.splitlines()
    assert "would remove: gcc" in lines
    assert "would remove: libpq-dev" in lines
    assert "would remove: libpq5" not in lines
    # libpq5 is Multi-Arch: same, so apt-mark gets it as libpq5:amd64
    assert [l for l in lines if l.startswith("keep libpq5:amd64: libpq.so.5 needed by /opt/venv/")], \
        dry.stdout
    assert installed(root, "gcc")           # the dry run changed nothing

    proc = root.run(PYIMGTOOLS + " build-deps purge --keep-runtime /opt/venv")
    assert "build-deps purge: removed" in proc.stdout
    for gone in ("gcc", "libpq-dev", "python3-dev"):
        assert not installed(root, gone), gone
    for kept in ("libpq5", "python3", "python3-venv"):
        assert installed(root, kept), kept
    root.run("/opt/venv/bin/python -c 'import psycopg2; print(psycopg2.__version__)'")
    # the state file is gone, the layer is clean
    assert not os.path.exists(root.host("/var/lib/pyimgtools"))
    assert [n for n in os.listdir(root.host("/var/lib/apt/lists")) if "_Packages" in n] == []
    # a second purge has nothing to go on
    again = root.run(PYIMGTOOLS + " build-deps purge --keep-runtime /opt/venv", check=False)
    assert again.returncode == 1
    assert "no build-deps state" in again.stderr


@pytest.mark.parametrize("suite", ["bookworm"])
def test_control_keep_runtime_elsewhere_breaks_the_import(chroot_factory, suite):
    root = chroot_factory(suite)
    build_psycopg2(root)
    root.run("mkdir -p /srv/empty")
    root.run(PYIMGTOOLS + " build-deps purge --keep-runtime /srv/empty")
    assert not installed(root, "libpq5")
    proc = root.run("/opt/venv/bin/python -c 'import psycopg2'", check=False)
    assert proc.returncode != 0
    assert "libpq.so.5" in proc.stderr


def test_saved_listing_from_shell(chroot_factory):
    """The official recipe's order: apt-mark showmanual saved by shell, no state file."""
    root = chroot_factory("bookworm")
    root.apt_install("python3")
    install_pyimgtools(root)
    root.run("apt-mark showmanual > /tmp/manual.txt && apt-get update -qq && "
             "apt-get install -y -qq --no-install-recommends libpq-dev")
    # a runtime user of libpq5 in /usr/local: a symlink to it is kept as a need
    root.run("mkdir -p /usr/local/lib && ln -s /usr/lib/x86_64-linux-gnu/libpq.so.5 "
             "/usr/local/lib/libpq.so.5")
    proc = root.run(PYIMGTOOLS + " build-deps purge --saved /tmp/manual.txt")
    assert "removed" in proc.stdout
    assert not installed(root, "libpq-dev")
    assert installed(root, "libpq5")
    assert installed(root, "python3")


def test_dockerfile_with_buildah(builder, pyz):
    """examples/build-deps/Dockerfile: the same flow as RUN lines, built by buildah."""
    wheels = wheelhouse()
    extra = {"pyimgtools.pyz": pyz}
    for name in os.listdir(wheels):
        if name.endswith((".whl", ".tar.gz")):
            extra[name] = os.path.join(wheels, name)
    image = builder.build(os.path.join(REPO, "examples", "build-deps"), extra_files=extra)
    proc = builder.run(image, "for p in gcc libpq-dev python3-dev libpq5 python3; do "
                              "printf '%s=' $p; dpkg-query -W -f '${db:Status-Status}' $p 2>/dev/null; "
                              "echo; done; ls /var/lib/apt/lists | grep -c _Packages; "
                              "test -e /var/lib/pyimgtools/build-deps.json && echo state-left || true")
    lines = proc.stdout.split()
    status = dict(l.split("=", 1) for l in lines[:5])
    # purged: unknown to dpkg, or known as not-installed
    assert {p for p, s in status.items() if s == "installed"} == {"libpq5", "python3"}, proc.stdout
    assert lines[5] == "0" and "state-left" not in lines
    builder.run(image, "/opt/venv/bin/python -c 'import psycopg2'")
