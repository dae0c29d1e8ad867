"""pyimgtools prune on small hand-made trees, checked against GNU find and the file system."""

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.harness.prune_support import (
    copy_tree, listing, make_tree, path_bytes, prune, prune_json, removed_paths, rm_tree,
    upstream_find)

SENTINEL = b"sentinel\n"


def parity_tree(top):
    """A tree with every case the upstream rules distinguish, and nothing imported."""
    make_tree(top, {
        "bin/python3": b"#!elf",
        "bin/__pycache__/x.cpython-311.pyc": b"pyc",
        "lib/python3.11/os.py": b"import sys\n",
        "lib/python3.11/__pycache__/os.cpython-311.pyc": b"pyc" * 100,
        "lib/python3.11/__pycache__/os.cpython-311.opt-1.pyc": b"pyc",
        "lib/python3.11/__pycache__/keep.txt": b"not bytecode",  # keeps its __pycache__
        "lib/python3.11/old.pyo": b"pyo",
        "lib/python3.11/test/__init__.py": b"",
        "lib/python3.11/test/test_os.py": b"import os\n",
        "lib/python3.11/test/data/tests/deep.txt": b"x",
        "lib/python3.11/idlelib/__init__.py": b"",
        "lib/python3.11/idlelib/idle_test/__init__.py": b"",
        "lib/python3.11/idlelib/idle_test/htest.py": b"",
        "lib/python3.11/ctypes/__init__.py": b"",
        "lib/python3.11/ctypes/test/__init__.py": b"",
        "lib/python3.11/ctypes/test/test_x.py": b"",
        "lib/python3.11/config-3.11/libpython3.11.a": b"!<arch>\n" * 10,
        "lib/python3.11/config-3.11/libfoo.a": b"!<arch>\n",       # not libpython: stays
        "lib/python3.11/config-3.11/Makefile": b"all:\n",
        "lib/testing/notatest.py": b"",                              # 'testing' is not 'test'
        "lib/test.py": b"",                                          # a file named test
        "lib/tests": ("link", "../share"),                           # a symlink named tests
        "lib/link.pyc": ("link", "os.py"),                           # a symlink named *.pyc
        "lib/pipe.pyc": ("fifo",),                                   # not a regular file
        "lib/.hidden.pyc": b"dot", "lib/.hidden.py": b"",
        "lib/sourceless.pyc": b"pyc",                                # no .py beside: kept
        "share/tests/.hidden": b"",
        "share/Tests/file": b"",                                     # case matters
        "share/emptydir": None,
        "share/test": None,                                          # empty test dir
        "share/pkg/test/test/test/x.pyc": b"",
    })


