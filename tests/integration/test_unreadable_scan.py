"""A directory root cannot read (issue 14 item 4): root without CAP_DAC_READ_SEARCH
and CAP_DAC_OVERRIDE (setpriv), a 0700 directory of another user in /usr/local
holding an ELF file whose library is missing. keep and build-deps purge stop
(exit 1) unless --allow-unreadable; audit reports a `not-checked` finding.

The control (full root) shows the hidden file matters: keep finds its missing
library and audit reports unresolved-libs.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.harness.prereq import require_root, require_tools
from tests.unit.test_keep import gcc, image, image_template, program  # noqa: F401

NOBODY = 65534
DROP = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_read_search,-dac_override"]


@pytest.fixture
def hidden(image, tmp_path):
    require_root()
    require_tools("setpriv", "gcc")
    build = tmp_path / "build"
    build.mkdir()
    src = build / "gone.c"
    src.write_text("int gone(void) { return 0; }\n")
    gcc("-shared", "-Wl,-soname,libgone.so.1", "-o", str(build / "libgone.so.1"), str(src))
    secret = image / "usr/local/secret"
    secret.mkdir()
    program(secret / "tool", str(build / "libgone.so.1"))   # libgone.so.1 is not in the image
    os.chown(str(secret / "tool"), NOBODY, NOBODY)
    os.chown(str(secret), NOBODY, NOBODY)
    os.chmod(str(secret), 0o700)
    # pytest's tmp directories are root's own 0700 ones: reachable without the capabilities
    return image


def cli(*args, drop=True):
    env = dict(os.environ, PYTHONPATH=REPO)
    argv = (DROP if drop else []) + [sys.executable, "-m", "pyimgtools"] + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def test_the_capabilities_are_really_gone(hidden):
    proc = subprocess.run(DROP + ["ls", str(hidden / "usr/local/secret")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr, proc.stderr


def test_control_with_full_root_finds_the_missing_library(hidden):
    proc = cli("--root", hidden, "keep", "--dry-run", drop=False)
    assert proc.returncode == 1
    assert "libgone.so.1: needed by /usr/local/secret/tool: not found" in proc.stderr


def test_keep_stops_unless_allowed(hidden):
    for args in (["--dry-run"], [], ["--print"]):
        proc = cli("--root", hidden, "keep", *args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert ("pyimgtools: error: /usr/local/secret: cannot list: Permission denied"
                in proc.stderr.splitlines())
        assert proc.stderr.splitlines()[-1].startswith(
            "pyimgtools: error: 1 path under /usr/local cannot be read")
        assert "Traceback" not in proc.stderr
    proc = cli("--root", hidden, "keep", "--dry-run", "--allow-unreadable")
    assert proc.returncode == 0, proc.stderr
    assert ("pyimgtools: warning: /usr/local/secret: cannot list: Permission denied (not scanned)"
            in proc.stderr)


def test_build_deps_purge_stops_unless_allowed(hidden):
    listing = hidden / "manual.txt"
    listing.write_text("libbaz3\n")
    proc = cli("--root", hidden, "build-deps", "purge", "--dry-run", "--saved", listing)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        "pyimgtools: error: 1 path under /usr/local cannot be read")
    proc = cli("--root", hidden, "--json", "build-deps", "purge", "--dry-run", "--saved", listing)
    assert json.loads(proc.stdout)["keep"]["unreadable"] == [
        "/usr/local/secret: cannot list: Permission denied"]


def _only_libraries():
    from pyimgtools.audit import checks as audit_checks
    others = sorted(audit_checks.known_ids() - {"unresolved-libs", "not-checked"})
    return [a for i in others for a in ("--ignore", i)]


def test_audit_reports_not_checked(hidden):
    only = _only_libraries()
    proc = cli("--root", hidden, "--json", "audit", *only)
    assert proc.returncode == 100, proc.stderr
    doc = json.loads(proc.stdout)
    found = {f["id"]: f for f in doc["findings"]}
    assert sorted(found) == ["not-checked"]
    assert found["not-checked"]["severity"] == "error"
    assert found["not-checked"]["paths"] == ["/usr/local/secret"]
    assert found["not-checked"]["evidence"] == ["/usr/local/secret: cannot list: Permission denied"]
    assert cli("--root", hidden, "audit", "--fail-on", "never", *only).returncode == 0
    assert cli("--root", hidden, "audit", "--ignore", "not-checked", *only).returncode == 0
    # the control: with the rights, the file is checked and cannot load
    proc = cli("--root", hidden, "--json", "audit", *only, drop=False)
    assert proc.returncode == 100, proc.stderr
    assert [f["id"] for f in json.loads(proc.stdout)["findings"]] == ["unresolved-libs"]


# -- the other walks of audit (issue 14 item 4's rule for every walk) ---------------

WALKS = ("broken-metadata", "stdlib-bytecode", "site-bytecode", "package-manager-leftovers")


def _only(check_ids):
    from pyimgtools.audit import checks as audit_checks
    wanted = {"not-checked"}
    for c in audit_checks.CHECKS:
        if c.id in check_ids:
            wanted.add(c.id)
            wanted.update(c.ids)
    return [a for i in sorted(audit_checks.known_ids() - wanted) for a in ("--ignore", i)]


def _secret(path):
    """A 0700 directory of another user (root needs the dropped capabilities to list it)."""
    for dirpath, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), NOBODY, NOBODY)
    os.chown(str(path), NOBODY, NOBODY)
    os.chmod(str(path), 0o700)


@pytest.fixture
def walks(hidden):
    """Behind 0700 directories of nobody: a dangling symlink and a .dist-info without
    RECORD (the whole-tree walk), a module without .pyc in a Python's stdlib and one in
    its site-packages (the bytecode walks), a directory where a Python may be (the search
    for installations), a file in pip's cache (the leftovers' sizes)."""
    srv = hidden / "srv/secret"
    (srv / "demo-1.0.dist-info").mkdir(parents=True)
    (srv / "demo-1.0.dist-info/METADATA").write_text("Name: demo\n")
    os.symlink("/nowhere/at/all", str(srv / "dangling"))
    _secret(srv)
    stdlib = hidden / "usr/local/lib/python3.11"
    (stdlib / "secretpkg").mkdir(parents=True, exist_ok=True)
    (stdlib / "os.py").write_text("# os\n")
    (stdlib / "secretpkg/mod.py").write_text("x = 1\n")
    _secret(stdlib / "secretpkg")
    site = stdlib / "site-packages/hiddenpkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("y = 2\n")
    _secret(site)
    (hidden / "opt/secretpy/lib/python3.12").mkdir(parents=True)   # a Python that may be there
    _secret(hidden / "opt/secretpy")
    cache = hidden / "root/.cache/pip"
    (cache / "http").mkdir(parents=True)
    (cache / "seen").write_bytes(b"s" * 1000)
    (cache / "http/blob").write_bytes(b"b" * 50000)
    _secret(cache / "http")
    return hidden


def test_audit_walks_report_what_they_cannot_read(walks):
    only = _only(WALKS)
    # the control, with the rights: each hidden thing is found
    proc = cli("--root", walks, "--json", "audit", *only, drop=False)
    assert proc.returncode == 0, proc.stderr        # warnings only
    found = {f["id"]: f for f in json.loads(proc.stdout)["findings"]}
    assert "not-checked" not in found
    assert "/srv/secret/dangling" in found["dangling-symlinks"]["paths"]
    assert "/srv/secret/demo-1.0.dist-info" in found["broken-dist-info"]["paths"]
    assert "/usr/local/lib/python3.11/secretpkg/mod.py" in found["stdlib-missing-pyc"]["paths"]
    assert ("/usr/local/lib/python3.11/site-packages/hiddenpkg/__init__.py"
            in found["site-missing-pyc"]["paths"])
    assert found["pip-cache"]["bytes"] == 51000

    proc = cli("--root", walks, "--json", "audit", *only)
    assert proc.returncode == 100, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    not_checked = {}
    for f in findings:
        if f["id"] == "not-checked":
            assert f["severity"] == "error"
            assert len(f["paths"]) == len(f["evidence"]), f
            not_checked.update({p: e for p, e in zip(f["paths"], f["evidence"])})
    # the whole-tree walk (symlinks, .dist-info), the bytecode walks, the cache sizes
    for path in ("/srv/secret", "/usr/local/lib/python3.11/secretpkg", "/opt/secretpy/lib",
                 "/usr/local/lib/python3.11/site-packages/hiddenpkg", "/root/.cache/pip/http"):
        assert not_checked.get(path) == path + ": cannot list: Permission denied", (path, findings)
    others = {f["id"]: f for f in findings if f["id"] != "not-checked"}
    assert "dangling-symlinks" not in others and "broken-dist-info" not in others
    assert "stdlib-missing-pyc" in others       # os.py itself has no .pyc
    assert ("/usr/local/lib/python3.11/secretpkg/mod.py"
            not in others["stdlib-missing-pyc"]["paths"])
    assert others["pip-cache"]["bytes"] == 1000
    # counted by --fail-on like any error; --ignore not-checked drops them all
    assert cli("--root", walks, "audit", "--fail-on", "error", *only).returncode == 100
    ignored = cli("--root", walks, "--json", "audit", "--ignore", "not-checked", *only)
    assert "not-checked" not in {f["id"] for f in json.loads(ignored.stdout)["findings"]}
