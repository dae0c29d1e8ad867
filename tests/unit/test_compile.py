"""`pyimgtools compile` on small trees, under the interpreter running the tests.

Expected .pyc contents come from py_compile (what compileall calls) and
importlib's own cache_from_source; up-to-date rules from PEP 552 and the
importer's behaviour.
"""

import contextlib
import importlib.util
import json
import marshal
import os
import py_compile
import stat
import subprocess
import sys

import pytest

from pyimgtools import compile as compile_cmd
from pyimgtools import pycompile_worker as worker
from pyimgtools import pytarget
from tests.conftest import run_cli
from tests.harness.compile_support import pyc
from tests.harness.inprocess import in_process

TAG = sys.implementation.cache_tag
MODES = {"timestamp": py_compile.PycInvalidationMode.TIMESTAMP,
         "checked-hash": py_compile.PycInvalidationMode.CHECKED_HASH,
         "unchecked-hash": py_compile.PycInvalidationMode.UNCHECKED_HASH}
SOURCE = b'"""Module doc."""\nimport os\n\ndef f(x):\n    """f doc."""\n    assert x, "no"\n    return [i * 2 for i in range(x)] + [1.5, float("nan")]\n'


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def cli(*args):
    return in_process("compile", "--python", sys.executable, *args)


def cli_json(*args):
    proc = in_process("--json", "compile", "--python", sys.executable, *args)
    return proc, json.loads(proc.stdout) if proc.stdout.strip() else None


def code_eq(a, b):
    # Compare the marshalled form of the code: == is false for NaN constants.
    return marshal.dumps(a) == marshal.dumps(b) or a == b


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "mod.py").write_bytes(SOURCE)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "deep.py").write_text("X = 1\n")
    (root / "notpython.txt").write_text("x")
    return root


# ------------------------------------------------------------------ the worker, in process

@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("level", [0, 1, 2])
def test_worker_writes_what_py_compile_writes(tmp_path, mode, level):
    src = tmp_path / "m.py"
    src.write_bytes(SOURCE)
    ref = tmp_path / "ref.pyc"
    py_compile.compile(str(src), cfile=str(ref), optimize=level, invalidation_mode=MODES[mode],
                       doraise=True)
    answer = worker.compile_item(os.fsencode(str(src)), None, (level,), worker.MODES[mode])
    assert answer[0] == "ok" and answer[1] == 1
    ours = open(pyc(src, level), "rb").read()
    theirs = ref.read_bytes()
    assert ours[:16] == theirs[:16]
    a, b = marshal.loads(ours[16:]), marshal.loads(theirs[16:])
    assert a.co_filename == b.co_filename == str(src)
    assert code_eq(a, b)
    assert answer[2] == len(ours)


