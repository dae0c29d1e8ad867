"""The reference `pyimgtools prune` is compared with, and how the prune tests run it.

Expected values come from independent tools: GNU find (the upstream recipe,
and `find -print0` listings), the file system itself (os.lstat), hand-made
fixtures.
"""

import json
import os
import subprocess

from tests.conftest import run_cli

UPSTREAM_FIND = [
    "-depth", "(",
    "(", "-type", "d", "-a", "(", "-name", "test", "-o", "-name", "tests", "-o", "-name", "idle_test", ")", ")",
    "-o", "(", "-type", "f", "-a", "(", "-name", "*.pyc", "-o", "-name", "*.pyo", "-o",
    "-name", "libpython*.a", ")", ")",
    ")", "-exec", "rm", "-rf", "{}", "+"]


def upstream_find(top):
    """The upstream recipe (reference/upstream-recipe.md) on `top`, exactly."""
    subprocess.run(["find", os.fspath(top)] + UPSTREAM_FIND, check=True)


def listing(top, drop_pycache_dirs=False):
    """Every path under `top` (bytes, relative), from `find -print0`."""
    args = ["find", os.fspath(top), "-mindepth", "1"]
    if drop_pycache_dirs:
        args += ["!", "(", "-type", "d", "-name", "__pycache__", ")"]
    out = subprocess.run(args + ["-print0"], check=True, stdout=subprocess.PIPE).stdout
    prefix = os.fsencode(os.fspath(top)) + b"/"
    return {p[len(prefix):] for p in out.split(b"\0") if p}


def copy_tree(src, dst):
    subprocess.run(["cp", "-a", os.fspath(src), os.fspath(dst)], check=True)


def rm_tree(path):
    """Remove a test tree (works for trees deeper than PATH_MAX, unlike shutil.rmtree on 3.8-3.11)."""
    subprocess.run(["rm", "-rf", "--one-file-system", os.fspath(path)], check=False)


def prune(*args, **kw):
    return run_cli("prune", *[os.fsdecode(a) for a in args], **kw)


def prune_json(*args, **kw):
    """(document, CompletedProcess) of `pyimgtools prune --json ARGS`."""
    proc = prune("--json", *args, **kw)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout), proc


def path_bytes(value):
    """A JSON path (text or {"bytes_hex": ...}) back to bytes."""
    if isinstance(value, dict):
        return bytes.fromhex(value["bytes_hex"])
    return os.fsencode(value)


def removed_paths(doc, top):
    """Paths listed as removed, relative to `top`, as bytes."""
    prefix = os.fsencode(os.fspath(top)) + b"/"
    result = set()
    for entry in doc["removed"]:
        p = path_bytes(entry["path"])
        assert p.startswith(prefix), p
        result.add(p[len(prefix):])
    return result


def make_tree(top, spec):
    """Build files/dirs/links from a dict {relative path (str or bytes): content}.

    content: bytes -> file; None -> directory; ("link", target) -> symlink;
    ("fifo",) -> named pipe.
    """
    top = os.fsencode(os.fspath(top))
    for rel, content in spec.items():
        path = top + b"/" + (rel if isinstance(rel, bytes) else os.fsencode(rel))
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        if content is None:
            os.makedirs(path, exist_ok=True)
        elif isinstance(content, tuple) and content[0] == "link":
            os.symlink(content[1], path)
        elif isinstance(content, tuple) and content[0] == "fifo":
            os.mkfifo(path)
        else:
            with open(path, "wb") as f:
                f.write(content)
