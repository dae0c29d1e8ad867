"""The unit and system layers under a Python of a Debian rootfs (sid's 3.14, 3.15; trixie's 3.13).

    python -m tests.harness.rootfs_pytest SUITE [--junit-dir DIR] PYTHON ... [-- PYTEST ARGS]

runs `pytest -m "unit or system"` under SUITE's /usr/bin/PYTHON (e.g. `sid
python3.14 python3.15`), one after the other, inside one fresh copy of the
suite's rootfs (DIR gets junit files sid-3.14.xml ...): the packages the
tests need are installed in the cached tarball, this checkout is bind-mounted
read-only at /src, and a venv gets the test requirements from wheels that
`pip download` fetched on the host (pip inside the rootfs cannot reach the
index). The system layer then compares with the rootfs's own dpkg database
and ELF files; tests that need this host (its pyenv CPythons) are skipped by
tests/conftest.py (PYIMGTOOLS_TEST_ROOTFS). Exit status 1 if any run failed.

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
# modules for the test venv. sid's are installed on top of rootfs.SID_PYTHONS,
# which the integration tests use as it is. {suite: (base, packages)}
TOOLCHAIN = ("gcc", "libc6-dev", "zlib1g-dev")
PACKAGES = {
    "sid": (rootfs.SID_PYTHONS,
            rootfs.SID_PYTHONS + TOOLCHAIN + ("python3.14-venv", "python3.15-venv")),
    "trixie": ((), TOOLCHAIN + ("python3.13-venv",)),
}


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


def run(suite, pythons, pytest_args, junit_dir=None):
    """Run the layers under each of `pythons` in turn, in one copy of the rootfs;
    returns {python: pytest's exit status}."""
    tarball(suite)
    wheels = {python: wheelhouse(python) for python in pythons}
    base, packages = PACKAGES[suite]
    status = {}
    with rootfs.Chroot(suite, packages, tmpfs=True) as c:
        _bind(REPO, c.host("/src"), readonly=True)
        for python in pythons:
            print("=== unit and system tests under %s's /usr/bin/%s (%s rootfs)"
                  % (suite, python, suite), flush=True)
            venv = "/opt/venv-" + _version(python)
            if not os.path.exists(c.host("/usr/bin/" + python)):
                # the package list has it: only a broken archive or tarball gets here
                print("FAILED: %s has no /usr/bin/%s" % (suite, python))
                status[python] = 1
                continue
            _bind(wheels[python], c.host("/wheels/" + python), readonly=True)
            c.run("/usr/bin/%s -m venv %s && %s/bin/python -m pip install -q "
                  "--disable-pip-version-check --no-index --find-links /wheels/%s "
                  "-r /src/tests/requirements.txt" % (python, venv, venv, python), capture=False)
            env = {"PYIMGTOOLS_TEST_SECONDARY": "1", "PYIMGTOOLS_TEST_ROOTFS": suite,
                   "PYTHONDONTWRITEBYTECODE": "1",        # /src is read-only
                   "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/hypothesis"}
            if "CI" in os.environ:
                env["CI"] = os.environ["CI"]
            junit = "/tmp/junit-%s.xml" % python
            args = [venv + "/bin/python", "-m", "pytest", "-p", "no:cacheprovider",
                    "-m", "unit or system", "--junitxml", junit]
            proc = c.run(args + list(pytest_args), check=False, env=env, cwd="/src",
                         capture=False, timeout=3600)
            status[python] = proc.returncode
            if junit_dir and os.path.exists(c.host(junit)):
                shutil.copyfile(c.host(junit),
                                os.path.join(junit_dir, "%s-%s.xml" % (suite, _version(python))))
    return status


def main(argv):
    """prepare SUITE PYTHON... | SUITE [--junit-dir DIR] PYTHON... [-- PYTEST ARGS]"""
    if argv[:1] == ["prepare"]:
        tarball(argv[1])
        for python in argv[2:]:
            wheelhouse(python)
        return 0
    suite, rest = argv[0], argv[1:]
    junit_dir = None
    if rest[:1] == ["--junit-dir"]:
        junit_dir, rest = rest[1], rest[2:]
    pythons, pytest_args = rest, []
    if "--" in rest:
        pythons, pytest_args = rest[:rest.index("--")], rest[rest.index("--") + 1:]
    status = run(suite, pythons, pytest_args, junit_dir)
    # 5: the arguments selected no test (scripts/test counts that as passed)
    failed = [p for p, rc in status.items() if rc not in (0, 5)]
    for python in failed:
        print("FAILED: the unit and system tests under %s's %s (pytest exit %d)"
              % (suite, python, status[python]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
