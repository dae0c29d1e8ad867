"""`pyimgtools compile` for real: a buildah image on bookworm with Debian's python3,
and trixie's Python 3.13 in a chroot compared against compileall."""

import json
import os

from tests.conftest import REPO
from tests.harness.compile_support import recompiled_lines, used_pyc_lines
from tests.harness.stdlib_compile import check_stdlib_matches_compileall, install_pyz

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


def test_trixie_python_stdlib_matches_compileall(chroot_factory, pyz):
    root = chroot_factory("trixie")
    root.apt_install("python3")
    install_pyz(root, pyz)
    # Debian's python3 without libpython3.13-testsuite: no file meant not to compile.
    assert check_stdlib_matches_compileall(root, "python3", rejects=False) == [3, 13]
