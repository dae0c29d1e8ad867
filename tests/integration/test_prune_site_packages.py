"""prune on a real site-packages: numpy 2.2 (whose numpy.testing imports
numpy/_core/tests/_natype.py at module level), scipy, networkx from PyPI, and a
distribution built here whose __init__.py imports its own `tests` package.

The default prune removes the test suites and everything still imports; the
upstream `find` on a copy of the same venv breaks the self-importing
distribution (and numpy.testing), which shows the check can fail.
Wheels are cached under $PYIMGTOOLS_TEST_CACHE/wheels (pip download on a cold cache).
"""

import base64
import glob
import hashlib
import os
import subprocess
import tempfile
import zipfile

import pytest

from tests.harness.prereq import CACHE_DIR, require, require_pyenv_python
from tests.harness.prune_support import copy_tree, prune_json, rm_tree, upstream_find

WHEELS = os.path.join(CACHE_DIR, "wheels")
REQUIREMENTS = ["numpy==2.2.6", "scipy==1.15.3", "networkx==3.6.1"]
IMPORTS = "import numpy.testing, scipy.linalg, networkx, selfimp; print(selfimp.NA)"


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def build_selfimp_wheel(directory):
    """A pure-Python wheel (PEP 427 layout) whose package imports its own tests package."""
    files = {
        "selfimp/__init__.py": b"from .tests._helpers import NA\n",
        "selfimp/tests/__init__.py": b"",
        "selfimp/tests/_helpers.py": b"NA = 'selfimp-NA'\n",
        "selfimp/tests/test_selfimp.py": b"def test_na():\n    from selfimp import NA\n    assert NA\n",
        "selfimp-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: selfimp\nVersion: 1.0\n",
        "selfimp-1.0.dist-info/WHEEL": (b"Wheel-Version: 1.0\nGenerator: pyimgtools-tests\n"
                                        b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = [_record_line(n, d) for n, d in files.items()] + ["selfimp-1.0.dist-info/RECORD,,"]
    path = os.path.join(directory, "selfimp-1.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("selfimp-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def _have_wheels():
    names = [r.split("==")[0] + "-" + r.split("==")[1] + "-" for r in REQUIREMENTS]
    return all(glob.glob(os.path.join(WHEELS, n + "*.whl")) for n in names)


@pytest.fixture(scope="module")
def venvs():
    python = require_pyenv_python("3.11")
    if not _have_wheels():
        os.makedirs(WHEELS, exist_ok=True)
        proc = subprocess.run([python, "-m", "pip", "download", "-q", "--only-binary=:all:",
                               "-d", WHEELS] + REQUIREMENTS, capture_output=True, text=True)
        require(proc.returncode == 0 and _have_wheels(),
                "cannot download %s from PyPI: %s" % (REQUIREMENTS, proc.stderr[-500:]))
    shm = "/dev/shm"
    base = tempfile.mkdtemp(prefix="pyimgtools-prune-sp-", dir=shm if os.access(shm, os.W_OK) else None)
    try:
        venv = os.path.join(base, "venv")
        subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True)
        wheel = build_selfimp_wheel(base)
        # pip of the base interpreter installs into the venv (--without-pip keeps it small)
        subprocess.run([python, "-m", "pip", "--python", os.path.join(venv, "bin", "python"),
                        "install", "-q", "--no-index", "--find-links", WHEELS, "--no-compile"]
                       + REQUIREMENTS + [wheel], check=True, capture_output=True)
        vpy = os.path.join(venv, "bin", "python")
        # bytecode as a real image has it after the first imports
        subprocess.run([vpy, "-c", IMPORTS], check=True, capture_output=True)
        copy = os.path.join(base, "venv-find")
        copy_tree(venv, copy)
        yield venv, copy
    finally:
        rm_tree(base)


def _import(venv):
    return subprocess.run([os.path.join(venv, "bin", "python"), "-c", IMPORTS],
                          capture_output=True, text=True)


@pytest.mark.main_only
def test_default_prune_keeps_imported_test_packages_and_upstream_breaks_them(venvs):
    venv, copy = venvs
    sp = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))[0]
    assert os.path.isdir(os.path.join(sp, "numpy/linalg/tests"))
    doc, proc = prune_json(venv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = {os.path.relpath(k["path"], sp): os.path.relpath(k["importer"], sp) for k in doc["kept"]}
    assert kept.get("selfimp/tests") == "selfimp/__init__.py"
    assert kept.get("numpy/_core/tests") in ("numpy/testing/_private/utils.py", "numpy/conftest.py")
    assert "kept %s" % os.path.join(sp, "selfimp/tests") in proc.stderr
    # the test suites went
    for gone in ("numpy/linalg/tests", "scipy/linalg/tests", "networkx/algorithms/tests",
                 "numpy/_core/tests/__pycache__"):
        assert not os.path.exists(os.path.join(sp, gone)), gone
    assert not glob.glob(os.path.join(sp, "numpy/**/*.pyc"), recursive=True)
    assert os.path.exists(os.path.join(sp, "numpy/_core/tests/_natype.py"))
    assert doc["totals"]["by_rule"]["tests"]["dirs"] > 100
    # ... and everything still imports
    proc = _import(venv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "selfimp-NA"

    # the upstream recipe on the copy breaks the self-importing distribution
    upstream_find(copy)
    proc = _import(copy)
    assert proc.returncode != 0
    proc = subprocess.run([os.path.join(copy, "bin", "python"), "-c", "import selfimp"],
                          capture_output=True, text=True)
    assert "No module named 'selfimp.tests'" in proc.stderr
    proc = subprocess.run([os.path.join(copy, "bin", "python"), "-c", "import numpy.testing"],
                          capture_output=True, text=True)
    assert "No module named 'numpy._core.tests'" in proc.stderr
