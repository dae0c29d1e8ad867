"""The unit and system layers under a Python of a Debian rootfs (Debian sid's 3.14 and 3.15).

    python -m tests.harness.rootfs_pytest SUITE PYTHON [--junitxml FILE] [PYTEST ARGS ...]

runs `pytest -m "unit or system"` under SUITE's /usr/bin/PYTHON (e.g. `sid
python3.14`) inside a fresh copy of the suite's rootfs: the packages the
tests need are installed in the cached tarball, this checkout is bind-mounted
read-only at /src, and a venv gets the test requirements from wheels that
`pip download` fetched on the host (pip inside the rootfs cannot reach the
index). The system layer then compares with the rootfs's own dpkg database
and ELF files; tests that need this host (its pyenv CPythons) are skipped by
tests/conftest.py (PYIMGTOOLS_TEST_ROOTFS). Exit status: pytest's.

`prepare SUITE PYTHON ...` only builds the tarball and the wheels (scripts/test
starts it early: it waits on the network, not the CPU).
"""

import hashlib
import os
import shutil
import subprocess
import sys

from tests.harness import rootfs
from tests.harness.prereq import CACHE_DIR

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIREMENTS = os.path.join(REPO, "tests", "requirements.txt")

# What the unit and system layers run besides Python: gcc, libc6-dev and
# zlib1g-dev for the loader-rule and keep tests (they link -lz), the venv
# modules for the test venv. Installed on top of rootfs.SID_PYTHONS, which
# the integration tests use as it is.
SID_TEST_EXTRAS = ("gcc", "libc6-dev", "zlib1g-dev", "python3.14-venv", "python3.15-venv")
PACKAGES = {"sid": (rootfs.SID_PYTHONS, rootfs.SID_PYTHONS + SID_TEST_EXTRAS)}


def tarball(suite):
    base, packages = PACKAGES[suite]
    return rootfs.rootfs_tarball(suite, packages, base=base)


def _version(python):
    return python[len("python"):]


def wheelhouse(python):
    """Host directory with the test requirements' wheels for `python` ('python3.14')."""
    with open(REQUIREMENTS, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:12]
    version = _version(python)
    top = os.path.join(CACHE_DIR, "wheelhouse-tests")
    path = os.path.join(top, "%s-%s" % (version, key))
    with rootfs._locked(os.path.join(top, version + ".lock")):
        if rootfs._fresh(path + "/.done"):
            return path
        shutil.rmtree(path, ignore_errors=True)
        # --only-binary with --python-version: wheels for that version, never
        # a source build on the host.
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--only-binary=:all:", "--python-version", version, "-d", path,
                        "-r", REQUIREMENTS], check=True, stdout=sys.stderr)
        open(path + "/.done", "w").close()
    return path


def _bind(src, dst, readonly):
    os.makedirs(dst, exist_ok=True)
    subprocess.run(["mount", "--bind", src, dst], check=True)
    if readonly:
        subprocess.run(["mount", "-o", "remount,bind,ro", dst], check=True)


def run(suite, python, pytest_args, junitxml=None):
    tarball(suite)
    wheels = wheelhouse(python)
    base, packages = PACKAGES[suite]
    with rootfs.Chroot(suite, packages) as c:
        _bind(REPO, c.host("/src"), readonly=True)
        _bind(wheels, c.host("/wheels"), readonly=True)
        c.run("/usr/bin/%s -m venv /opt/venv && /opt/venv/bin/python -m pip install -q "
              "--disable-pip-version-check --no-index --find-links /wheels -r /src/tests/requirements.txt"
              % python, capture=False)
        env = {"PYIMGTOOLS_TEST_SECONDARY": "1", "PYIMGTOOLS_TEST_ROOTFS": suite,
               "PYTHONDONTWRITEBYTECODE": "1",        # /src is read-only
               "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/hypothesis"}
        if "CI" in os.environ:
            env["CI"] = os.environ["CI"]
        args = ["/opt/venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider",
                "-m", "unit or system"]
        if junitxml:
            args.append("--junitxml=/tmp/junit.xml")
        proc = c.run(args + list(pytest_args), check=False, env=env, cwd="/src", capture=False,
                     timeout=3600)
        if junitxml and os.path.exists(c.host("/tmp/junit.xml")):
            shutil.copyfile(c.host("/tmp/junit.xml"), junitxml)
        return proc.returncode


def main(argv):
    if argv[:1] == ["prepare"]:
        suite, pythons = argv[1], argv[2:]
        tarball(suite)
        for python in pythons:
            wheelhouse(python)
        return 0
    suite, python, rest = argv[0], argv[1], argv[2:]
    junitxml = None
    if rest[:1] == ["--junitxml"]:
        junitxml, rest = rest[1], rest[2:]
    return run(suite, python, rest, junitxml)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
