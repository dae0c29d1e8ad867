"""Every command's --json document is the envelope docs/json.md describes.

Each command runs through the real command line (cli.main, in this process so
that apt can be replaced where a run would need root and the network; the
real apt runs are in tests/integration/test_dry_run_agrees.py), and its
stdout is validated against the schema in tests/harness/json_envelope.py,
which docs/json.md shows verbatim. The independent references: the
`pyimgtools: warning:` lines the run printed on stderr, and the exit status.
"""

import json
import os
import re
import shutil
import sys

import pytest

from pyimgtools import apt, cli, commandnames, pytarget, security
from pyimgtools.apt import AptResult
from tests.harness import json_envelope
from tests.harness.json_envelope import SCHEMA, key_order_errors, validate

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
WARNING = "pyimgtools: warning: "


def run_json(capsys, *argv, code=0, printed_warnings=True):
    """Run `pyimgtools ARGV --json`: the document, checked against the schema.

    printed_warnings: every warning line on stderr is in the document's
    warnings (False where a line printed after the document reports one of
    its failures)."""
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv] + ["--json"])
    captured = capsys.readouterr()
    assert rc == code, captured.err
    doc = json.loads(captured.out)      # exactly one document on stdout
    assert validate(doc) == [], validate(doc)
    assert key_order_errors(doc) == []
    printed = [l[len(WARNING):] for l in captured.err.splitlines() if l.startswith(WARNING)]
    if printed_warnings:
        assert [w for w in printed if w not in doc["warnings"]] == []
    summary = [l for l in captured.err.splitlines()
               if l.startswith("pyimgtools %s:" % doc["command"].split()[0])]
    if summary and doc["command"] != "finalize":
        # the counts are the numbers the summary line states (a zero it may leave out)
        for name, value in doc["counts"].items():
            if value and not name.endswith("bytes"):
                assert re.search(r"\b%s\b" % re.escape("{:,}".format(value)), summary[-1]), \
                    (name, value, summary[-1])
    return doc


# -- the schema and its validator ----------------------------------------------------

def test_docs_show_the_schema_the_tests_check():
    text = open(os.path.join(REPO, "docs", "json.md")).read()
    block = text.split("<!-- schema -->", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == SCHEMA


GOOD = {"command": "prune", "version": "0.1.0", "dry_run": True, "seconds": 0.5,
        "counts": {"files": 1, "dirs": 0, "bytes": 3}, "warnings": ["a: b"],
        "failures": [{"path": {"bytes_hex": "ff"}, "error": "Permission denied"},
                     {"item": "libx.so.1", "error": "not found"}],
        "results": {}}


@pytest.mark.parametrize("change, wrong", [
    ({}, None),
    ({"command": "build-deps"}, "is not one of"),
    ({"seconds": -1}, "below"),
    ({"dry_run": 0}, "not of type boolean"),
    ({"counts": {"files": True, "dirs": 0, "bytes": 3}}, "not of type integer"),
    ({"counts": {"files": 1, "bytes": 3}}, "dirs is missing"),
    ({"warnings": [{"path": "a", "message": "b"}]}, "not of type string"),
    ({"failures": [{"error": "x"}]}, "exactly one of oneOf"),
    ({"failures": [{"path": "p", "item": "i", "error": "x"}]}, "exactly one of oneOf"),
    ({"failures": [{"path": {"bytes_hex": "xyz"}, "error": "x"}]}, "none of anyOf"),
    ({"command": "audit", "dry_run": True,
      "counts": {"error": 0, "warn": 0, "info": 0, "reclaimable_bytes": 0}}, "is not False"),
])
def test_the_validator_rejects_what_the_schema_rules_out(change, wrong):
    errors = validate(dict(GOOD, **change))
    if wrong is None:
        assert errors == []
    else:
        assert any(wrong in e for e in errors), errors


def test_a_missing_envelope_key_and_the_key_order_are_caught():
    doc = {k: v for k, v in GOOD.items() if k != "results"}
    assert validate(doc) == ["$: results is missing"]
    assert key_order_errors(dict(GOOD, command="prune")) == []
    assert key_order_errors(dict({"trees": []}, **GOOD)) != []


# -- compile, prune --------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    pkg = tmp_path / "tree" / "pkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "tests" / "test_x.py").write_text("assert True\n")
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "bad.py").write_text("def f(:\n")
    return tmp_path / "tree"