def test_default_rules_leave_what_upstream_find_leaves(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    parity_tree(a)
    copy_tree(a, b)
    upstream_find(a)
    proc = prune(b)
    assert proc.returncode == 0, proc.stderr
    # The one deliberate difference: a legacy .pyc with no source beside it is the
    # module itself (the importer loads it, compile cannot rebuild it): prune keeps it.
    assert listing(b, drop_pycache_dirs=True) == listing(a, drop_pycache_dirs=True) | {b"lib/sourceless.pyc"}
    # __pycache__ directories: find leaves them empty, prune removes them unless something else is inside
    assert not (b / "bin/__pycache__").exists()
    assert (b / "lib/python3.11/__pycache__/keep.txt").exists()
    assert os.path.islink(b / "lib/tests") and os.path.islink(b / "lib/link.pyc")
    assert stat.S_ISFIFO(os.lstat(b / "lib/pipe.pyc").st_mode)


def test_dry_run_lists_exactly_what_disappears_and_a_second_run_removes_nothing(tmp_path):
    top = tmp_path / "t"
    parity_tree(top)
    before = listing(top)
    doc, proc = prune_json("--dry-run", top)
    assert proc.returncode == 0 and doc["dry_run"] is True
    assert listing(top) == before  # a dry run changes nothing
    planned = removed_paths(doc, top)
    assert len(planned) == len(doc["removed"])  # no path listed twice
    doc2, proc = prune_json(top)
    assert proc.returncode == 0
    gone = before - listing(top)
    assert planned == gone
    assert removed_paths(doc2, top) == gone
    # every removed path carries its rule
    rules = {path_bytes(e["path"]).rsplit(b"/", 1)[-1]: e["rule"] for e in doc2["removed"]}
    assert rules[b"libpython3.11.a"] == "libpython-static"
    assert rules[b"old.pyo"] == "bytecode"
    assert rules[b"idle_test"] == "tests"
    doc3, proc = prune_json(top)
    assert proc.returncode == 0 and doc3["removed"] == []
    assert "removed 0 files in 0 directories" in proc.stderr


def test_counts_and_summary_line(tmp_path):
    top = tmp_path / "t"
    make_tree(top, {"a/tests/one": b"1" * 1000, "a/tests/sub/two": b"2" * 24,
                    "a/__pycache__/m.cpython-311.pyc": b"p" * 500, "a/keep.py": b""})
    doc, proc = prune_json(top)
    assert doc["totals"]["files"] == 3 and doc["totals"]["dirs"] == 3
    assert doc["totals"]["bytes"] == 1524
    assert doc["totals"]["by_rule"]["tests"] == {"files": 2, "dirs": 2, "bytes": 1024}
    assert doc["totals"]["by_rule"]["bytecode"] == {"files": 1, "dirs": 1, "bytes": 500}
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pyimgtools prune: removed 3 files in 3 directories (1.5 KiB) from %s in " % top)
    proc = prune("-q", top)
    assert proc.stdout.strip().startswith("pyimgtools prune: removed 0 files")


def test_hard_links_free_bytes_once_and_only_with_the_last_link(tmp_path):
    top = tmp_path / "t"
    make_tree(top, {"a/tests/big": b"x" * 4000, "a/tests/other": b"y" * 300, "a/keep": b""})
    os.link(top / "a/tests/big", top / "a/tests/big2")           # both links pruned: 4000 freed once
    os.link(top / "a/tests/other", top / "a/other-link")         # one link stays: nothing freed
    doc, proc = prune_json(top)
    assert proc.returncode == 0
    assert doc["totals"]["bytes"] == 4000
    assert doc["totals"]["hard_links"]["bytes_not_freed"] == 300
    assert doc["totals"]["hard_links"]["files"] == 3
    assert os.path.exists(top / "a/other-link")


def test_imported_test_package_is_kept_and_the_importer_named(tmp_path):
    top = tmp_path / "site-packages"
    make_tree(top, {
        "selfimp/__init__.py": b"from .tests._natype import NA\n",
        "selfimp/tests/__init__.py": b"",
        "selfimp/tests/_natype.py": b"NA = None\n",
        "selfimp/tests/test_a.py": b"",
        "selfimp/tests/__pycache__/test_a.cpython-311.pyc": b"pyc",
        "selfimp/tests/inner/tests/t.py": b"",                  # not imported: goes
        "other/__init__.py": b"",
        "other/tests/__init__.py": b"",                          # not imported: goes
        "absimp/__init__.py": b"",
        "absimp/testing/__init__.py": b"try:\n    from absimp.core.tests import helper\nexcept ImportError:\n    pass\n",
        "absimp/core/__init__.py": b"",
        "absimp/core/tests/helper.py": b"from . import data\n",   # namespace portion (no __init__)
        "absimp/core/tests/data.py": b"",
    })
    doc, proc = prune_json(top)
    assert proc.returncode == 0, proc.stderr
    kept = {k["path"]: k for k in doc["kept"]}
    assert set(kept) == {str(top / "selfimp/tests"), str(top / "absimp/core/tests")}
    assert kept[str(top / "selfimp/tests")]["importer"] == str(top / "selfimp/__init__.py")
    assert kept[str(top / "selfimp/tests")]["line"] == 1
    assert kept[str(top / "absimp/core/tests")]["importer"] == str(top / "absimp/testing/__init__.py")
    assert "kept %s: %s imports" % (top / "selfimp/tests", top / "selfimp/__init__.py") in proc.stderr
    assert (top / "selfimp/tests/test_a.py").exists()
    assert not (top / "selfimp/tests/__pycache__").exists()   # bytecode rule still applies inside
    assert not (top / "selfimp/tests/inner/tests").exists()
    assert not (top / "other/tests").exists()
    # and Python agrees the packages still import
    proc = subprocess.run([sys.executable, "-c", "import selfimp, absimp.testing"], cwd=str(top),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_imports_in_functions_or_under_main_guard_do_not_keep(tmp_path):
    top = tmp_path / "sp"
    make_tree(top, {
        "pkg/__init__.py": b"def run():\n    from pkg.tests import helper\n",
        "pkg/cli.py": (b"import sys\nif __name__ == '__main__':\n    from .tests import helper\n"
                       b"    import pkg.tests.helper\n"),
        "pkg/lazy.py": b"f = lambda: __import__('pkg.tests')\n",
        "pkg/tests/__init__.py": b"",
        "pkg/tests/helper.py": b"",
    })
    doc, proc = prune_json(top)
    assert doc["kept"] == [] and not (top / "pkg/tests").exists()


def test_no_import_check_is_the_upstream_behaviour(tmp_path):
    top = tmp_path / "sp"
    make_tree(top, {"pkg/__init__.py": b"from . import tests\n", "pkg/tests/__init__.py": b""})
    doc, proc = prune_json("--no-import-check", top)
    assert doc["kept"] == [] and not (top / "pkg/tests").exists()


def test_test_package_imported_only_by_a_removed_test_directory_goes(tmp_path):
    top = tmp_path / "sp"
    make_tree(top, {
        "pkg/__init__.py": b"",
        "pkg/test/__init__.py": b"from pkg.tests import x\n",  # itself a removed test dir
        "pkg/tests/__init__.py": b"",
        "pkg/tests/x.py": b"",
        "pkg2/__init__.py": b"from pkg2 import test\n",          # keeps pkg2/test ...
        "pkg2/test/__init__.py": b"from pkg2.tests import y\n",  # ... which keeps pkg2/tests
        "pkg2/tests/__init__.py": b"",
        "pkg2/tests/y.py": b"",
    })
    doc, proc = prune_json(top)
    assert not (top / "pkg/test").exists() and not (top / "pkg/tests").exists()
    assert (top / "pkg2/test").is_dir() and (top / "pkg2/tests/y.py").exists()


def test_unparsable_importer_keeps_what_it_names(tmp_path):
    top = tmp_path / "sp"
    make_tree(top, {"pkg/__init__.py": b"if True:\n    from .tests import x\nthis is not python(\n",
                    "pkg/tests/__init__.py": b"", "pkg/tests/x.py": b""})
    doc, proc = prune_json(top)
    assert (top / "pkg/tests/x.py").exists()
    assert "not parsable" in doc["kept"][0]["note"]


def test_symlinks_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    make_tree(outside, {"tests/sentinel": SENTINEL, "x.pyc": SENTINEL, "sub/tests/s": SENTINEL})
    before_outside = listing(outside)
    top = tmp_path / "tree"
    make_tree(top, {
        "tests": ("link", str(outside / "tests")),          # symlink named tests -> outside dir
        "lib/tests": ("link", str(outside)),
        "lib/a.pyc": ("link", str(outside / "x.pyc")),
        "lib/loop1": ("link", "loop2"),
        "lib/loop2": ("link", "loop1"),
        "lib/self": ("link", "."),
        "lib/pkg/tests/inner": ("link", str(outside / "sub")),  # inside a removed tests dir
        "lib/pkg/tests/f": b"",
    })
    doc, proc = prune_json(top)
    assert proc.returncode == 0, proc.stderr
    assert listing(outside) == before_outside
    assert (outside / "tests/sentinel").read_bytes() == SENTINEL
    assert os.path.islink(top / "tests") and os.path.islink(top / "lib/loop1")
    assert not os.path.lexists(top / "lib/pkg/tests")  # the link inside went, as a link
    types = {path_bytes(e["path"]): e["type"] for e in doc["removed"]}
    assert types[os.fsencode(str(top / "lib/pkg/tests/inner"))] == "symlink"


def test_any_byte_sequence_is_a_name(tmp_path):
    top = os.fsencode(str(tmp_path / "t"))
    odd = [b"new\nline", b"with space", b"-leading-dash", b"bad-\xff\xfe-utf8", b"\\backslash",
           b"--", b"-rf"]
    spec = {}
    for name in odd:
        spec[b"lib/tests/" + name] = b"x"
        spec[b"lib/" + name + b"/tests/f"] = b"x"
        spec[b"lib/" + name + b"/__pycache__/" + name + b".pyc"] = b"x"
        spec[b"lib/" + name + b"/keep-" + name] = b"x"
    make_tree(top, spec)
    copy_tree(top, top + b"-find")
    before = listing(top)
    doc, proc = prune_json("--dry-run", top)
    assert proc.returncode == 0, proc.stderr
    planned = removed_paths(doc, top)
    assert b"lib/bad-\xff\xfe-utf8/tests/f" in planned
    assert {"bytes_hex": (top + b"/lib/bad-\xff\xfe-utf8/tests/f").hex()} in [e["path"] for e in doc["removed"]]
    doc, proc = prune_json(top)
    assert proc.returncode == 0, proc.stderr
    assert before - listing(top) == planned
    upstream_find(top + b"-find")
    assert listing(top, True) == listing(top + b"-find", True)
    human = prune("--dry-run", top + b"-find").stdout  # nothing left, but prints fine
    assert "would remove 0 files" in human


def test_three_thousand_levels_deep(tmp_path):
    top = str(tmp_path / "deep")
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY)
    try:
        for i in range(3000):
            if i == 1500:
                with open(os.open("m.pyc", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
                    f.write(b"pyc")
                os.close(os.open("m.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
                os.mkdir("tests", dir_fd=fd)  # a test dir in the middle, with a deep chain inside
                sub = os.open("tests", os.O_RDONLY, dir_fd=fd)
                for _ in range(300):
                    os.mkdir("t", dir_fd=sub)
                    nxt = os.open("t", os.O_RDONLY, dir_fd=sub)
                    os.close(sub)
                    sub = nxt
                with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=sub), "wb") as f:
                    f.write(b"x")
                os.close(sub)
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.mkdir("tests", dir_fd=fd)
        with open(os.open("tests/x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"x")
        with open(os.open("keep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(SENTINEL)
    finally:
        os.close(fd)
    try:
        before = listing(top)
        doc, proc = prune_json("--dry-run", top)
        assert proc.returncode == 0, proc.stderr[-2000:]
        planned = removed_paths(doc, top)
        assert len(planned) == 300 + 1 + 1 + 1 + 2  # chain dirs, leaf, tests, m.pyc, tests + x
        doc, proc = prune("-q", top), None
        assert doc.returncode == 0, doc.stderr[-2000:]
        after = listing(top)
        assert before - after == planned
        assert b"/".join([b"d"] * 3000) + b"/keep.txt" in after
    finally:
        rm_tree(top)


def test_keep_bytecode_no_tests_static_libs_and_keep_globs(tmp_path):
    def tree(name):
        top = tmp_path / name
        make_tree(top, {"a/tests/x": b"", "a/__pycache__/m.cpython-311.pyc": b"",
                        "lib/libfoo.a": b"", "lib/libpython3.so": b"", "lib/libpython3.11.a": b"",
                        "b/tests/y": b"", "b/tests/z.pyc": b"", "b/tests/z.py": b""})
        return top
    top = tree("kb")
    prune("--keep-bytecode", top)
    assert (top / "a/__pycache__/m.cpython-311.pyc").exists() and not (top / "a/tests").exists()
    top = tree("nt")
    prune("--no-tests", top)
    assert (top / "a/tests/x").exists() and not (top / "a/__pycache__").exists()
    assert not (top / "b/tests/z.pyc").exists()
    top = tree("sl")
    prune("--static-libs", top)
    assert not (top / "lib/libfoo.a").exists() and (top / "lib/libpython3.so").exists()
    top = tree("kg")
    proc = prune("--keep", "*/b/tests", "--keep", "*/lib/libpython3.11.a", top)
    assert proc.returncode == 0
    assert (top / "b/tests/y").exists() and (top / "b/tests/z.pyc").exists()
    assert (top / "lib/libpython3.11.a").exists() and not (top / "a/tests").exists()


def test_dist_info_is_never_touched(tmp_path):
    top = tmp_path / "sp"
    make_tree(top, {"foo-1.0.dist-info/METADATA": b"Name: foo\n", "foo-1.0.dist-info/tests/x": b"",
                    "foo-1.0.dist-info/y.pyc": b"", "foo/__init__.py": b""})
    prune(top)
    assert sorted(listing(top)) == sorted([b"foo-1.0.dist-info", b"foo-1.0.dist-info/METADATA",
                                           b"foo-1.0.dist-info/tests", b"foo-1.0.dist-info/tests/x",
                                           b"foo-1.0.dist-info/y.pyc", b"foo", b"foo/__init__.py"])


def test_docs_rule(tmp_path):
    top = tmp_path / "usr"
    make_tree(top, {
        "share/doc/pkg/copyright": b"c", "share/doc/pkg/README": b"r", "share/doc/pkg/sub/copyright": b"c",
        "share/doc/other/changelog.gz": b"x",
        "share/man/man1/python3.1": b"m", "share/man/man3/x.3": b"m", "share/man/de/man1/y.1": b"m",
        "share/man/index.db": b"",
        "share/info/python.info": b"i",
        "share/locale/locale.alias": b"a", "share/locale/de/LC_MESSAGES/x.mo": b"m",
        "share/other/doc/keep": b"k",         # not share/doc
    })
    proc = prune("--docs", top)
    assert proc.returncode == 0, proc.stderr
    assert listing(top) == {
        b"share", b"share/doc", b"share/doc/pkg", b"share/doc/pkg/copyright", b"share/doc/pkg/sub",
        b"share/doc/pkg/sub/copyright", b"share/man", b"share/man/man1", b"share/man/man3",
        b"share/info", b"share/locale", b"share/locale/locale.alias",
        b"share/other", b"share/other/doc", b"share/other/doc/keep"}


def test_tk_rule(tmp_path):
    top = tmp_path / "usr/local"
    make_tree(top, {
        "lib/python3.11/tkinter/__init__.py": b"", "lib/python3.11/idlelib/x.py": b"",
        "lib/python3.11/turtledemo/y.py": b"", "lib/python3.11/turtle.py": b"",
        "lib/python3.11/lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so": b"",
        "lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so": b"",
        "lib/python3.11/site-packages/tkinter/keep.py": b"",  # not the stdlib's
        "bin/idle3.11": b"", "bin/idle3": ("link", "idle3.11"), "bin/idlex": b"",
    })
    proc = prune("--tk", top)
    assert proc.returncode == 0, proc.stderr
    assert listing(top) == {
        b"lib", b"lib/python3.11", b"lib/python3.11/turtle.py", b"lib/python3.11/lib-dynload",
        b"lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
        b"lib/python3.11/site-packages", b"lib/python3.11/site-packages/tkinter",
        b"lib/python3.11/site-packages/tkinter/keep.py", b"bin", b"bin/idlex"}


def test_caches_rule_inside_a_root(tmp_path, monkeypatch):
    image = tmp_path / "rootfs"
    make_tree(image, {
        "root/.cache/pip/http/x": b"", "root/.cache/uv/y": b"", "root/.cache/other/z": b"",
        "home/u/.cache/pip/w": b"",
        "var/cache/apt/archives/a.deb": b"d", "var/cache/apt/archives/lock": b"",
        "var/cache/apt/archives/partial/b.deb": b"d",
        "var/cache/apt/pkgcache.bin": b"b", "var/cache/apt/other": b"",
        "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease": b"l",
        "var/lib/apt/lists/partial/q": b"",
        "usr/local/lib/tests/t": b"",
    })
    proc = prune("--root", image, "--caches", "/usr/local", env={"HOME": "/home/u"})
    assert proc.returncode == 0, proc.stderr
    assert listing(image) == {
        b"root", b"root/.cache", b"root/.cache/other", b"root/.cache/other/z",
        b"home", b"home/u", b"home/u/.cache",
        b"var", b"var/cache", b"var/cache/apt", b"var/cache/apt/archives",
        b"var/cache/apt/archives/lock", b"var/cache/apt/archives/partial", b"var/cache/apt/other",
        b"var/lib", b"var/lib/apt", b"var/lib/apt/lists",
        b"usr", b"usr/local", b"usr/local/lib"}


def test_root_option_resolves_paths_inside_the_image(tmp_path):
    image = tmp_path / "rootfs"
    make_tree(image, {"opt/py/lib/tests/t": b"", "usr/local": ("link", "/opt/py"),
                      "opt/py/lib/m.pyc": b"", "opt/py/lib/m.py": b""})
    doc, proc = prune_json("--root", image, "--dry-run", "/usr/local")
    assert proc.returncode == 0, proc.stderr
    assert doc["trees"] == ["/opt/py"]
    assert sorted(e["path"] for e in doc["removed"]) == ["/opt/py/lib/m.pyc", "/opt/py/lib/tests",
                                                          "/opt/py/lib/tests/t"]
    prune("--root", image, "/usr/local")
    assert listing(image / "opt/py") == {b"lib", b"lib/m.py"}


def test_errors_are_one_line_with_exit_code(tmp_path):
    proc = prune(tmp_path / "missing")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyimgtools: error: ") and len(proc.stderr.splitlines()) == 1
    proc = prune("--bogus")
    assert proc.returncode == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (integration layer uses chattr)")
def test_permission_error_is_reported_by_path_and_the_rest_continues(tmp_path):
    top = tmp_path / "t"
    make_tree(top, {"a/tests/x": b"", "b/tests/y": b"", "c/m.pyc": b""})
    os.chmod(top / "a/tests", 0o500)  # its entries cannot be unlinked
    try:
        doc, proc = prune_json(top)
        assert proc.returncode == 1
        assert [f["path"] for f in doc["failed"]] == [str(top / "a/tests/x")]
        assert str(top / "a/tests/x") in proc.stderr
        assert not (top / "b/tests").exists() and not (top / "c/m.pyc").exists()
    finally:
        os.chmod(top / "a/tests", 0o700)


def test_json_document_shape(tmp_path):
    top = tmp_path / "t"
    make_tree(top, {"tests/x": b"12"})
    doc, proc = prune_json("--dry-run", top)
    assert set(doc) >= {"command", "dry_run", "trees", "rules", "removed", "kept", "failed", "totals"}
    assert doc["rules"] == ["tests", "bytecode", "libpython-static"]
    json.dumps(doc)


def test_dry_run_is_exact_with_every_rule_inside_a_root(tmp_path):
    image = tmp_path / "rootfs"
    make_tree(image, {
        "usr/local/lib/python3.11/tkinter/__init__.py": b"", "usr/local/lib/python3.11/tkinter/test/t.py": b"",
        "usr/local/lib/python3.11/lib-dynload/_tkinter.so": b"t",
        "usr/local/lib/python3.11/__pycache__/os.cpython-311.pyc": b"p",
        "usr/local/lib/libpython3.11.a": b"a", "usr/local/lib/libz.a": b"z",
        "usr/local/share/man/man1/python3.1": b"m", "usr/local/share/doc/x/copyright": b"c",
        "usr/local/share/doc/x/README": b"r", "usr/local/share/locale/fr/x.mo": b"m",
        "usr/local/pkg/__init__.py": b"from .tests import h\n", "usr/local/pkg/tests/h.py": b"",
        "usr/local/pkg/tests/__pycache__/h.cpython-311.pyc": b"",
        "root/.cache/pip/x": b"", "var/lib/apt/lists/l": b"", "var/cache/apt/archives/a.deb": b"",
    })
    args = ["--root", image, "--static-libs", "--docs", "--caches", "--tk", "/usr/local"]
    before = listing(image)
    dry, proc = prune_json("--dry-run", *args)
    assert proc.returncode == 0, proc.stderr
    assert listing(image) == before
    doc, proc = prune_json(*args)
    assert proc.returncode == 0, proc.stderr
    gone = {b"/" + p for p in before - listing(image)}
    assert {path_bytes(e["path"]) for e in dry["removed"]} == gone
    assert {path_bytes(e["path"]) for e in doc["removed"]} == gone
    assert {e["rule"] for e in doc["removed"]} == {"tk", "bytecode", "static-libs", "docs", "caches"}
    assert [k["path"] for k in doc["kept"]] == ["/usr/local/pkg/tests"]
    assert (image / "usr/local/share/doc/x/copyright").exists()
    assert (image / "usr/local/share/man/man1").is_dir()
