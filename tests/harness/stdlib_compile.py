"""The stdlib compile check: pyimgtools against compileall on copies of a real standard library.

compileall (compile_support.COMPILEALL, run by the target interpreter) is the
independent reference; the target's own `python -v` (IMPORT, recompiled_lines,
used_pyc_lines) says whether the result is used at import. Shared by
tests/system/test_compile_stdlib.py (pyenv CPythons on the host) and the
chroot checks of tests/integration/test_compile_image.py and test_compile_sid.py.
"""

import json
import os
import shutil

from tests.harness.compile_support import (COMPARE, COMPILEALL, IMPORT, pyc_name, recompiled_lines,
                                           used_pyc_lines)


def copy_stdlib_sources(stdlib, dest):
    """The .py files of `stdlib` (no site-packages, no __pycache__), mtimes kept, symlinks as such."""
    count = 0
    for d, dirs, files in os.walk(stdlib):
        rel = os.path.relpath(d, stdlib)
        dirs[:] = sorted(x for x in dirs if x != "__pycache__" and not (rel == "." and x == "site-packages"))
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for f in files:
            if f.endswith(".py"):
                shutil.copy2(os.path.join(d, f), os.path.join(dest, rel, f), follow_symlinks=False)
                count += 1
    return count


def link_tree(src, dest):
    for d, dirs, files in os.walk(src):
        rel = os.path.relpath(d, src)
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for f in files:
            os.link(os.path.join(d, f), os.path.join(dest, rel, f))


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