def test_compile(capsys, tree):
    py = ["--python", sys.executable]
    dry = run_json(capsys, "compile", "--dry-run", *py, tree)
    assert (dry["command"], dry["dry_run"], dry["failures"]) == ("compile", True, [])
    assert dry["counts"]["files"] == 3 == len(dry["results"]["to_compile"])
    real = run_json(capsys, "compile", *py, tree, code=1)
    assert real["dry_run"] is False
    # compile() itself is the reference: only bad.py does not compile
    with pytest.raises(SyntaxError):
        compile((tree / "pkg/bad.py").read_text(), "bad.py", "exec")
    assert [f["path"] for f in real["failures"]] == [str(tree / "pkg/bad.py")]
    assert real["counts"]["failed"] == 1 and real["counts"]["files"] == 2


def test_prune(capsys, tree):
    dry = run_json(capsys, "prune", "--dry-run", tree)
    assert (dry["command"], dry["dry_run"]) == ("prune", True)
    assert dry["counts"]["dirs"] == 1 and dry["failed"] == dry["failures"] == []
    real = run_json(capsys, "prune", tree)
    assert real["dry_run"] is False and not (tree / "pkg/tests").exists()
    assert real["counts"] == dry["counts"]


# -- keep ------------------------------------------------------------------------------

@pytest.fixture
def keep_root(tmp_path):
    """A root with an empty dpkg database and a host program whose libraries it lacks."""
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    shutil.copy(shutil.which("true"), str(tmp_path / "usr/local/bin/true"))
    return tmp_path


def test_keep(capsys, keep_root):
    root = ["--root", keep_root]
    # a missing library stops keep: a failure, named by the library
    doc = run_json(capsys, *root, "keep", "--print", code=1, printed_warnings=False)
    assert doc["command"] == "keep" and doc["dry_run"] is False
    names = {f["item"] for f in doc["failures"]}
    assert "libc.so.6" in names and doc["missing"]
    # allowed, the same libraries are warnings
    doc = run_json(capsys, *root, "keep", "--print", "--allow-missing")
    assert doc["failures"] == [] and any("libc.so.6" in w for w in doc["warnings"])
    doc = run_json(capsys, *root, "keep", "--why", "libc6", "--allow-missing")
    assert doc["dry_run"] is False and doc["counts"]["packages"] == 0
    dry = run_json(capsys, *root, "keep", "--dry-run", "--allow-missing")
    assert dry["dry_run"] is True and dry["counts"]["marked"] == 0
    real = run_json(capsys, *root, "keep", "--allow-missing")      # nothing to mark
    assert real["dry_run"] is False and real["marked"] == []


# -- build-deps (apt replaced: the real apt runs are in test_dry_run_agrees.py) ---------

STATUS = "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21\n" \
         "Installed-Size: 100\n"
CPP = "Package: cpp\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n" \
      "Installed-Size: 7\n"


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(STATUS)
    (tmp_path / "usr/local").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()

    def apt_get(args, root=None, stream=None, what=None, **kw):
        output = ""
        if args[:2] == ["-s", "install"]:
            output = "Inst cpp (1.0 Debian:12/stable [amd64])\n"
        elif args[0] == "-s":
            output = "Purg cpp [1.0]\n"
        elif args[0] == "install":
            status.write_text(STATUS + "\n" + CPP)
        elif args[0] == "purge":
            status.write_text(STATUS)
        return AptResult(argv=args, returncode=0, output=output, errors=[], warnings=[])

    monkeypatch.setattr(apt, "apt_get", apt_get)
    monkeypatch.setattr(apt, "apt_cache", lambda args, root=None: CPP)
    for name in ("require_root", "check_dpkg_state", "apt_mark", "update_lists"):
        monkeypatch.setattr(apt, name, lambda *a, **k: None)
    monkeypatch.setattr(apt, "remove_lists", lambda *a, **k: apt.CleanResult())
    monkeypatch.setattr(apt, "remove_cached_debs", lambda *a, **k: apt.CleanResult())
    monkeypatch.setattr(apt, "apt_mark_showmanual", lambda *a, **k: ["dpkg"])
    from pyimgtools import builddeps
    monkeypatch.setattr(builddeps, "lists_present", lambda root: True)
    return tmp_path


def test_build_deps(capsys, fake_apt):
    root = ["--root", fake_apt]
    dry = run_json(capsys, *root, "build-deps", "install", "--dry-run", "cpp")
    assert (dry["command"], dry["dry_run"]) == ("build-deps install", True)
    assert dry["counts"]["installed"] == 1 and dry["install"] == ["cpp"]
    real = run_json(capsys, *root, "build-deps", "install", "cpp")
    assert real["dry_run"] is False and real["installed"] == ["cpp"]
    dry = run_json(capsys, *root, "build-deps", "purge", "--dry-run")
    assert (dry["command"], dry["dry_run"]) == ("build-deps purge", True)
    assert dry["remove"] == ["cpp"] and dry["counts"]["removed"] == 1
    # a library the kept files need is missing: the purge stops, its failures say why
    (fake_apt / "usr/local/true").write_bytes(open(shutil.which("true"), "rb").read())
    refused = run_json(capsys, *root, "build-deps", "purge", "--dry-run", code=1,
                       printed_warnings=False)
    assert "libc.so.6" in {f["item"] for f in refused["failures"]}
    assert refused["removed"] == [] and refused["counts"]["removed"] == 0
    os.unlink(str(fake_apt / "usr/local/true"))
    real = run_json(capsys, *root, "build-deps", "purge")
    assert real["dry_run"] is False and real["removed"] == ["cpp"]


