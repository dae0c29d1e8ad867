"""keep: `pyimgtools keep --print` against the upstream ldd pipeline.

Input: /root/.pyenv/versions/3.11.7 in place (read-only for both variants):
a source-built CPython 3.11 with numpy and scipy, ~51,000 files, 1,114
executables. The upstream pipeline is the current form from
shared/reference/upstream-recipe.md with `apt-mark manual` left out and
/usr/local replaced by the tree; both leave out '*tkinter*' as the slim
images do. Both print the package names.
"""

import glob
import os

from _frame import Variant, pyimgtools_argv

DESCRIPTION = "packages needed by pyenv 3.11.7 + numpy + scipy (keep --print vs find|ldd|dpkg-query)"

UPSTREAM = r"""
find "$1" -type f -executable -not \( -name '*tkinter*' \) -exec ldd '{}' ';' \
    | awk -v top="$1/" '/=>/ { so = $(NF-1); if (index(so, top) == 1) { next }; gsub("^/(usr/)?", "", so); printf "*%s\n", so }' \
    | sort -u \
    | xargs -r dpkg-query --search \
    | awk 'sub(":$", "", $1) { print $1 }' \
    | sort -u
"""


def _tree():
    exact = "/root/.pyenv/versions/3.11.7"
    if os.path.isdir(exact):
        return exact
    found = sorted(glob.glob("/root/.pyenv/versions/3.11.*"))
    if not found:
        raise SystemExit("bench keep: no CPython 3.11 under /root/.pyenv/versions")
    return found[-1]


def variants(work):
    tree = _tree()
    return [
        Variant("upstream find|ldd|awk|dpkg-query",
                command=lambda run_dir: ["sh", "-c", UPSTREAM, "upstream", tree]),
        Variant("pyimgtools keep --print",
                command=lambda run_dir: pyimgtools_argv("keep", "--print", "--exclude", "*tkinter*",
                                                        tree)),
    ]
