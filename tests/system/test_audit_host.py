"""`pyimgtools audit --root /` on this machine: it completes, and findings that
are true here agree with dpkg-query, apt and the file system."""

import glob
import json
import os
import re
import subprocess

import pytest

from tests.conftest import run_cli

# One whole-machine audit per scripts/test run is enough: the unit tests run
# the command under every interpreter.
pytestmark = pytest.mark.main_only


@pytest.fixture(scope="module")
def host_audit():
    proc = run_cli("audit", "--root", "/", "--json", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    return doc, {f["id"]: f for f in doc["findings"]}


def dpkg_installed_size(package):
    """Installed-Size in KiB, or None when the package is not installed."""
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Installed-Size}", package],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.startswith("ii"):
        return None
    return int(proc.stdout.split()[-1])


def test_every_check_ran(host_audit):
    doc, _ = host_audit
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert "failed" not in status.values(), status
    for check in ("two-pythons", "stdlib-bytecode", "package-manager-leftovers", "build-tools",
                  "broken-metadata", "ca-certificates", "security-updates", "unresolved-libs",
                  "dead-weight"):
        assert status[check] in ("clean", "found"), (check, status[check])


def test_two_pythons_pyenv_and_debian(host_audit):
    _, found = host_audit
    expected = []
    if os.path.exists("/usr/lib/python3.11/os.py") and dpkg_installed_size("python3.11-minimal"):
        expected.append("/usr/bin/python3.11")
    for prefix in glob.glob("/root/.pyenv/versions/*"):
        for lib in glob.glob(prefix + "/lib/python*.*"):
            m = re.search(r"/python(\d+\.\d+)$", lib)
            if m and os.path.exists(lib + "/os.py") and os.path.exists(prefix + "/bin/python" + m.group(1)):
                expected.append(prefix + "/bin/python" + m.group(1))
    if len(expected) < 2:
        pytest.skip("this machine has fewer than two Python installations")
    assert "/usr/bin/python3.11" in expected
    assert sorted(found["two-pythons"]["paths"]) == sorted(expected)


def test_build_tools_with_installed_size(host_audit):
    _, found = host_audit
    sizes = {p: dpkg_installed_size(p) for p in ("gcc-12", "make", "cpp-12", "libc6-dev")}
    sizes = {p: s for p, s in sizes.items() if s is not None}
    if not sizes:
        pytest.skip("no compiler installed here")
    got = {p["package"].split(":")[0]: p["installed_bytes"]
           for p in found["build-tools"]["data"]["packages"]}
    for name, kib in sizes.items():
        assert got[name] == kib * 1024, name
    assert "gcc-12-base" not in got


def test_apt_lists_and_security_updates(host_audit):
    _, found = host_audit
    files = [os.path.join(d, n) for d, _, ns in os.walk("/var/lib/apt/lists") for n in ns
             if n != "lock" and os.path.isfile(os.path.join(d, n))
             and not os.path.islink(os.path.join(d, n))]
    if not files:
        assert "apt-lists" not in found
        assert "security-updates-unknown" in found
        return
    assert found["apt-lists"]["bytes"] == sum(os.path.getsize(f) for f in files)
    out = subprocess.run(["apt", "list", "--upgradable"], capture_output=True, text=True).stdout
    apt_says = {line.split("/", 1)[0] for line in out.splitlines() if "-security" in line.split(" ")[0]}
    pending = {p["package"].split(":")[0]
               for p in found.get("security-updates", {"data": {"pending": []}})["data"]["pending"]}
    assert apt_says <= pending
