"""The README's third way in: `pip wheel .`, then `pip install pyimgtools-*.whl`
into a Python environment gives a working `pyimgtools` console script.

The build runs offline: setuptools and wheel come from the app wheelhouse
(tests/harness/wheelhouse.py, fetched once with pip download)."""

import glob
import os

import pytest
import subprocess
import sys

from tests.harness.wheelhouse import wheelhouse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Once, under the main interpreter on the host: the wheelhouse is built for it and
# needs PyPI (unreachable from a rootfs).
pytestmark = [pytest.mark.main_only, pytest.mark.host_only]


def test_the_wheel_installs_a_working_console_script(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--find-links", wheelhouse("bookworm"), "-w", str(wheels), REPO],
                   check=True, capture_output=True)
    (wheel,) = glob.glob(str(wheels / "pyimgtools-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", wheel], check=True,
                   capture_output=True)
    proc = subprocess.run([str(venv / "bin" / "pyimgtools"), "--version"], capture_output=True,
                          text=True, check=True)
    assert proc.stdout.startswith("pyimgtools ")
