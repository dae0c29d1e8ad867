"""`pyimgtools compile` from the single-file build, run by one CPython, compiling for another."""

import json
import os
import subprocess

import pytest

from tests.harness.prereq import require_pyenv_python

pytestmark = pytest.mark.main_only


def test_pyz_under_38_compiles_for_313_and_back(pyz, tmp_path):
    py38 = require_pyenv_python("3.8")
    py313 = require_pyenv_python("3.13")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def f():\n    return 'x'\n")
    for runner, target, tag in ((py38, py313, "cpython-313"), (py313, py38, "cpython-38")):
        proc = subprocess.run([runner, pyz, "--json", "compile", "--python", target, str(tmp_path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["python"]["cache_tag"] == tag
        assert os.path.exists(str(tmp_path / "pkg" / "__pycache__" / ("m.%s.pyc" % tag)))
        # The target itself accepts the file: it imports m from the .pyc (python -v says so).
        check = subprocess.run([target, "-B", "-v", "-c", "import sys; sys.path.insert(0, %r); import m"
                                % str(tmp_path / "pkg")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        pyc = str(tmp_path / "pkg" / "__pycache__" / ("m.%s.pyc" % tag))
        assert "# code object from '%s'" % pyc in check.stderr


def test_default_is_the_stdlib_of_the_target_not_of_the_runner(pyz):
    py38 = require_pyenv_python("3.8")
    py312 = require_pyenv_python("3.12")
    stdlib = subprocess.run([py312, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    proc = subprocess.run([py38, pyz, "--json", "compile", "--dry-run", "--python", py312],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["trees"] == [stdlib]
    assert doc["python"]["version"].startswith("3.12.")
    # pyenv's own install wrote timestamp pycs: in checked-hash mode all are "other mode"
    reasons = {r for it in doc["to_compile"] for r in it["reasons"]}
    assert reasons <= {"other mode", "missing"}
    assert not any("/site-packages/" in it["path"] for it in doc["to_compile"])
