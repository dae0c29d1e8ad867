"""scripts/build-pyz packs the whole package (pyimgtools/commands/ too) into a
zipapp that runs: --version and a command, from a directory outside the checkout."""

import os
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_the_pyz_holds_every_module_of_the_package(pyz):
    package = os.path.join(REPO, "pyimgtools")
    expected = {os.path.relpath(os.path.join(d, f), REPO)
                for d, dirs, files in os.walk(package) if "__pycache__" not in d
                for f in files if f.endswith(".py")}
    with zipfile.ZipFile(pyz) as z:
        packed = {n for n in z.namelist() if n.endswith(".py") and n != "__main__.py"}
    assert packed == expected


def test_the_pyz_runs_version_and_a_command(pyz, tmp_path):
    (tmp_path / "tree" / "pkg" / "tests").mkdir(parents=True)
    (tmp_path / "tree" / "pkg" / "tests" / "test_a.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = dict(capture_output=True, text=True, cwd=str(tmp_path), env=env)
    proc = subprocess.run([sys.executable, pyz, "--version"], **run)
    assert proc.returncode == 0 and proc.stdout.startswith("pyimgtools "), proc.stderr
    proc = subprocess.run([sys.executable, pyz, "prune", "--dry-run", str(tmp_path / "tree")], **run)
    assert proc.returncode == 0, proc.stderr
    assert "would remove %s/" % (tmp_path / "tree" / "pkg" / "tests") in proc.stdout.splitlines()
    assert (tmp_path / "tree" / "pkg" / "tests" / "test_a.py").exists()