# -- security-upgrade (apt replaced, as in test_security.py) ---------------------------

@pytest.fixture
def bookworm(tmp_path, monkeypatch):
    (tmp_path / "etc/apt").mkdir(parents=True)
    (tmp_path / "etc/os-release").write_text(
        'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (tmp_path / "etc/apt/sources.list").write_text(
        "deb http://deb.debian.org/debian-security bookworm-security main\n")
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    (tmp_path / "var/lib/apt/lists").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/apt-get").write_text("")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    plan = security.Plan("debian", "bookworm", [], "", [
        security.Update("libssl3", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "bookworm-security")],
        [])
    monkeypatch.setattr(apt, "update_lists", lambda *a, **kw: None)
    monkeypatch.setattr(security, "make_plan", lambda *a, **kw: plan)
    monkeypatch.setattr(security, "simulate", lambda *a, **kw: [])
    monkeypatch.setattr(security, "apply", lambda root, plan, *a: list(plan.pending))
    monkeypatch.setattr(apt, "apt_cache", lambda args, root=None: (
        "Package: libssl3\nArchitecture: amd64\nMulti-Arch: same\n"
        "Version: 3.0.22-1~deb12u2\nInstalled-Size: 6000\n"))
    return tmp_path


def test_security_upgrade(capsys, bookworm):
    root = ["--root", bookworm, "security-upgrade"]
    check = run_json(capsys, *root, "--check", code=100)
    # --check changes nothing: not a dry run
    assert (check["command"], check["dry_run"]) == ("security-upgrade", False)
    assert check["counts"]["updates"] == 1 and check["failures"] == []
    dry = run_json(capsys, *root, "--dry-run")
    assert dry["dry_run"] is True and dry["counts"]["bytes"] == 6000 * 1024
    real = run_json(capsys, *root)
    assert real["dry_run"] is False and real["counts"]["updates"] == len(real["applied"]) == 1


# -- finalize ------------------------------------------------------------------------

def test_finalize(capsys, tree, monkeypatch):
    monkeypatch.setattr(pytarget, "probe", lambda python, root=None: pytarget.PyTarget(
        executable=sys.executable, version="3.0.0", prefix=str(tree), base_prefix=str(tree),
        venv=True, stdlib=str(tree / "nostdlib"), platstdlib=str(tree / "nostdlib"),
        site_packages=[]))
    argv = ["finalize", "--no-security-upgrade", "--python", sys.executable]
    dry = run_json(capsys, *argv, "--dry-run")
    assert (dry["command"], dry["dry_run"], dry["failures"]) == ("finalize", True, [])
    steps = {s["command"]: s for s in dry["steps"]}
    assert steps["security-upgrade"]["skipped"] is True
    assert steps["prune"]["result"]["dry_run"] is True      # the nested envelopes
    assert dry["counts"] == {"steps": 2, "skipped": 1}
    # bad.py does not compile: the compile step fails, after prune ran
    real = run_json(capsys, *argv, code=1)
    assert real["failures"] == [{"item": "compile", "error": "1 file failed to compile"}]
    compiled = {s["command"]: s for s in real["steps"]}["compile"]["result"]
    assert [f["path"] for f in compiled["failures"]] == [str(tree / "pkg/bad.py")]


# -- audit ---------------------------------------------------------------------------

def test_audit(capsys, tmp_path):
    doc = run_json(capsys, "audit", "--root", tmp_path, "--fail-on", "never")
    assert (doc["command"], doc["dry_run"]) == ("audit", False)
    assert {k: doc["counts"][k] for k in ("error", "warn", "info")} == {
        s: sum(f["severity"] == s for f in doc["findings"]) for s in ("error", "warn", "info")}


def test_every_command_is_covered():
    # the commands cli knows, build-deps by its actions: each has a test above
    names = list(commandnames.COMMANDS)
    covered = {c.split()[0] for c in json_envelope.COMMANDS}
    assert set(names) == covered
    for command in json_envelope.COMMANDS:
        assert "test_" + command.split()[0].replace("-", "_") in globals()
