"""audit --format sarif: a real `audit --root` over a planted tree, its log
validated against the SARIF 2.1.0 JSON schema (the OASIS file, vendored in
tests/unit/data/sarif/ with its source) by the jsonschema package.

Expected values come from what the tree plants (names, sizes, the severity
each planted finding has in docs/commands.md's table), from the SARIF
schema and GitHub's code-scanning rules (a location on every result, one
rule per ruleId at ruleIndex), and from audit's own text and --json modes for
the exit status and the findings, never from the log under test.
"""

import json
import os
import shutil
from urllib.parse import unquote_to_bytes

import pytest

from pyimgtools.audit import Audit, Finding
from pyimgtools.audit import checks as audit_checks
from pyimgtools.audit import sarif
from pyimgtools.report import to_jsonable
from tests.conftest import REPO, run_cli
from tests.harness.elfbuild import build_elf
from tests.harness.prereq import require

SCHEMA_FILE = os.path.join(REPO, "tests", "unit", "data", "sarif", "sarif-schema-2.1.0.json")

# The planted findings and their severities as docs/commands.md's table gives
# them, as SARIF levels (error -> error, warn -> warning, info -> note).
PLANTED = {"unresolved-libs": "error", "apt-lists": "warning", "pip-cache": "warning",
           "broken-dist-info": "warning", "dangling-symlinks": "warning",
           "locale-not-utf8": "warning", "security-updates-unknown": "note"}
BAD_NAME = b"/usr/local/bad\xff name"     # not UTF-8, and a space: both percent-encoded
APT_LIST = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"


def _put(root, path, data=b"", mode=0o644):
    host = os.path.join(os.fsencode(str(root)), os.fsencode(path).lstrip(b"/"))
    os.makedirs(os.path.dirname(host), exist_ok=True)
    with open(host, "wb") as f:
        f.write(data)
    os.chmod(host, mode)


@pytest.fixture
def planted(tmp_path):
    """A root with one finding of each PLANTED id, and the env file for the locale check."""
    root = tmp_path / "root"
    _put(root, "/var/lib/dpkg/status", b"Package: libc6\nStatus: install ok installed\n"
         b"Architecture: amd64\nVersion: 2.36-9\nInstalled-Size: 100\n")
    os.makedirs(str(root / "var/lib/dpkg/info"))
    _put(root, "/etc/os-release", b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
         b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    _put(root, "/usr/bin/apt-get", b"", 0o755)
    _put(root, "/usr/lib/x86_64-linux-gnu/libc.so.6", build_elf(soname="libc.so.6"))
    _put(root, "/lib64/ld-linux-x86-64.so.2", build_elf(soname="ld-linux-x86-64.so.2"))
    _put(root, "/usr/local/lib/libplanted.so",
         build_elf(needed=("libyaml-0.so.2", "libc.so.6"), soname="libplanted.so"))
    _put(root, APT_LIST, b"p" * 5000)
    _put(root, "/root/.cache/pip/http/a/b", b"c" * 300)
    os.makedirs(str(root / "usr/local/lib/python3.11/site-packages/x-1.0.dist-info"))
    os.symlink("/nowhere", os.path.join(os.fsencode(str(root)), BAD_NAME.lstrip(b"/")))
    os.symlink("/nowhere", str(root / "usr/local/dangling"))
    env = tmp_path / "env.txt"
    env.write_text("LANG=C\n")
    return root, env


def _sarif(root, env, *args):
    proc = run_cli("audit", "--root", root, "--env", env, "--format", "sarif", *args)
    assert proc.returncode in (0, 100), proc.stderr
    return proc, json.loads(proc.stdout)


def _validator():
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    require(jsonschema is not None, "needs the jsonschema package (tests/requirements.txt)")
    with open(SCHEMA_FILE) as f:
        schema = json.load(f)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _schema_errors(log):
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
            for e in _validator().iter_errors(log)]


def _uris(log):
    """Every artifactLocation uri of every result (locations and related ones)."""
    for result in log["runs"][0]["results"]:
        for loc in result["locations"] + result.get("relatedLocations", []):
            yield loc["physicalLocation"]["artifactLocation"]


def test_the_log_is_valid_sarif_2_1_0(planted):
    root, env = planted
    _, log = _sarif(root, env)
    assert _schema_errors(log) == []
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("/sarif-schema-2.1.0.json")
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "pyimgtools"
    assert driver["version"] == run_cli("--version").stdout.split()[-1]


def test_the_schema_check_can_fail():
    """The validator rejects what GitHub would: a result without a message, a bad level."""
    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                         "results": [{"ruleId": "a", "level": "warn"}]}]}
    errors = _schema_errors(bad)
    assert any("message" in e for e in errors) and any("'warn'" in e for e in errors), errors


def test_rules_come_from_the_registered_checks_and_every_result_has_its_rule(planted):
    root, env = planted
    _, log = _sarif(root, env)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    assert set(ids) == {fid for c in audit_checks.CHECKS for fid in c.ids}
    for r in rules:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"] and r["help"]["text"]
    results = run["results"]
    assert {r["ruleId"] for r in results} >= set(PLANTED)
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        if r["ruleId"] in PLANTED:
            assert r["level"] == PLANTED[r["ruleId"]], r["ruleId"]
            assert rules[r["ruleIndex"]]["defaultConfiguration"]["level"] == PLANTED[r["ruleId"]]
        assert r["locations"], r["ruleId"]
        for loc in r["locations"]:
            assert loc["physicalLocation"]["artifactLocation"]["uri"]
            assert loc["physicalLocation"]["region"]["startLine"] == 1


