"""audit: pyimgtools audit --root against the shell a person would write for part of it.

Input (made once, read-only for every run): the cached debootstrapped bookworm
rootfs of the tests (or this machine's /, when there is none) with a CPython
3.12 install tree (pyenv's, minus site-packages) under /usr/local.

No tool does what audit does; the baseline covers five of its checks with the
usual one-liners: dangling symlinks (`find -xtype l`), test directories
(`find … -exec du`), build tools (`dpkg-query | grep`), apt leftovers (`du`),
a Python's stdlib .py files without a .pyc (`find` + `test -e` per file).
"""

import glob
import os
import subprocess

from _frame import Variant, pyimgtools_argv

DESCRIPTION = "audit a rootfs with a CPython 3.12 under /usr/local (read-only)"

SHELL = r"""
R="$1"
find "$R" -xdev \( -path "$R/proc" -o -path "$R/sys" -o -path "$R/dev" -o -path "$R/run" \) -prune -o -xtype l -print | wc -l
find "$R/usr/local" -type d \( -name test -o -name tests -o -name idle_test \) -prune -exec du -sb {} + | wc -l
dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Package} ${Installed-Size}\n' | grep -E '^(gcc|g\+\+|cpp|make|binutils)(-[0-9.]+)? |-dev ' | wc -l
du -sb "$R/var/lib/apt/lists" "$R/var/cache/apt" 2>/dev/null | wc -l
find "$R/usr/local/lib/python3.12" \( -name test -o -name tests -o -name idle_test -o -name site-packages -o -name __pycache__ \) -prune -o -name '*.py' -print |
  while read -r f; do d=${f%/*}; b=${f##*/}; [ -e "$d/__pycache__/${b%.py}.cpython-312.pyc" ] || echo "$f"; done | wc -l
"""


def _rootfs_tar():
    found = sorted(glob.glob("/var/cache/pyimgtools-tests/rootfs/bookworm-*.tar"))
    return found[-1] if found else None


def variants(work):
    root = os.path.join(work, "root")
    os.makedirs(root)
    tar = _rootfs_tar()
    if tar is None:
        raise SystemExit("bench audit: no cached bookworm rootfs (run the integration tests once)")
    subprocess.run(["tar", "-C", root, "-xf", tar], check=True)
    py = sorted(glob.glob("/root/.pyenv/versions/3.12.*"))
    if not py:
        raise SystemExit("bench audit: no CPython 3.12 under /root/.pyenv/versions")
    local = os.path.join(root, "usr", "local")
    for part in ("bin", "lib"):
        subprocess.run(["cp", "-a", os.path.join(py[-1], part), local], check=True)
    subprocess.run(["rm", "-rf", os.path.join(local, "lib", "python3.12", "site-packages")], check=True)
    return [
        Variant("shell one-liners (5 of the checks)",
                command=lambda run_dir: ["sh", "-c", SHELL, "bench", root]),
        Variant("pyimgtools audit --root (all checks)",
                command=lambda run_dir: pyimgtools_argv("audit", "-q", "--root", root,
                                                        "--fail-on", "never")),
    ]
