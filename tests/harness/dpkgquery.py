"""`dpkg-query --search` run and parsed once: the reference for which package owns a path.

Independent of pyimgtools.dpkg. dpkg's own format (src/query/main.c,
searchoutput): for a diverted path first two lines, "diversion by PKG from:
PATH" and "diversion by PKG to: PATH" (or "local diversion from: / to:" for a
diversion without a package), then "PKG[, PKG...]: PATH" when some package's
list holds the path. Those strings are translated, so dpkg-query runs with
LC_ALL=C. A path no package lists only makes dpkg-query exit 1.
"""

import os
import re
import subprocess

_DIVERSION_LINE = re.compile(r"^(?:diversion by (\S+)|local diversion) (from|to): (/.*)$")


def parse_search(text):
    """({path: set of listing packages}, {diverted path: (diverting package or None, to)})."""
    listers, diverted = {}, {}
    pending = {}
    for line in text.splitlines():
        m = _DIVERSION_LINE.match(line)
        if m:
            by, which, path = m.groups()
            if which == "from":
                pending[by] = path
            elif by in pending:
                diverted[pending.pop(by)] = (by, path)
            continue
        pkgs, sep, path = line.partition(": /")
        if sep:
            listers.setdefault("/" + path, set()).update(p.strip() for p in pkgs.split(","))
    return listers, diverted


def host_search(args):
    """stdout of `dpkg-query --search ARGS` on this machine's database."""
    env = dict(os.environ, LC_ALL="C")
    return subprocess.run(["dpkg-query", "--search"] + list(args), capture_output=True, text=True,
                          errors="surrogateescape", env=env).stdout
