"""prune keeps sourceless bytecode: a legacy `foo.pyc` with no `foo.py` beside it.

The importer loads such a file as the module itself (SourcelessFileLoader:
sourceless distributions, `compileall -b` followed by removing the sources), and
`compile` cannot write it again, so deleting it breaks the import. Caches in
`__pycache__`, legacy `.pyc` files with their source beside them and `.pyo` files
(never loaded since Python 3.5, PEP 488) still go.

The bytecode is written by py_compile; importability is asked of the real importer
in a subprocess, not of prune's report.
"""

import json
import os
import py_compile
import subprocess
import sys

import pytest

from tests.harness.prune_support import listing, make_tree, path_bytes, prune_json, removed_paths

# Option sets that change how Walker.scan treats a directory's entries: the
# default rules, --keep patterns (checked before the rules), --tk (more rules).
MODES = {
    "default rules": [],
    "general path (--keep)": ["--keep", "*/no-such-path"],
    "general path (--tk)": ["--tk"],
}


def legacy_pyc(top, rel, text, keep_source):
    """`rel`.py compiled to a legacy `rel`.pyc beside it (compileall -b); the source
    is removed unless keep_source."""
    src = os.path.join(str(top), rel + ".py")
    os.makedirs(os.path.dirname(src), exist_ok=True)
    with open(src, "w") as f:
        f.write(text)
    py_compile.compile(src, cfile=os.path.join(str(top), rel + ".pyc"), doraise=True)
    if not keep_source:
        os.unlink(src)


def tree(top):
    make_tree(top, {
        "withsrc.py": b"X = 1\n",
        "__pycache__/withsrc.cpython-311.pyc": b"cache",       # a cache: compile rebuilds it
        "old.pyo": b"pyo",                                      # never loaded by Python 3
        "pkg/tests/__init__.py": b"",
        "pkg/__init__.py": b"",
    })
    legacy_pyc(top, "sourceless_mod", "VALUE = 'sourceless'\n", keep_source=False)
    legacy_pyc(top, "spkg/__init__", "from . import sub\n", keep_source=False)  # sourceless package
    legacy_pyc(top, "spkg/sub", "VALUE = 'sub'\n", keep_source=False)
    legacy_pyc(top, "withsrc", "X = 1\n", keep_source=True)       # legacy, source beside: goes
    legacy_pyc(top, "pkg/tests/gone", "", keep_source=False)     # inside a removed test dir: goes


SOURCELESS = {b"sourceless_mod.pyc", b"spkg/__init__.pyc", b"spkg/sub.pyc"}
GONE = {b"__pycache__", b"__pycache__/withsrc.cpython-311.pyc", b"old.pyo", b"withsrc.pyc",
        b"pkg/tests", b"pkg/tests/__init__.py", b"pkg/tests/gone.pyc"}


def importable(top, modules):
    """{module: value of its VALUE or None} as the real importer (-I -S -B) sees them."""
    code = ("import importlib, json, sys\nsys.path[:0] = [sys.argv[1]]\nr = {}\n"
            "for m in sys.argv[2:]:\n"
            "    try:\n        r[m] = getattr(importlib.import_module(m), 'VALUE', None)\n"
            "    except ImportError as e:\n        r[m] = 'ImportError'\n"
            "print(json.dumps(r))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code, str(top)] + list(modules),
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("mode", list(MODES))
def test_sourceless_bytecode_stays_and_the_rest_goes(tmp_path, mode):
    top = tmp_path / "site-packages"
    tree(top)
    wanted = {"sourceless_mod": "sourceless", "spkg.sub": "sub"}
    assert importable(top, wanted) == wanted  # the fixture is real sourceless bytecode
    before = listing(top)
    dry, proc = prune_json("--dry-run", *MODES[mode], top)
    assert proc.returncode == 0, proc.stderr
    assert listing(top) == before
    doc, proc = prune_json(*MODES[mode], top)
    assert proc.returncode == 0, proc.stderr
    after = listing(top)
    assert before - after == GONE
    assert SOURCELESS <= after
    assert removed_paths(dry, top) == removed_paths(doc, top) == GONE
    # said in one place: the kept sourceless files, also counted in the totals
    prefix = os.fsencode(str(top)) + b"/"
    for d in (dry, doc):
        assert {path_bytes(p)[len(prefix):] for p in d["kept_sourceless"]} == SOURCELESS
        assert d["totals"]["kept_sourceless"] == len(SOURCELESS)
    assert "kept 3 sourceless .pyc files" in proc.stderr
    assert importable(top, wanted) == wanted
    doc, proc = prune_json(*MODES[mode], top)  # idempotent
    assert doc["removed"] == [] and listing(top) == after


def test_sourceless_bytecode_in_an_imported_test_package_stays(tmp_path):
    # Inside a test directory the files are recorded for the directory's rule; a
    # kept (imported) test package keeps its sourceless modules too.
    top = tmp_path / "sp"
    make_tree(top, {"lib/__init__.py": b"from .tests import helper\n", "lib/tests/__init__.py": b""})
    legacy_pyc(top, "lib/tests/helper", "VALUE = 'helper'\n", keep_source=False)
    legacy_pyc(top, "lib/tests/cached", "", keep_source=True)
    doc, proc = prune_json(top)
    assert proc.returncode == 0, proc.stderr
    assert [k["path"] for k in doc["kept"]] == [str(top / "lib/tests")]
    assert (top / "lib/tests/helper.pyc").exists() and not (top / "lib/tests/cached.pyc").exists()
    assert doc["kept_sourceless"] == [str(top / "lib/tests/helper.pyc")]
    assert importable(top, ["lib.tests.helper"]) == {"lib.tests.helper": "helper"}


def test_a_symlink_or_directory_named_like_the_source_does_not_count_as_source(tmp_path):
    # Only a regular foo.py beside foo.pyc makes it dead weight: a dangling symlink
    # foo.py leaves the importer on foo.pyc (kept to be safe), and so does a directory.
    top = tmp_path / "t"
    legacy_pyc(top, "a", "", keep_source=False)
    legacy_pyc(top, "b", "", keep_source=False)
    os.symlink("missing.py", str(top / "a.py"))
    os.mkdir(str(top / "b.py"))
    doc, proc = prune_json(top)
    assert proc.returncode == 0, proc.stderr
    assert (top / "a.pyc").exists() and (top / "b.pyc").exists()
    assert doc["removed"] == []


def test_keep_bytecode_reports_nothing_sourceless(tmp_path):
    top = tmp_path / "t"
    legacy_pyc(top, "m", "", keep_source=False)
    doc, proc = prune_json("--keep-bytecode", top)
    assert doc["kept_sourceless"] == [] and doc["removed"] == []
