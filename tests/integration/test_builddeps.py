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

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, run_cli
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
    dry_doc = json.loads(root.run(PYIMGTOOLS + " --json build-deps purge --dry-run "
                                  "--keep-runtime /opt/venv").stdout)

    proc = root.run(PYIMGTOOLS + " --json build-deps purge --keep-runtime /opt/venv")
    real_doc = json.loads(proc.stdout)
    assert "build-deps purge: removed" in proc.stderr
    # issue 14 item 9: the dry run's list and byte total are the real run's
    assert dry_doc["remove"] == real_doc["removed"]
    assert abs(dry_doc["remove_bytes"] - real_doc["removed_bytes"]) <= 0.05 * real_doc["removed_bytes"]
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


RL_LIB = r"""
#include <stdio.h>
#include <readline/readline.h>
int rlwrap_version(void) { return rl_readline_version; }
"""
RL_MAIN = r"""
int rlwrap_version(void);
int main(void) { return rlwrap_version() > 0 ? 0 : 1; }
"""


def test_trixie_purge_after_make_install_keeps_readline(chroot_factory):
    """Issue 12, items 4 and 5, as a user of the official recipe meets them on trixie.

    A build links libreadline into /usr/local (as CPython's readline module does)
    and installs a library into /usr/local/lib, without ldconfig; the manual set
    was saved before the build dependencies. libreadline8t64 ships the
    /usr/lib spelling and diverts the /lib one to *.usr-is-merged, and the
    loader finds the /lib one. pyimgtools runs from outside (--root): the
    rootfs has no Python of its own, as the official images' builder has
    none but the one it builds.
    """
    root = chroot_factory("trixie")
    root.run("apt-mark showmanual > /root/manual.txt")
    assert not installed(root, "libreadline8t64")
    root.apt_install("gcc", "libc6-dev", "libreadline-dev")
    with open(root.host("/tmp/rl.c"), "w") as f:
        f.write(RL_LIB)
    with open(root.host("/tmp/main.c"), "w") as f:
        f.write(RL_MAIN)
    root.run("gcc -shared -fPIC -Wl,-soname,librlwrap.so.1 -o /usr/local/lib/librlwrap.so.1 "
             "/tmp/rl.c -lreadline && "
             "gcc -o /usr/local/bin/rlprog /tmp/main.c -L/usr/local/lib -l:librlwrap.so.1 && "
             "gcc -o /usr/local/bin/rldirect /tmp/rl.c /tmp/main.c -lreadline")
    assert "librlwrap" not in root.run("ldconfig -p").stdout      # no ldconfig: stale cache
    # dpkg's own answer for the file the loader opens (the reference):
    search = root.run("dpkg-query --search '*lib/x86_64-linux-gnu/libreadline.so.8'").stdout
    assert "diversion by libreadline8t64" in search
    assert "libreadline8t64:amd64: /usr/lib/x86_64-linux-gnu/libreadline.so.8" in search

    printed = run_cli("--root", root.path, "keep", "--print", "/usr/local/bin/rldirect")
    assert printed.returncode == 0, printed.stderr
    assert "libreadline8t64:amd64" in printed.stdout.split()
    assert "belongs to no package" not in printed.stderr

    purge = ["--root", root.path, "build-deps", "purge", "--saved", root.host("/root/manual.txt"),
             "--keep-runtime", "/usr/local"]
    dry = run_cli(*(purge + ["--dry-run"]))
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    notice = [l for l in lines if "ldconfig" in l]
    assert len(notice) == 1 and notice[0].startswith(
        "/etc/ld.so.cache lacks 1 library of the /etc/ld.so.conf directories "
        "(/usr/local/lib/librlwrap.so.1): would run "), dry.stdout
    assert notice[0].endswith("ldconfig -r " + root.path)
    # dpkg names a Multi-Arch: same package with its architecture (trixie's
    # libreadline-dev 8.2-6 is one, CI saw "libreadline-dev:amd64"): compare names.
    would = {l.split(": ", 1)[1].split(":")[0] for l in lines if l.startswith("would remove: ")}
    assert {"gcc", "libreadline-dev"} <= would
    assert not {w for w in would if w.startswith("libreadline8")}, would
    assert installed(root, "gcc")                      # the dry run changed nothing
    assert "librlwrap" not in root.run("ldconfig -p").stdout

    before = set(root.run("dpkg-query -W -f '${binary:Package}\\n'").stdout.split())
    proc = run_cli(*purge)
    assert proc.returncode == 0, proc.stderr
    after = set(root.run("dpkg-query -W -f '${binary:Package}\\n'").stdout.split())
    assert {p.split(":")[0] for p in before - after} == would
    assert installed(root, "libreadline8t64")
    assert not installed(root, "gcc")
    assert "librlwrap.so.1" in root.run("ldconfig -p").stdout      # ldconfig ran
    for prog in ("/usr/local/bin/rlprog", "/usr/local/bin/rldirect"):
        ldd = root.run(["ldd", prog]).stdout
        assert "not found" not in ldd and "libreadline.so.8" in ldd, ldd
        root.run([prog])                       # our own test program: it loads and runs
    # idempotent: nothing stale any more
    again = run_cli("--root", root.path, "keep", "--dry-run", "/usr/local")
    assert again.returncode == 0, again.stderr
    assert "ldconfig" not in again.stdout
