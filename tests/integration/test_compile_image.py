"""`pyimgtools compile` for real: a buildah image on bookworm with Debian's python3,
and trixie's Python 3.13 in a chroot compared against compileall."""

import json
import os

from tests.conftest import REPO
from tests.system.test_compile_stdlib import copy_stdlib_sources, link_tree
from tests.system.test_compile_support import (COMPARE, COMPILEALL, IMPORT, pyc_name,
                                               recompiled_lines, used_pyc_lines)

IMPORTS = "import asyncio, json, email, http.client"


def test_image_user_imports_without_compiling(builder, pyz):
    image = builder.build(os.path.join(REPO, "examples", "compile"),
                          extra_files={"pyimgtools.pyz": pyz})
    stdlib = builder.run(image, "python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"stdlib\"])'"
                         ).stdout.strip()
    assert stdlib.startswith("/usr/lib/python3.")
    # Not root, and __pycache__ is read-only for that user.
    proc = builder.run(image, "id -u; test -w %s/json/__pycache__ && echo writable || echo read-only"
                       % stdlib)
    assert proc.stdout.split() == ["1000", "read-only"]
    proc = builder.run(image, "python3 -v -c '%s' 2>&1 >/dev/null" % IMPORTS)
    assert recompiled_lines(proc.stdout, stdlib) == []
    assert len(used_pyc_lines(proc.stdout, stdlib)) >= 40
    assert "bytecode is stale" not in proc.stdout and "could not create" not in proc.stdout
    # The check above can fail: without json's .pyc the same user compiles it.
    proc = builder.run(image, "rm -rf %s/json/__pycache__ && setpriv --reuid 1000 --regid 1000 "
                              "--clear-groups python3 -v -c 'import json' 2>&1 >/dev/null" % stdlib,
                       user="0")
    assert "# code object from %s/json/__init__.py" % stdlib in recompiled_lines(proc.stdout, stdlib)
    # A second run, as root in the image, compiles nothing.
    proc = builder.run(image, "pyimgtools --json compile", user="0")
    doc = json.loads(proc.stdout)
    assert doc["files"]["compiled"] == 0 and doc["files"]["up_to_date"] > 500


def install_pyz(root, pyz):
    os.makedirs(root.host("/usr/local/bin"), exist_ok=True)
    with open(pyz, "rb") as src, open(root.host("/usr/local/bin/pyimgtools"), "wb") as dst:
        dst.write(src.read())
    os.chmod(root.host("/usr/local/bin/pyimgtools"), 0o755)


def check_stdlib_matches_compileall(root, python, work="/w", rejects=True):
    """The stdlib compile check of tests/system/test_compile_stdlib.py inside a chroot:
    pyimgtools (the pyz, run by `python`) against compileall (run by `python`), every
    mode and every level, on hard-linked copies of `python`'s stdlib under `work`."""
    pyimgtools = [python, "/usr/local/bin/pyimgtools"]
    facts = json.loads(root.run([python, "-c", "import json, sys, sysconfig; print(json.dumps("
                                 "[sysconfig.get_paths()['stdlib'], sys.implementation.cache_tag, "
                                 "sys.version_info[:2]]))"]).stdout)
    stdlib, cache_tag, version = facts
    src, refs, ours = work + "/src", work + "/refs", work + "/ours"  # same length
    n_sources = copy_stdlib_sources(root.host(stdlib), root.host(src))
    link_tree(root.host(src), root.host(refs))
    link_tree(root.host(src), root.host(ours))
    for mode in ("timestamp", "checked-hash", "unchecked-hash"):
        root.run([python, "-c", COMPILEALL, refs, mode, "0,1,2"])
        doc = json.loads(root.run(pyimgtools + ["--json", "compile", "--python", python,
                                                "--invalidation-mode", mode, "-O", "0", "-O", "1",
                                                "-O", "2", ours]).stdout)
        skipped = {os.path.relpath(p, ours) for p in doc["skipped"]}
        assert doc["files"]["compiled"] == n_sources - len(skipped)
        cmp = json.loads(root.run([python, "-c", COMPARE, refs, ours]).stdout)
        assert cmp["n_mismatches"] == 0, cmp["mismatches"]
        assert cmp["only_ours"] == [] and cmp["bad_modes"] == []
        failing = {s for s in cmp["sources"]
                   if not os.path.exists(root.host(os.path.join(refs, pyc_name(s, cache_tag, 0))))}
        assert failing <= skipped
        assert bool(failing) == rejects    # the stdlib's test data is installed, or not
        assert set(cmp["only_ref"]) <= {pyc_name(s, cache_tag, lv) for s in skipped for lv in (0, 1, 2)}
        assert cmp["ours"] == 3 * (n_sources - len(skipped))
        again = json.loads(root.run(pyimgtools + ["--json", "compile", "--python", python,
                                                  "--invalidation-mode", mode, "-O", "0", "-O", "1",
                                                  "-O", "2", ours]).stdout)
        assert again["files"]["compiled"] == 0
        for flags in ([], ["-O"], ["-OO"]):
            proc = root.run([python, "-B", "-S", "-v"] + flags + ["-c", IMPORT, ours])
            assert recompiled_lines(proc.stderr, ours) == []
            assert len(used_pyc_lines(proc.stderr, ours)) >= 20
    return version


def test_trixie_python_stdlib_matches_compileall(chroot_factory, pyz):
    root = chroot_factory("trixie")
    root.apt_install("python3")
    install_pyz(root, pyz)
    # Debian's python3 without libpython3.13-testsuite: no file meant not to compile.
    assert check_stdlib_matches_compileall(root, "python3", rejects=False) == [3, 13]
