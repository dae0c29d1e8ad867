"""`compile` as root on a tree another user can write: a process swapping a
`__pycache__` directory for a symlink to an outside directory during the run
(renameat2 RENAME_EXCHANGE in a loop) must never make it create, overwrite or
re-mode anything outside the tree (issue 14, item 1)."""

import os
import stat
import subprocess
import sys
import time

from tests.harness.inprocess import in_process

# Swaps DIR/__pycache__ (a real directory) and DIR/swap (a symlink to outside)
# until killed.
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
sys.stdout.write("go\n"); sys.stdout.flush()
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""
N_FILES = 300
RUNS = 12


def snapshot(directory):
    st = os.stat(directory)
    found = {"": (stat.S_IMODE(st.st_mode), None)}
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            found[name] = (stat.S_IMODE(os.stat(path).st_mode), f.read())
    return found


def test_swapped_pycache_never_leads_outside(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    pkg = tree / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    outside.mkdir()
    os.chmod(str(outside), 0o700)
    tag = sys.implementation.cache_tag
    for i in range(N_FILES):
        (pkg / ("m%03d.py" % i)).write_text("V = %d\n" % i)
        # what a followed link would overwrite
        with open(str(outside / ("m%03d.%s.pyc" % (i, tag))), "wb") as f:
            f.write(b"outside %d" % i)
    os.symlink(str(outside), str(pkg / "swap"))
    before = snapshot(str(outside))
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(pkg / "__pycache__"), str(pkg / "swap")],
                               stdout=subprocess.PIPE)
    try:
        assert swapper.stdout.readline() == b"go\n"
        codes = []
        for _ in range(RUNS):
            codes.append(in_process("compile", "--python", sys.executable, "--force", str(tree)).returncode)
    finally:
        swapper.kill()
        swapper.wait()
    time.sleep(0)
    assert snapshot(str(outside)) == before
    assert set(codes) <= {0, 1}
    # Between the runs' failures, the tree got its bytecode.
    assert any(name.endswith(".pyc") for d in ("__pycache__", "swap") if (pkg / d).is_dir()
               and not os.path.islink(str(pkg / d)) for name in os.listdir(str(pkg / d)))
