"""`pyimgtools compile` and Debian sid's Python 3.14 and 3.15 (issue 12), in a sid rootfs
with `rootfs.SID_PYTHONS` (the stdlib's test data included, so the skip rules meet it).

- the default `compile --python /usr/bin/python3.X` inside: exit 0, the skipped set is
  the set of stdlib files the target's own compile() rejects, a second run compiles
  nothing, and a non-root start of common modules compiles nothing (`python -v`);
  the skip rule is the `-x` regex of that version's own Makefile (libpython3.X-dev);
- `compile --root R --python /usr/bin/python3.14` from this (bookworm) host: the
  image's interpreter through the image's loader compiles the image's stdlib with
  in-image names; a second run inside finds every file up to date;
- venvs made by `python -m venv`, virtualenv and uv (wheels downloaded on the host):
  the venv's site-packages and the base stdlib, no site directory of the base (inside,
  and from the host with --root);
- the stdlib compile check against compileall in every mode and level.
"""

import json
import os
import re
import shutil

import pytest

from pyimgtools.compile import skip_rule
from tests.conftest import run_cli
from tests.harness.compile_support import (BASE_SITE, VENV_FACTS, VENV_KINDS,
                                           assert_no_base_site, expected_venv_trees,
                                           make_venv_argv, venv_tools)
from tests.harness.sidroot import pyimgtools_in, sid  # noqa: F401 (a fixture)
from tests.harness.stdlib_compile import check_stdlib_matches_compileall

IMPORTS = "import asyncio, json, email, http.client, concurrent.futures, urllib.request"

# The stdlib files the target's own compile() rejects (what compileall would list
# as failures), walked as the default compile walks: no __pycache__, no site dirs.
REJECTED = r"""
import json, os, sys, sysconfig, warnings
warnings.simplefilter("ignore")
std = sysconfig.get_paths()["stdlib"]
bad = []
for d, dirs, files in os.walk(std):
    dirs[:] = sorted(x for x in dirs if x not in ("__pycache__", "site-packages", "dist-packages"))
    for f in files:
        if f.endswith(".py"):
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                data = fh.read()
            try:
                compile(data, p, "exec", dont_inherit=True)
            except Exception:
                bad.append(p)
print(json.dumps(sorted(bad)))
"""
# `python -v` lines for a module compiled from source are unquoted (field notes).
COMPILED_FROM_SOURCE = re.compile(r"^# code object from /\S*\.py$", re.M)


@pytest.mark.parametrize("minor", ["3.14", "3.15"])
def test_default_compile_of_sid_python(sid, minor):
    python = "/usr/bin/python" + minor
    proc = pyimgtools_in(sid, python, "--json", "compile", "--python", python, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["trees"] == ["/usr/lib/python" + minor]
    rejected = json.loads(sid.run([python, "-c", REJECTED]).stdout)
    assert rejected, "the testsuite should hold files meant not to compile"
    assert sorted(doc["skipped"]) == rejected
    assert doc["files"]["compiled"] > 1000 and doc["files"]["failed"] == 0
    again = json.loads(pyimgtools_in(sid, python, "--json", "compile", "--python", python).stdout)
    assert again["files"]["compiled"] == 0
    assert again["files"]["up_to_date"] == doc["files"]["compiled"] + doc["files"]["up_to_date"]
    # A non-root start compiles nothing (and the check can fail: see test_compile_image).
    proc = sid.run([python, "-v", "-c", IMPORTS], user=1000)
    assert COMPILED_FROM_SOURCE.findall(proc.stderr) == []
    assert "# code object from '/usr/lib/python%s/json/__pycache__/" % minor in proc.stderr
    # The skip rule is what this version's own `make install` excludes.
    proc = sid.run("cd /tmp && apt-get update -qq && apt-get download -qq libpython%s-dev && "
                   "dpkg-deb --fsys-tarfile libpython%s-dev_*.deb | tar -xO --wildcards "
                   "'./usr/lib/python%s/config-*/Makefile'" % (minor, minor, minor))
    excludes = set(re.findall(r"-x '([^']*)'", proc.stdout))
    assert len(excludes) == 1, excludes
    cpython = "|".join(x for x in excludes.pop().split("|") if x != "site-packages")
    assert skip_rule(minor).pattern == cpython


def test_root_from_the_host_runs_the_images_python314(sid):
    assert not os.path.exists("/usr/bin/python3.14")  # the host has no 3.14 of its own
    proc = run_cli("--json", "compile", "--root", sid.path, "--python", "/usr/bin/python3.14")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["python"]["executable"] == "/usr/bin/python3.14"
    assert doc["python"]["version"].startswith("3.14.")
    assert doc["trees"] == ["/usr/lib/python3.14"]
    assert doc["files"]["compiled"] > 1000 and doc["files"]["failed"] == 0
    # In-image names in the code objects, as the image's own interpreter reads them.
    name = sid.run(["python3.14", "-c", "import importlib.util, marshal; "
                    "p = importlib.util.cache_from_source('/usr/lib/python3.14/json/__init__.py'); "
                    "print(marshal.loads(open(p, 'rb').read()[16:]).co_filename)"]).stdout.strip()
    assert name == "/usr/lib/python3.14/json/__init__.py"
    again = json.loads(pyimgtools_in(sid, "python3.14", "--json", "compile",
                                     "--python", "/usr/bin/python3.14").stdout)
    assert again["files"]["compiled"] == 0
    assert again["files"]["up_to_date"] == doc["files"]["compiled"] + doc["files"]["up_to_date"]


def test_venvs_of_sid_pythons(sid):
    tools = venv_tools()
    shutil.copytree(tools["virtualenv"], sid.host("/opt/venv-tools"))
    inside = {"virtualenv": "/opt/venv-tools",
              "uv": "/opt/venv-tools/" + os.path.relpath(tools["uv"], tools["virtualenv"])}
    for minor in ("3.14", "3.15"):
        python = "/usr/bin/python" + minor
        base_site = json.loads(sid.run([python, "-c", BASE_SITE]).stdout)
        for kind in VENV_KINDS:
            dest = "/w/%s-%s" % (kind, minor)
            argv, env = make_venv_argv(kind, python, dest, inside)
            sid.run(argv, env=env, cwd="/tmp")
            vpy = dest + "/bin/python"
            facts = json.loads(sid.run([vpy, "-c", VENV_FACTS]).stdout)
            assert facts["prefix"] == dest, facts
            expected, base_dirs = expected_venv_trees(facts, base_site, host=sid.host)
            doc = json.loads(pyimgtools_in(sid, python, "--json", "compile", "--python", vpy,
                                           "--site-packages", "--dry-run").stdout)
            assert doc["trees"] == expected, (kind, minor)
            assert_no_base_site(doc, base_dirs)
            # The same from the host: the venv found in the image, its base run by the image's loader.
            proc = run_cli("--json", "compile", "--root", sid.path, "--python", vpy, "--site-packages",
                           "--dry-run")
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert json.loads(proc.stdout)["trees"] == expected, (kind, minor, "--root")


class TestStdlibMatchesCompileall314:
    def test_python314(self, sid):
        assert check_stdlib_matches_compileall(sid, "python3.14") == [3, 14]


class TestStdlibMatchesCompileall315:
    def test_python315(self, sid):
        assert check_stdlib_matches_compileall(sid, "python3.15") == [3, 15]
