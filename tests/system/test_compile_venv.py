"""`compile --python VENV/bin/python --site-packages`: the venv's own site-packages and
the base interpreter's stdlib, and no site directory of the base interpreter (issue 13),
for venvs made by `python -m venv`, virtualenv and uv.

CPython 3.8-3.13 from pyenv here (main run), the interpreter running the tests with
`python -m venv` (every run of the matrix, sid's 3.14/3.15 included), and sid's 3.14 and
3.15 with all three tools in tests/integration/test_compile_sid.py. Expected values come
from the venv's own interpreter with site enabled, and from the base interpreter's.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import run_cli
from tests.harness.prereq import require_pyenv_python
from tests.harness.compile_support import (BASE_SITE, VENV_FACTS, VENV_KINDS,
                                               assert_no_base_site, expected_venv_trees,
                                               make_venv_argv, run_json, venv_tools)


def check_venv(kind, python, tmp_path, tools, runner=None):
    dest = str(tmp_path / kind)
    argv, env = make_venv_argv(kind, python, dest, tools, runner=runner)
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **env),
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    vpy = os.path.join(dest, "bin", "python")
    facts = run_json([vpy, "-c", VENV_FACTS])
    assert os.path.realpath(facts["prefix"]) == os.path.realpath(dest), facts  # it is a venv
    base_site = run_json([python, "-c", BASE_SITE])
    expected, base_dirs = expected_venv_trees(facts, base_site)
    # Something of the venv's own to compile, so the walk of its site-packages shows.
    own = os.path.join(expected[1], "venv_own_module.py")
    with open(own, "w") as f:
        f.write("X = 1\n")
    proc = run_cli("--json", "compile", "--python", vpy, "--site-packages", "--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["trees"] == expected
    assert own in [it["path"] for it in doc["to_compile"]]
    assert_no_base_site(doc, base_dirs)
    # The default (no --site-packages) is the base stdlib alone.
    proc = run_cli("--json", "compile", "--python", vpy, "--dry-run")
    assert json.loads(proc.stdout)["trees"] == expected[:1]


def _base_python():
    """The interpreter running the tests, without the venv scripts/test puts it in."""
    return getattr(sys, "_base_executable", None) or sys.executable


def test_python_m_venv_of_the_interpreter_running_the_tests(tmp_path):
    check_venv("venv", _base_python(), tmp_path, None)


@pytest.mark.main_only
@pytest.mark.parametrize("kind", VENV_KINDS)
@pytest.mark.parametrize("minor", ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"])
def test_venv_of_each_cpython(minor, kind, tmp_path):
    python = require_pyenv_python(minor)
    tools = venv_tools() if kind != "venv" else None
    check_venv(kind, python, tmp_path, tools, runner=sys.executable)
