"""compile: `pyimgtools compile` vs `python -m compileall -q -j0` on a copy of the stdlib.

The input is the .py files of CPython 3.11's standard library (pyenv's, or
$PYIMGTOOLS_BENCH_PYTHON's), without __pycache__ or site-packages. Both tools run
under that interpreter with the same number of workers (all CPUs) and skip the
same files meant not to compile. Cold: no .pyc yet (mode timestamp, compileall's
default, for a fair match). Warm: everything already compiled by the same tool
in the same mode (compileall recompiles every hash-based .pyc, CPython #121577).
Every ratio is against the first row; compare warm rows with each other. The
serial row gives the floor of any parallel compiler on this machine: its time
divided by the CPUs (all the work is compile(), file creation and reading).
"""

import glob
import os
import shutil
import subprocess
import sys

from _frame import REPO, Variant

DESCRIPTION = "byte-compile a stdlib copy: cold, warm timestamp, warm checked-hash"


def _python():
    exe = os.environ.get("PYIMGTOOLS_BENCH_PYTHON")
    if exe:
        return exe
    found = sorted(glob.glob("/root/.pyenv/versions/3.11.*/bin/python3.11"))
    return found[-1] if found else sys.executable


PY = _python()


def _skip():
    """The -x that pyimgtools applies for PY's version (CPython's own make install rule)."""
    sys.path.insert(0, REPO)
    from pyimgtools.compile import skip_rule
    version = subprocess.run([PY, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return skip_rule(version).pattern


SKIP = _skip()


def _copy_sources(dest):
    stdlib = subprocess.run([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    for d, dirs, files in os.walk(stdlib):
        rel = os.path.relpath(d, stdlib)
        dirs[:] = [x for x in dirs if x != "__pycache__" and not (rel == "." and x == "site-packages")]
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for f in files:
            if f.endswith(".py"):
                shutil.copy2(os.path.join(d, f), os.path.join(dest, rel, f))


def compileall(mode, jobs="-j0"):
    return lambda run_dir: [PY, "-m", "compileall", "-q", jobs, "-x", SKIP,
                            "--invalidation-mode", mode, os.path.join(run_dir, "lib")]


def pyimgtools(mode):
    return lambda run_dir: [PY, "-m", "pyimgtools", "compile", "-q", "--python", PY,
                            "--invalidation-mode", mode, os.path.join(run_dir, "lib")]


def variants(work):
    source = os.path.join(work, "stdlib")
    _copy_sources(source)
    env = dict(os.environ, PYTHONPATH=REPO)

    def fresh(run_dir):
        subprocess.run(["cp", "-al", source, os.path.join(run_dir, "lib")], check=True)

    def warm(command):
        def prepare(run_dir):
            fresh(run_dir)
            subprocess.run(command(run_dir), check=False, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return prepare

    return [
        Variant("compileall -j0 cold (timestamp)", compileall("timestamp"), fresh, ok_returncodes=(0, 1)),
        Variant("pyimgtools cold (timestamp)", pyimgtools("timestamp"), fresh),
        # The floor for any parallel compiler: this row's time / CPUs.
        Variant("compileall -j1 cold (timestamp, serial)", compileall("timestamp", "-j1"), fresh,
                ok_returncodes=(0, 1)),
        Variant("compileall -j0 warm (timestamp)", compileall("timestamp"),
                warm(compileall("timestamp")), ok_returncodes=(0, 1)),
        Variant("pyimgtools warm (timestamp)", pyimgtools("timestamp"), warm(pyimgtools("timestamp"))),
        Variant("compileall -j0 warm (checked-hash)", compileall("checked-hash"),
                warm(compileall("checked-hash")), ok_returncodes=(0, 1)),
        Variant("pyimgtools warm (checked-hash)", pyimgtools("checked-hash"),
                warm(pyimgtools("checked-hash"))),
    ]