def test_check_reports_each_reason(tmp_path):
    src = tmp_path / "m.py"
    src.write_bytes(SOURCE)
    os.chmod(str(src), 0o644)
    path = os.fsencode(str(src))
    ts, ch, un = worker.MODES["timestamp"], worker.MODES["checked-hash"], worker.MODES["unchecked-hash"]
    assert worker.check_item(path, None, (0, 1), ch, False) == (len(SOURCE), ["missing", "missing"])
    worker.compile_item(path, None, (0, 1), ch)
    assert worker.check_item(path, None, (0, 1), ch, False)[1] == ["", ""]
    assert worker.check_item(path, None, (0,), ch, True)[1] == ["forced"]
    assert worker.check_item(path, None, (0,), ts, False)[1] == ["other mode"]
    assert worker.check_item(path, None, (0,), un, False)[1] == ["other mode"]
    # Same size, same mtime, other content: only the hash notices.
    st = os.stat(str(src))
    src.write_bytes(SOURCE.replace(b"doc", b"DOC"))
    os.utime(str(src), ns=(st.st_atime_ns, st.st_mtime_ns))
    assert worker.check_item(path, None, (0,), ch, False)[1] == ["source changed"]
    worker.compile_item(path, None, (0,), un)
    assert worker.check_item(path, None, (0,), un, False)[1] == [""]
    src.write_bytes(SOURCE)
    os.utime(str(src), ns=(st.st_atime_ns, st.st_mtime_ns))
    # unchecked-hash pycs are never checked by the importer, but pyimgtools checks them.
    assert worker.check_item(path, None, (0,), un, False)[1] == ["source changed"]
    # timestamp: mtime matters, content does not
    worker.compile_item(path, None, (0,), ts)
    assert worker.check_item(path, None, (0,), ts, False)[1] == [""]
    os.utime(str(src), ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert worker.check_item(path, None, (0,), ts, False)[1] == ["source changed"]
    worker.compile_item(path, None, (0,), ts)
    # a .pyc others cannot read, while they can read the source
    os.chmod(pyc(src), 0o600)
    assert worker.check_item(path, None, (0,), ts, False)[1] == ["permissions"]
    with open(pyc(src), "r+b") as f:
        f.write(b"\0\0\0\0")
    assert worker.check_item(path, None, (0,), ts, False)[1] == ["other version"]


def test_worker_reports_syntax_errors_with_line(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("x = 1\n\ndef f(:\n    pass\n")
    answer = worker.compile_item(os.fsencode(str(src)), None, (0,), 3)
    assert answer[:2] == ("error", "SyntaxError")
    assert answer[3] == 3
    assert not os.path.exists(pyc(src))


# ------------------------------------------------------------------ rules

@pytest.mark.parametrize("version, rel", [
    # files each of CPython 3.8-3.15 fails to compile (found with compile()):
    ("3.8", "python3.8/lib2to3/tests/data/bom.py"),
    ("3.11", "python3.11/lib2to3/tests/data/py2_test_grammar.py"),
    ("3.11", "python3.11/test/bad_coding.py"), ("3.9", "python3.9/test/badsyntax_future10.py"),
    ("3.12", "python3.12/test/test_future_stmt/badsyntax_future.py"),
    ("3.13", "python3.13/test/tokenizedata/bad_coding2.py"),
    ("3.14", "python3.14/test/tokenizedata/badsyntax_pep3120.py"),
    ("3.12", "python3.12/test/test_lib2to3/data/crlf.py"),
    ("3.12", "python3.12/test/test_lib2to3/data/different_encoding.py"),
    # PEP 810's test data: CPython's rule is unanchored (`badsyntax`, not `badsyntax_`)
    ("3.15", "python3.15/test/test_lazy_import/data/badsyntax/lazy_class_body.py"),
    ("3.16", "python3.16/test/test_lazy_import/data/badsyntax/x.py"),  # newer: the last rule
])
def test_skip_rule_covers_the_stdlib_files_meant_not_to_compile(version, rel):
    assert compile_cmd.skip_rule(version).search(rel)


@pytest.mark.parametrize("version, rel", [
    ("3.11", "python3.11/lib2to3/fixer_util.py"), ("3.11", "python3.11/test/test_coding.py"),
    ("3.13", "python3.13/test/tokenizedata/coding20731.py"),
    # lib2to3's data is only skipped where CPython's own rule names it
    ("3.13", "python3.13/test/test_lib2to3/data/crlf.py"), ("3.11", "python3.11/test/test_lib2to3/data/x.py"),
])
def test_skip_rule_spares_ordinary_files(version, rel):
    assert not compile_cmd.skip_rule(version).search(rel)


def test_skip_rule_sees_only_the_tree_not_the_directories_above_it(tmp_path):
    # CPython's regexes are unanchored: a tree under a directory named like one
    # (pytest's tmp dir of a test_badsyntax_* test) is still compiled.
    root = tmp_path / "badsyntax_here" / "bad_coding" / "tree"
    (root / "badsyntax").mkdir(parents=True)
    (root / "ok.py").write_text("X = 1\n")
    (root / "badsyntax" / "b.py").write_text("lazy = (\n")
    proc, doc = cli_json(str(root))
    assert proc.returncode == 0, proc.stderr
    assert doc["compiled"] == [str(root / "ok.py")]
    assert doc["skipped"] == [str(root / "badsyntax" / "b.py")]


def test_a_failing_file_leaves_no_other_file_uncompiled(tmp_path):
    # Sources go largest first: the failing file is the first one compiled, and
    # everything after it, the small package __init__.py files too, must still be.
    root = tmp_path / "tree"
    root.mkdir()
    (root / "big_broken.py").write_text("x = 1\n" * 20000 + "def f(:\n")
    (root / "small_broken.py").write_text("y = (\n")
    ok = []
    for i in range(120):
        pkg = root / ("pkg%03d" % i)
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "mod.py").write_text("V = %d\n" % i)
        ok += [pkg / "__init__.py", pkg / "mod.py"]
    for workers in ("1", "2"):
        proc, doc = cli_json("-j", workers, "--force", str(root))
        assert proc.returncode == 1
        assert [p for p in ok if not os.path.exists(pyc(p))] == []
        assert sorted(f["path"] for f in doc["failures"]) == [str(root / "big_broken.py"),
                                                             str(root / "small_broken.py")]
        assert "%s:20001: SyntaxError:" % (root / "big_broken.py") in proc.stderr
        assert "%s:1: SyntaxError:" % (root / "small_broken.py") in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "pyimgtools: error: 2 files failed to compile"
        assert doc["files"]["compiled"] == len(ok)


def test_worker_source_is_package_data_and_valid_for_old_pythons():
    text = pytarget.worker_source()
    assert "def serve(" in text
    compile(text, "<worker>", "exec", dont_inherit=True)


# ------------------------------------------------------------------ the command

def test_compiles_a_tree_then_finds_it_up_to_date(tree):
    proc, doc = cli_json("-O", "0", "-O", "2", str(tree))
    assert proc.returncode == 0, proc.stderr
    assert doc["files"]["compiled"] == 3 and doc["pycs_written"] == 6
    for rel in ("mod.py", "pkg/__init__.py", "pkg/sub/deep.py"):
        for level in (0, 2):
            with open(pyc(tree / rel, level), "rb") as f:
                assert int.from_bytes(f.read(16)[4:8], "little") == 0b11  # checked-hash by default
    assert not (tree / "__pycache__" / ("notpython.%s.pyc" % TAG)).exists()
    proc, doc = cli_json("-O", "0", "-O", "2", str(tree))
    assert doc["files"] == {"compiled": 0, "up_to_date": 3, "skipped": 0, "excluded": 0,
                            "failed": 0}
    # the human summary line, from `python -m pyimgtools`
    proc = run_cli("compile", "--python", sys.executable, str(tree))
    assert proc.returncode == 0
    assert proc.stdout.startswith("pyimgtools compile: compiled 0 files")


def test_modes_are_world_readable_whatever_the_umask(tree):
    os.chmod(str(tree / "mod.py"), 0o640)
    with umask(0o077):
        proc = cli(str(tree))
    assert proc.returncode == 0, proc.stderr
    cache = tree / "pkg" / "__pycache__"
    assert stat.S_IMODE(os.stat(str(cache)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(pyc(tree / "pkg" / "__init__.py")).st_mode) == 0o644
    # readable by exactly who can read the source
    assert stat.S_IMODE(os.stat(pyc(tree / "mod.py")).st_mode) == 0o640


def test_existing_pycache_hidden_by_umask_077_is_opened_up(tree):
    with umask(0o077):
        py_compile.compile(str(tree / "mod.py"), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    cache = tree / "__pycache__"
    assert stat.S_IMODE(os.stat(str(cache)).st_mode) == 0o700
    proc, doc = cli_json(str(tree))
    assert stat.S_IMODE(os.stat(str(cache)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(pyc(tree / "mod.py")).st_mode) == 0o644
    assert doc["files"]["compiled"] == 3  # mod.py recompiled: its .pyc was 0600


def test_syntax_errors_listed_with_line_and_exit_1(tree):
    (tree / "broken.py").write_text("x = (\n")
    (tree / "pkg" / "badsyntax_future3.py").write_text("from __future__ import nope\n")
    proc = cli(str(tree))
    assert proc.returncode == 1
    assert "%s:1: SyntaxError:" % (tree / "broken.py") in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "pyimgtools: error: 1 file failed to compile"
    assert "3 files (3 .pyc" in proc.stdout and "1 skipped, 1 failed" in proc.stdout
    assert os.path.exists(pyc(tree / "pkg/sub/deep.py"))
    assert not os.path.exists(pyc(tree / "pkg/badsyntax_future3.py"))
    proc = cli(str(tree))
    assert proc.returncode == 1


def test_dry_run_lists_and_writes_nothing(tree):
    proc = cli("--dry-run", str(tree))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "would compile %s (missing)" % (tree / "mod.py") in lines
    assert len([x for x in lines if x.startswith("would compile /")]) == 3
    assert not any(name == "__pycache__" for _d, dirs, _f in os.walk(str(tree)) for name in dirs)


def test_exclude_and_force(tree):
    proc, doc = cli_json("-x", "/sub/", str(tree))
    assert doc["files"]["compiled"] == 2 and doc["files"]["excluded"] == 1
    proc, doc = cli_json("--force", str(tree / "pkg"))
    assert doc["files"]["compiled"] == 2


def test_bad_options_are_usage_errors(tree):
    assert cli("-x", "(", str(tree)).returncode == 2
    assert cli("-O", "3", str(tree)).returncode == 2
    assert cli("--invalidation-mode", "never", str(tree)).returncode == 2
    missing = cli(str(tree / "nope"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    proc = in_process("compile", "--python", str(tree / "nopython"), str(tree))
    assert proc.returncode == 1 and proc.stderr.startswith("pyimgtools: error: --python")
    assert "Traceback" not in proc.stderr


def test_odd_names_symlinks_and_pycache(tree):
    odd = os.path.join(os.fsencode(str(tree)), b"caf\xe9 x\n.py")
    with open(odd, "wb") as f:
        f.write(b"y = 2\n")
    os.symlink(str(tree / "pkg"), str(tree / "linkdir"))  # not followed, like compileall
    os.symlink(str(tree / "mod.py"), str(tree / "alias.py"))  # compiled beside the link
    proc, doc = cli_json(str(tree))
    assert proc.returncode == 0, proc.stderr
    assert doc["files"]["compiled"] == 5
    assert os.path.exists(os.fsencode(importlib.util.cache_from_source(os.fsdecode(odd))))
    assert os.path.exists(pyc(tree / "alias.py"))
    assert all("linkdir" not in p for p in doc["compiled"])


def test_dry_run_of_the_default_is_the_target_stdlib_without_site_packages():
    import sysconfig
    proc, doc = cli_json("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert doc["trees"] == [sysconfig.get_paths()["stdlib"]]
    purelib = sysconfig.get_paths()["purelib"]
    assert not any(it["path"].startswith(purelib + "/") for it in doc["to_compile"])
    assert doc["files"]["to_compile"] + doc["files"]["up_to_date"] > 100


def test_stale_tmp_files_of_a_killed_run_are_removed(tree):
    assert cli(str(tree)).returncode == 0
    cache = tree / "pkg" / "__pycache__"
    name = os.path.basename(pyc(tree / "pkg" / "__init__.py"))
    stale = cache / ("%s.%d.tmp" % (name, 4194305))   # above the kernel's PID limit: no process
    live = cache / ("%s.%d.tmp" % (name, os.getpid()))  # another run, still writing
    other = cache / "notes.tmp"
    for f in (stale, live, other):
        f.write_bytes(b"\x00" * 10)
    proc, doc = cli_json("--dry-run", str(tree))
    assert doc["stale_tmp"] == [str(stale)] and stale.exists()
    assert "would remove %s (left by a run that was killed)" % stale in proc.stderr
    proc, doc = cli_json(str(tree))
    assert proc.returncode == 0 and doc["files"]["compiled"] == 0
    assert doc["removed_tmp"] == [str(stale)]
    assert not stale.exists() and live.exists() and other.exists()


def test_an_unreadable_directory_is_a_failure(tree):
    # compileall says "Can't list"; as root only without CAP_DAC_* (setpriv drops them).
    locked = tree / "pkg" / "locked"
    locked.mkdir()
    (locked / "x.py").write_text("X = 1\n")
    os.chmod(str(locked), 0)
    try:
        prefix = []
        if os.geteuid() == 0:
            from tests.harness.prereq import require_tools
            require_tools("setpriv")
            prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
        for extra in ([], ["--dry-run"], [str(tree / "pkg" / "locked")]):
            argv = [sys.executable, "-m", "pyimgtools", "compile", "--python", sys.executable]
            paths = extra if extra and not extra[0].startswith("-") else [str(tree)]
            proc = subprocess.run(prefix + argv + [a for a in extra if a.startswith("-")] + paths,
                                  capture_output=True, text=True, env=env)
            assert proc.returncode == 1, proc.stderr
            assert "%s: OSError: cannot list the directory: Permission denied" % locked in proc.stderr
            assert proc.stderr.strip().splitlines()[-1].startswith("pyimgtools: error: 1 ")
    finally:
        os.chmod(str(locked), 0o755)


# -- messages and worker count (issue 14 item 12) ----------------------------

def test_odd_names_stay_on_one_line_escaped_as_elsewhere(tmp_path):
    from pyimgtools.report import display_path
    names = [b"bad\xe9\nname.py", b"tab\there.py", b"ok\nline.py"]
    for n in names:
        (tmp_path / os.fsdecode(n)).write_bytes(b"def (:\n")
    # what Python itself says about the source (independent of compile's output)
    with pytest.raises(SyntaxError) as exc:
        compile(b"def (:\n", "x.py", "exec")
    expected = {"%s:1: SyntaxError: %s" % (
        display_path(os.path.join(str(tmp_path), os.fsdecode(n))).replace("\n", "\\n")
        .replace("\t", "\\t"), exc.value.msg) for n in names}
    assert "\\xe9" in "".join(expected)
    for args in ([], ["--dry-run"]):
        proc = run_cli("compile", *args, tmp_path)
        assert "\\udc" not in proc.stdout + proc.stderr
        out = proc.stdout.splitlines()
        if args:
            assert proc.returncode == 0, proc.stderr
            assert len(out) == len(names) + 1, proc.stdout      # one line per file + summary
            assert all(l.startswith("would compile %s/" % tmp_path) for l in out[:-1])
            continue
        assert proc.returncode == 1
        err = proc.stderr.splitlines()
        assert set(err[:-1]) == expected, proc.stderr
        assert err[-1] == "pyimgtools: error: 3 files failed to compile"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_workers_are_capped_at_the_work(tmp_path, kind):
    """-j 64 on one file starts one worker, not 64 (each start is counted by a wrapper)."""
    count = tmp_path / "starts"
    wrapper = tmp_path / "python"
    wrapper.write_text("#!/bin/sh\necho >> '%s'\nexec '%s' \"$@\"\n" % (count, sys.executable))
    wrapper.chmod(0o755)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.py").write_text("x = 1\n")
    path = tree / "a.py" if kind == "file" else tree
    for args in (["--dry-run"], []):
        count.write_text("")
        proc = run_cli("compile", "--python", wrapper, "-j", "64", *args, path)
        assert proc.returncode == 0, proc.stderr
        assert count.read_text().count("\n") == 1
    assert (tree / "__pycache__").is_dir()


@pytest.mark.parametrize("n_files, workers, at_info", [
    (compile_cmd._CHECK_BATCH + 1, 2, 2),   # more than one batch: the second boots beside the first
    (compile_cmd._CHECK_BATCH, 2, 0),       # one batch: one worker, ever (info starts it)
    (compile_cmd._CHECK_BATCH + 1, 1, 0),   # -j 1
])
def test_a_second_worker_boots_with_the_first_only_when_there_is_more_than_one_batch(
        tmp_path, n_files, workers, at_info):
    """Warm runs are mostly checking: the second worker must not wait for `info`."""
    from pyimgtools.fs import Root
    from pyimgtools.image_python import Launch
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    for i in range(n_files):
        (tree / "pkg" / ("m%d.py" % i)).write_text("x = %d\n" % i)
    seen = []   # workers already started when `info` is asked

    class Pool(compile_cmd.WorkerPool):
        def info(self, want_paths):
            seen.append(len(self.workers))
            return super().info(want_paths)

    with Pool(Launch([sys.executable], None, sys.executable)) as pool:
        plan = compile_cmd.plan(root=Root("/"), pool=pool, paths=[str(tree)], workers=workers)
        started = len(pool.workers)
    assert seen == [at_info]
    assert len(plan.to_compile) == n_files
    assert started == min(workers, -(-n_files // compile_cmd._CHECK_BATCH))


def test_the_look_for_more_than_one_batch_is_bounded(tmp_path):
    from pyimgtools.fs import Root
    deep = tmp_path / "deep"
    d = deep
    for i in range(80):            # 80 directories, one source each: past the bound
        d = d / ("d%d" % i)
        d.mkdir(parents=True)
        (d / "m.py").write_text("")
    assert not compile_cmd._more_than_one_batch([str(deep)], Root("/"))
    assert compile_cmd._more_than_one_batch([str(deep)], Root("/"), max_dirs=100)
    assert compile_cmd._more_than_one_batch([], Root("/"))          # the standard library
    assert not compile_cmd._more_than_one_batch([str(tmp_path / "missing")], Root("/"))


# -- a .pyc that would not load is not up to date (issue 14 item 8) ------------

# A module whose name '<module>' is also a constant (so marshal writes the
# code's name as a reference: the slow, exact path) and one with a long
# module-level line table (its trailer is far from the end).
ODD_SOURCES = {
    "plain": SOURCE,
    "named": b'NAME = "<module>"\ndef g():\n    return "<module>"\n',
    "long": b"".join(b"V%d = %d\n" % (i, i) for i in range(3000)),
    "try": b"try:\n    import os\nexcept ImportError:\n    os = None\n",
}


def _loads_fails(body):
    try:
        marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return True
    return False


@pytest.mark.parametrize("name", sorted(ODD_SOURCES))
@pytest.mark.parametrize("mode", ["timestamp", "checked-hash"])
def test_a_pyc_cut_anywhere_is_not_up_to_date(tmp_path, name, mode):
    src = tmp_path / "m.py"
    src.write_bytes(ODD_SOURCES[name])
    py_compile.compile(str(src), cfile=pyc(src), invalidation_mode=MODES[mode], doraise=True)
    path = os.fsencode(str(src))
    flags = worker.MODES[mode]
    assert worker.check_item(path, None, (0,), flags, False)[1] == [""]
    with open(pyc(src), "rb") as f:
        data = f.read()
    step = max(1, (len(data) - 17) // 150)     # 150 cuts spread over the body, and the last ones
    cuts = list(range(17, len(data), step)) + [len(data) - 1, len(data) - 5]
    for k in cuts:
        with open(pyc(src), "wb") as f:
            f.write(data[:k])
        expected = "corrupt" if _loads_fails(data[16:k]) else ""   # what the importer meets
        assert worker.check_item(path, None, (0,), flags, False)[1] == [expected], k
    # zero-filled after a crash: same size, the end replaced by zeros
    for zeros in (1, 5, len(data) // 2):
        with open(pyc(src), "wb") as f:
            f.write(data[:-zeros] + b"\0" * zeros)
        expected = "corrupt" if _loads_fails(data[16:-zeros] + b"\0" * zeros) else ""
        assert expected or zeros < 16         # zeros inside the last bytes object may load
        assert worker.check_item(path, None, (0,), flags, False)[1] == [expected], zeros
    # extra bytes after a whole code object load fine (marshal ignores them): up to date
    with open(pyc(src), "wb") as f:
        f.write(data + b"junk")
    assert worker.check_item(path, None, (0,), flags, False)[1] == [""]


def test_compile_repairs_a_truncated_pyc_without_force(tree):
    proc, _doc = cli_json(str(tree))
    assert proc.returncode == 0, proc.stderr
    target = pyc(tree / "mod.py")
    with open(target, "rb") as f:
        whole = f.read()
    with open(target, "wb") as f:
        f.write(whole[:len(whole) - 7])                      # header intact
    # the importer fails on it (EOFError: marshal data too short)
    probe = subprocess.run([sys.executable, "-c", "import mod"], cwd=str(tree),
                           capture_output=True, text=True)
    assert "EOFError" in probe.stderr or "bad marshal data" in probe.stderr, probe.stderr
    proc = run_cli("compile", "--dry-run", "--python", sys.executable, tree)
    assert "would compile %s (corrupt)" % (tree / "mod.py") in proc.stdout
    proc, doc = cli_json(str(tree))
    assert doc["files"]["compiled"] == 1 and doc["files"]["up_to_date"] == 2
    with open(target, "rb") as f:
        repaired = f.read()
    # Same header and the same code, not the same bytes: marshal sets FLAG_REF by
    # reference count, and on 3.8-3.10 the two compiling processes differ in it.
    assert repaired[:16] == whole[:16]
    assert marshal.loads(repaired[16:]) == marshal.loads(whole[16:])
    probe = subprocess.run([sys.executable, "-c", "import mod"], cwd=str(tree),
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
