"""Parity with the upstream `find` on a real CPython install tree.

Two `cp -a` copies of this machine's source-built CPython 3.11 (pyenv) minus its
site-packages: the upstream command runs on one, `pyimgtools prune` on the
other; the remaining paths must be the same, except the `__pycache__`
directories find leaves empty. The same run checks that --dry-run --json lists
exactly what disappears and that a second run removes nothing.
"""

import glob
import os
import pathlib
import shlex
import shutil
import subprocess
import tempfile

import pytest

from tests.harness.prereq import require_pyenv_python, require_tools
from tests.harness.prune_support import (
    copy_tree, listing, prune, prune_json, removed_paths, rm_tree, upstream_find)


@pytest.fixture(scope="module")
def cpython_copies(tmp_path_factory):
    exe = require_pyenv_python("3.11")
    require_tools("find", "cp")
    prefix = os.path.dirname(os.path.dirname(exe))
    # tmpfs when there is one: the copies are made faster, the comparison is the same
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30:
        work = pathlib.Path(tempfile.mkdtemp(prefix="pyimgtools-prune-parity-", dir=shm))
    else:
        work = tmp_path_factory.mktemp("prune-parity")
    a = work / "find"
    a.mkdir()
    excludes = ["--exclude=./" + os.path.relpath(sp, prefix)
                for sp in glob.glob(os.path.join(prefix, "lib", "python3*", "site-packages"))]
    subprocess.run("tar -C %s %s -cf - . | tar -C %s -xpf -" % (
        shlex.quote(prefix), " ".join(shlex.quote(e) for e in excludes), shlex.quote(str(a))),
        shell=True, check=True)
    b = work / "prune"
    copy_tree(a, b)
    try:
        yield a, b
    finally:
        rm_tree(work)


@pytest.mark.main_only
def test_prune_leaves_what_upstream_find_leaves_on_a_cpython_install(cpython_copies):
    a, b = cpython_copies
    before = listing(b)
    assert b"lib/python3.11/test/test_os.py" in before  # a real install tree
    doc, proc = prune_json("--dry-run", b)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert listing(b) == before
    planned = removed_paths(doc, b)
    # the standard library imports its test packages only inside functions or under
    # `if __name__ == "__main__":` (idlelib, multiprocessing): nothing is kept
    assert doc["kept"] == []

    upstream_find(a)
    doc2, proc = prune_json(b)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = listing(b)
    assert listing(b, drop_pycache_dirs=True) == listing(a, drop_pycache_dirs=True)
    assert before - after == planned
    assert removed_paths(doc2, b) == planned
    assert not [p for p in after if p.endswith(b"/__pycache__")]  # they were all left empty

    proc = prune(b)
    assert proc.returncode == 0 and "removed 0 files in 0 directories" in proc.stdout
