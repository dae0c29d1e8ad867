"""Python 3.8+ for real: vermin finds no construct newer than 3.8."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.harness.prereq import require

pytestmark = pytest.mark.main_only


def test_vermin_finds_no_violation_for_python_3_8():
    exe = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    require(os.path.exists(exe), "needs vermin (tests/requirements.txt)")
    proc = subprocess.run([exe, "--target=3.8-", "--violations", "--no-tips", "--eval-annotations",
                           os.path.join(REPO, "pyimgtools")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
