"""prune: pyimgtools prune against the upstream `find … -exec rm -rf {} +`.

Input: a copy of a source-built CPython (/root/.pyenv/versions/3.11.x, or the
newest 3.x there) without its site-packages, as after `make install`; each run
gets a fresh `cp -a` copy of it (not timed).
"""

import glob
import os
import shutil
import subprocess

from _frame import Variant, pyimgtools_argv

DESCRIPTION = "prune a CPython install tree (pyenv 3.11 minus site-packages)"

FIND = ("find {top} -depth \\( \\( -type d -a \\( -name test -o -name tests -o -name idle_test \\) \\) "
        "-o \\( -type f -a \\( -name '*.pyc' -o -name '*.pyo' -o -name 'libpython*.a' \\) \\) \\) "
        "-exec rm -rf '{{}}' +")


def _source():
    found = sorted(glob.glob("/root/.pyenv/versions/3.11.*")) or sorted(glob.glob("/root/.pyenv/versions/3.*"))
    if not found:
        raise SystemExit("bench prune: no CPython under /root/.pyenv/versions")
    return found[-1]


def variants(work):
    master = os.path.join(work, "master")
    subprocess.run(["cp", "-a", _source(), master], check=True)
    for sp in glob.glob(os.path.join(master, "lib", "python3*", "site-packages")):
        shutil.rmtree(sp)

    def prepare(run_dir):
        subprocess.run(["cp", "-a", master, os.path.join(run_dir, "tree")], check=True)
        subprocess.run(["sync"], check=False)

    return [
        Variant("upstream find -exec rm -rf", prepare=prepare,
                command=lambda run_dir: ["sh", "-c", FIND.format(top=os.path.join(run_dir, "tree"))]),
        Variant("pyimgtools prune", prepare=prepare,
                command=lambda run_dir: pyimgtools_argv("prune", "-q", os.path.join(run_dir, "tree"))),
    ]
