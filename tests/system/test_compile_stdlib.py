"""`pyimgtools compile` against `compileall` on the real standard libraries of CPython 3.8-3.13.

pyimgtools runs under the main interpreter and compiles through `--python` for
each pyenv CPython. For each invalidation mode, a copy of that stdlib compiled by
compileall (every level, no exclusion) and a hard-linked twin compiled by
pyimgtools must hold the same .pyc files (except those of the files the skip rule
names), with the same headers and code objects; the interpreter must use them at
import; a second run must compile nothing. Expensive (the stdlib compiled 18 times
per interpreter): runs once per scripts/test, not per interpreter of the matrix.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli
from tests.harness.compile_support import (COMPARE, COMPILEALL, IMPORT, pyc_name,
                                           recompiled_lines, run_json, used_pyc_lines)
from tests.harness.prereq import require_pyenv_python
from tests.harness.stdlib_compile import copy_stdlib_sources, link_tree

pytestmark = pytest.mark.main_only

MODES = ("timestamp", "checked-hash", "unchecked-hash")
LEVELS = (0, 1, 2)
LEVEL_FLAGS = {0: [], 1: ["-O"], 2: ["-OO"]}


def assert_imports_use_pycs(exe, tree, level):
    proc = subprocess.run([exe, "-B", "-S", "-v"] + LEVEL_FLAGS[level] + ["-c", IMPORT, tree],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert recompiled_lines(proc.stderr, tree) == []
    used = used_pyc_lines(proc.stderr, tree)
    assert len(used) >= 20, "only %d .pyc files used:\n%s" % (len(used), "\n".join(used))
    suffix = ".opt-%d.pyc" % level if level else ".pyc"
    assert all(line.split(" matches ")[0].endswith(suffix) for line in used)


def check_stdlib_compiles_like_compileall_in_every_mode_and_level(minor, tmp_path):
    started = time.monotonic()
    exe = require_pyenv_python(minor)
    facts = run_json([exe, "-c", "import json, sys, sysconfig; print(json.dumps("
                      "[sysconfig.get_paths()['stdlib'], sys.implementation.cache_tag]))"])
    stdlib, cache_tag = facts
    src, ref, ours = (str(tmp_path / n) for n in ("src", "refs", "ours"))  # same length
    n_sources = copy_stdlib_sources(stdlib, src)
    link_tree(src, ref)
    link_tree(src, ours)
    timings = {}

    for mode in MODES:
        t0 = time.monotonic()
        subprocess.run([exe, "-c", COMPILEALL, ref, mode, "0,1,2"], check=True,
                       capture_output=True)
        t1 = time.monotonic()
        proc = run_cli("--json", "compile", "--python", exe, "--invalidation-mode", mode,
                       "-O", "0", "-O", "1", "-O", "2", ours)
        t2 = time.monotonic()
        timings[mode] = (round(t1 - t0, 1), round(t2 - t1, 1))
        assert proc.returncode == 0, proc.stderr[-3000:]
        doc = __import__("json").loads(proc.stdout)
        skipped = {os.path.relpath(p, ours) for p in doc["skipped"]}
        assert doc["files"]["compiled"] == n_sources - len(skipped)
        assert doc["files"]["up_to_date"] == 0 and doc["files"]["failed"] == 0
        assert doc["pycs_written"] == 3 * (n_sources - len(skipped))

        cmp = run_json([exe, "-c", COMPARE, ref, ours])
        assert cmp["n_mismatches"] == 0, cmp["mismatches"]
        assert cmp["bad_modes"] == []
        assert cmp["only_ours"] == []
        # compileall wrote a .pyc for every file that compiles: the ones it could
        # not compile are all covered by the skip rule ...
        failing = {s for s in cmp["sources"]
                   if not os.path.exists(os.path.join(ref, pyc_name(s, cache_tag, 0)))}
        assert failing, "the stdlib copy should hold files meant not to compile"
        assert failing <= skipped
        # ... and the only .pyc files pyimgtools did not write are those of skipped files.
        skipped_pycs = {pyc_name(s, cache_tag, lv) for s in skipped for lv in LEVELS}
        assert set(cmp["only_ref"]) <= skipped_pycs
        assert cmp["ours"] == 3 * (n_sources - len(skipped))

        # Idempotent: a second run compiles nothing, in every mode.
        again = run_cli("--json", "compile", "--python", exe, "--invalidation-mode", mode,
                        "-O", "0", "-O", "1", "-O", "2", ours)
        assert again.returncode == 0, again.stderr[-3000:]
        doc2 = __import__("json").loads(again.stdout)
        assert doc2["files"]["compiled"] == 0 and doc2["pycs_written"] == 0
        assert doc2["files"]["up_to_date"] == n_sources - len(skipped)

        # The interpreter uses them at import, at every level.
        for level in LEVELS:
            assert_imports_use_pycs(exe, ours, level)
        if mode == "timestamp":
            # Copied with mtimes preserved (cp -a, tar), timestamp pycs stay valid.
            moved = str(tmp_path / "moved")
            shutil.copytree(os.path.join(ours, "json"), os.path.join(moved, "json"))
            proc = subprocess.run([exe, "-B", "-S", "-v", "-c", "import sys; sys.path.insert(0, %r); "
                                   "import json.decoder" % moved], capture_output=True, text=True)
            assert recompiled_lines(proc.stderr, moved) == []
            assert len(used_pyc_lines(proc.stderr, moved)) >= 3  # json, .decoder, .scanner, .encoder
            shutil.rmtree(moved)

    sys.stderr.write("\n%s: %d sources, seconds (compileall, pyimgtools) per mode: %s, total %.0f s\n"
                     % (minor, n_sources, timings, time.monotonic() - started))


# One class per interpreter: scripts/test runs pytest-xdist with --dist loadscope,
# which keeps a module's functions on one worker but spreads classes, so these
# long, independent checks run side by side.
class TestCPython38:
    def test_stdlib_compiles_like_compileall(self, tmp_path):
        check_stdlib_compiles_like_compileall_in_every_mode_and_level("3.8", tmp_path)


class TestCPython39:
    def test_stdlib_compiles_like_compileall(self, tmp_path):
        check_stdlib_compiles_like_compileall_in_every_mode_and_level("3.9", tmp_path)


class TestCPython310:
    def test_stdlib_compiles_like_compileall(self, tmp_path):
        check_stdlib_compiles_like_compileall_in_every_mode_and_level("3.10", tmp_path)


class TestCPython311:
    def test_stdlib_compiles_like_compileall(self, tmp_path):
        check_stdlib_compiles_like_compileall_in_every_mode_and_level("3.11", tmp_path)


class TestCPython312:
    def test_stdlib_compiles_like_compileall(self, tmp_path):
        check_stdlib_compiles_like_compileall_in_every_mode_and_level("3.12", tmp_path)


class TestCPython313:
    def test_stdlib_compiles_like_compileall(self, tmp_path):
        check_stdlib_compiles_like_compileall_in_every_mode_and_level("3.13", tmp_path)