def test_results_are_the_findings_of_json_mode(planted):
    root, env = planted
    _, log = _sarif(root, env)
    doc = json.loads(run_cli("audit", "--root", root, "--env", env, "--json").stdout)
    levels = {"error": "error", "warn": "warning", "info": "note"}
    got = [(r["ruleId"], r["level"], r["properties"]["bytes"], r["properties"]["paths"])
           for r in log["runs"][0]["results"]]
    want = [(f["id"], levels[f["severity"]], f["bytes"], f["paths"]) for f in doc["results"]["findings"]]
    assert got == want
    apt = [r for r in log["runs"][0]["results"] if r["ruleId"] == "apt-lists"][0]
    assert apt["properties"]["bytes"] == 5000
    assert apt["properties"]["fix"] in apt["message"]["text"]


def test_locations_are_the_in_image_paths_under_rootfs(planted):
    root, env = planted
    _, log = _sarif(root, env)
    run = log["runs"][0]
    base = run["originalUriBaseIds"]["ROOTFS"]["uri"]
    assert base == "file://" + str(root) + "/"
    where = {r["ruleId"]: r for r in run["results"]}
    assert where["apt-lists"]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": APT_LIST.lstrip("/"), "uriBaseId": "ROOTFS"}
    raw = set()
    for loc in _uris(log):
        assert loc["uriBaseId"] == "ROOTFS"
        uri = loc["uri"]
        assert not uri.startswith("/")
        assert all(c.isalnum() or c in "-._~/%" for c in uri), uri   # RFC 3986, percent-encoded
        raw.add(unquote_to_bytes(uri))
    assert BAD_NAME.lstrip(b"/") in raw and b"usr/local/dangling" in raw
    # in-image: the root is /
    log = sarif.document(Audit(root="/", findings=[], checks=[], environment="x"), "error", 0)
    assert log["runs"][0]["originalUriBaseIds"]["ROOTFS"]["uri"] == "file:///"


def test_exit_status_is_the_text_modes(planted):
    root, env = planted
    for args in ([], ["--fail-on", "never"], ["--fail-on", "info"], ["--ignore", "unresolved-libs"]):
        text = run_cli("audit", "--root", root, "--env", env, *args)
        proc, log = _sarif(root, env, *args)
        assert proc.returncode == text.returncode, args
        assert log["runs"][0]["invocations"][0]["exitCode"] == text.returncode
    assert text.returncode == 0 and proc.returncode == 0       # only the error was ignored
    assert run_cli("audit", "--root", root, "--env", env).returncode == 100


def test_stdout_is_the_log_and_the_summary_goes_to_stderr(planted):
    root, env = planted
    proc, _ = _sarif(root, env)
    assert proc.stdout.startswith("{") and proc.stdout.endswith("}\n")
    assert proc.stderr.strip().splitlines()[-1].startswith("pyimgtools audit: 1 error, ")


def test_the_log_is_the_same_bytes_every_run_and_wherever_the_root_is(planted, tmp_path):
    root, env = planted
    first, _ = _sarif(root, env)
    second, _ = _sarif(root, env)
    assert first.stdout == second.stdout
    moved = tmp_path / "elsewhere"
    shutil.copytree(str(root), str(moved), symlinks=True)
    _, a = _sarif(root, env)
    _, b = _sarif(moved, env)
    prints = [r["partialFingerprints"] for r in a["runs"][0]["results"]]
    assert prints == [r["partialFingerprints"] for r in b["runs"][0]["results"]]
    assert len({json.dumps(p) for p in prints}) == len(prints)      # one alert per result


@pytest.mark.parametrize("args", [["--format", "sarif", "--json"], ["--json", "--format", "text"]])
def test_json_beside_another_format_is_a_usage_error(tmp_path, args):
    proc = run_cli("audit", "--root", tmp_path, *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyimgtools: error: --json"), proc.stderr
    proc = run_cli("--json", "audit", "--root", tmp_path, "--format", "sarif")   # before the command
    assert proc.returncode == 2


def test_format_json_is_json(planted):
    root, env = planted
    a = json.loads(run_cli("audit", "--root", root, "--env", env, "--format", "json").stdout)
    b = json.loads(run_cli("audit", "--root", root, "--env", env, "--format", "json", "--json").stdout)
    c = json.loads(run_cli("audit", "--root", root, "--env", env, "--json").stdout)
    assert a["command"] == b["command"] == c["command"] == "audit"
    assert a["results"]["findings"] == b["results"]["findings"] == c["results"]["findings"]


def test_an_image_is_the_artifact_and_its_layer_a_logical_location():
    """`audit IMAGE` (wired by the lead): the image reference is the location, the
    layer's Dockerfile instruction a logical location and part of the message."""
    step = "RUN /bin/sh -c pip install -r requirements.txt"
    layer = {"index": 3, "digest": "sha256:" + "ab" * 32, "created_by": step}
    findings = [Finding("pip-cache", "warn", "pip cache left: /root/.cache/pip", "pip --no-cache-dir",
                        evidence=["/root/.cache/pip: 1 file (3 B)"], paths=["/root/.cache/pip"], bytes=3),
                Finding("layer-waste", "info", "1.0 KiB shipped in layers but not in the image", "one RUN")]
    result = Audit(root="app.tar", findings=findings, checks=[], environment="the image config")
    log = to_jsonable(sarif.document(result, "error", 0, image="images/app 1.tar",
                                     layers=lambda f: {"layer": layer if f.paths else None}))
    run = log["runs"][0]
    assert "originalUriBaseIds" not in run
    pip, waste = run["results"]
    for r in (pip, waste):
        assert r["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "images/app%201.tar"}
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    assert pip["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == step
    assert step in pip["message"]["text"]
    assert pip["properties"]["layer"] == layer
    assert waste["level"] == "note" and "logicalLocations" not in waste["locations"][0]
    assert _schema_errors(log) == []
