"""prune on a hostile tree (root only): symlinks out of the tree and in loops, bind
mounts of the same file system (which st_dev does not reveal), odd names, a
3,000-level chain, an immutable test directory and a run as an unprivileged user.

Everything made here is undone in `finally` blocks: mounts unmounted, `chattr -i`.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import REPO
from tests.harness.prereq import require, require_root, require_tools
from tests.harness.prune_support import listing, make_tree, path_bytes, prune_json, rm_tree

SENTINEL = b"do not delete\n"


def _chattr_works(directory):
    probe = os.path.join(directory, "chattr-probe")
    os.mkdir(probe)
    try:
        ok = subprocess.run(["chattr", "+i", probe], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["chattr", "-i", probe], check=True)
        return ok
    finally:
        os.rmdir(probe)


def _deep_chain(top, levels):
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.mkdir("tests", dir_fd=fd)
        with open(os.open("tests/t.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"")
        with open(os.open("sentinel", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(SENTINEL)
    finally:
        os.close(fd)


@pytest.fixture
def work():
    require_root()
    require_tools("mount", "umount", "chattr", "find", "setpriv")
    base = tempfile.mkdtemp(prefix="pyimgtools-prune-adv-", dir="/var/tmp")
    os.chmod(base, 0o755)
    state = {"mounts": [], "immutable": []}
    try:
        yield base, state
    finally:
        for path in state["immutable"]:
            subprocess.run(["chattr", "-i", path], check=False)
        for path in reversed(state["mounts"]):
            if subprocess.run(["umount", path], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", path], check=False)
        rm_tree(base)


def test_hostile_tree(work):
    base, state = work
    require(_chattr_works(base), "chattr +i does not work on the file system of /var/tmp")
    outside = os.path.join(base, "outside")
    make_tree(outside, {"tests/sentinel": SENTINEL, "victim.pyc": SENTINEL, "dir/sentinel": SENTINEL})
    src = os.path.join(base, "bind-src")   # the same file system as the tree
    make_tree(src, {"tests/sentinel": SENTINEL, "mod.pyc": SENTINEL, "sub/tests/sentinel": SENTINEL})
    src2 = os.path.join(base, "bind-src2")
    make_tree(src2, {"sentinel": SENTINEL, "x.pyc": SENTINEL})
    tree = os.path.join(base, "tree")
    make_tree(tree, {
        "lib/tests": ("link", os.path.join(outside, "tests")),
        "lib/escape.pyc": ("link", os.path.join(outside, "victim.pyc")),
        "lib/dir-link": ("link", os.path.join(outside, "dir")),
        "lib/loop-a": ("link", "loop-b"), "lib/loop-b": ("link", "loop-a"),
        "lib/up": ("link", ".."),
        "lib/mnt": None,                                  # bind mount of bind-src
        "lib/pkg/tests/t.py": b"", "lib/pkg/tests/mnt": None,   # a mount inside a test dir
        "lib/pkg/tests/escape": ("link", outside),
        "lib/other/tests": None,                          # a bind mount named tests
        b"lib/odd/new\nline/tests/x": b"", b"lib/odd/ space /m.pyc": b"", b"lib/odd/ space /m.py": b"",
        b"lib/odd/-rf/tests/x": b"", b"lib/odd/\xff\xfe/tests/x": b"",
        "lib/locked/tests/t.py": b"", "lib/locked/tests/data/d.txt": b"", "lib/locked/keep.py": b"",
        "lib/m.pyc": b"pyc", "lib/m.py": b"",   # legacy bytecode beside its source
    })
    _deep_chain(os.path.join(tree, "lib"), 3000)
    for target, source in ((os.path.join(tree, "lib/mnt"), src),
                           (os.path.join(tree, "lib/pkg/tests/mnt"), src2),
                           (os.path.join(tree, "lib/other/tests"), src2)):
        subprocess.run(["mount", "--bind", source, target], check=True)
        state["mounts"].append(target)
    locked = os.path.join(tree, "lib/locked/tests")
    subprocess.run(["chattr", "+i", locked], check=True)
    state["immutable"].append(locked)
    # the precondition that makes this test meaningful: st_dev cannot tell the bind mounts
    assert os.stat(os.path.join(tree, "lib/mnt")).st_dev == os.stat(tree).st_dev

    before_outside = {k: listing(k) for k in (outside, src, src2)}
    before = listing(tree)
    dry, proc = prune_json("--dry-run", tree)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert listing(tree) == before
    planned = {path_bytes(e["path"]) for e in dry["removed"]}

    doc, proc = prune_json(tree)
    assert proc.returncode == 1, proc.stderr[-3000:]  # the immutable directory failed
    tb = os.fsencode(tree)
    failed = {path_bytes(f["path"]) for f in doc["failed"]}
    assert failed == {tb + b"/lib/locked/tests/t.py", tb + b"/lib/locked/tests/data"}
    for path in failed:
        assert os.fsdecode(path) in proc.stderr                 # reported by path
    after = listing(tree)
    gone = {tb + b"/" + p for p in before - after}
    # what disappeared is what was planned, minus the immutable directory's entries and itself
    # (its subdirectory's content could go: only the immutable directory's own entries are locked)
    assert gone == planned - failed - {tb + b"/lib/locked/tests"}
    assert tb + b"/lib/locked/tests/data/d.txt" in gone
    assert {path_bytes(e["path"]) for e in doc["removed"]} == gone

    # nothing outside the tree changed, the bind-mounted file systems are untouched
    for k, v in before_outside.items():
        assert listing(k) == v
    for d in (outside, src, src2):
        for dirpath, _, files in os.walk(d):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    assert f.read() == SENTINEL
    assert listing(os.path.join(tree, "lib/mnt")) == before_outside[src]
    # the mount inside a test directory kept that directory (and said so)
    assert os.path.isdir(os.path.join(tree, "lib/pkg/tests/mnt"))
    assert not os.path.exists(os.path.join(tree, "lib/pkg/tests/t.py"))
    skipped = {e["path"] for e in doc["skipped"]}
    assert os.path.join(tree, "lib/pkg/tests/mnt") in skipped
    assert os.path.join(tree, "lib/other/tests") in skipped
    assert os.path.islink(os.path.join(tree, "lib/tests"))
    assert os.path.islink(os.path.join(tree, "lib/escape.pyc"))
    assert not os.path.exists(os.path.join(tree, "lib/m.pyc"))
    deep = b"lib/" + b"/".join([b"d"] * 3000)
    assert deep + b"/sentinel" in after and deep + b"/tests" not in after
    for name in (b"new\nline", b"-rf", b"\xff\xfe"):
        assert b"lib/odd/" + name in after and b"lib/odd/" + name + b"/tests" not in after


def test_unprivileged_user_gets_each_failure_by_path(work):
    base, state = work
    python = shutil.which("python3", path="/usr/bin:/bin")
    require(python is not None, "needs /usr/bin/python3 (the pyenv pythons are under /root, 0700)")
    tree = os.path.join(base, "tree")
    make_tree(tree, {"a/tests/x": b"", "a/tests/y": b"", "b/tests/z": b"", "c/m.pyc": b"", "c/m.py": b"",
                     "d/tests/w": b""})
    subprocess.run(["chown", "-R", "nobody:nogroup", tree], check=True)
    subprocess.run(["chown", "root:root", os.path.join(tree, "a/tests")], check=True)  # nobody can't unlink in it
    os.chmod(os.path.join(tree, "a/tests"), 0o755)
    os.chown(os.path.join(tree, "d"), 0, 0)          # nobody can't remove d/tests itself
    os.chmod(os.path.join(tree, "d"), 0o755)
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         python, "-m", "pyimgtools", "prune", "--json", tree],
        capture_output=True, env={"PYTHONPATH": REPO, "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    failed = sorted(f["path"] for f in doc["failed"])
    assert failed == sorted([os.path.join(tree, "a/tests/x"), os.path.join(tree, "a/tests/y"),
                             os.path.join(tree, "d/tests")])
    assert all("Permission denied" in f["error"] for f in doc["failed"])
    assert not os.path.exists(os.path.join(tree, "b/tests")) and not os.path.exists(os.path.join(tree, "c/m.pyc"))
    assert os.path.exists(os.path.join(tree, "a/tests/x")) and os.path.isdir(os.path.join(tree, "d/tests"))
    assert not os.path.exists(os.path.join(tree, "d/tests/w"))
    assert "pyimgtools prune: removed 3 files in 1 directory " in proc.stderr.decode()  # b/tests
