"""The README's third way in: `pip wheel .`, then `pip install pyimgtools-*.whl`
into a Python environment gives a working `pyimgtools` console script.

The build runs offline: setuptools and wheel come from the app wheelhouse
(tests/harness/wheelhouse.py, fetched once with pip download)."""

import glob
import os
import shutil

import pytest
import subprocess
import sys

from tests.harness.wheelhouse import wheelhouse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Once, under the main interpreter on the host: the wheelhouse is built for it and
# needs PyPI (unreachable from a rootfs).
pytestmark = [pytest.mark.main_only, pytest.mark.host_only]


def _clean_copy(dest):
    """The files a build reads, copied: pip builds in the source tree, and a build/
    left there by an earlier run would hide a module setup.cfg does not list."""
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(os.path.join(REPO, name), str(dest / name))
    shutil.copytree(os.path.join(REPO, "pyimgtools"), str(dest / "pyimgtools"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return str(dest)


def test_the_wheel_installs_a_working_console_script(tmp_path):
    wheels = tmp_path / "wheels"
    (tmp_path / "src").mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--find-links", wheelhouse("bookworm"), "-w", str(wheels),
                    _clean_copy(tmp_path / "src")],
                   check=True, capture_output=True)
    (wheel,) = glob.glob(str(wheels / "pyimgtools-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", wheel], check=True,
                   capture_output=True)
    proc = subprocess.run([str(venv / "bin" / "pyimgtools"), "--version"], capture_output=True,
                          text=True, check=True)
    assert proc.stdout.startswith("pyimgtools ")
    # a command too: its adapter (pyimgtools/commands/) and its library are in the wheel
    (tmp_path / "tree" / "tests").mkdir(parents=True)
    proc = subprocess.run([str(venv / "bin" / "pyimgtools"), "prune", "--dry-run",
                           str(tmp_path / "tree")], capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "would remove %s/" % (tmp_path / "tree" / "tests") in proc.stdout.splitlines()
