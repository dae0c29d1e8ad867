"""Evidence that a start compiles nothing: `python -v` as a non-root user.

`python -v` prints `# code object from '/…/__pycache__/x.cpython-3X.pyc'` (quoted)
when a module's bytecode is used and `# code object from /…/x.py` (unquoted) when
the module was compiled from source (field notes). A non-root user cannot write
`__pycache__`, so every unquoted line is compiling paid at every start.
"""

import re

_CODE = re.compile(r"^# code object from (.*)$", re.M)

# Run in the image by its python3 (3.8+): every top-level module of every
# installed distribution, as importlib.metadata knows them; one per line.
LIST_TOP_LEVEL = r"""
import importlib.metadata as md, sys
names = set()
for dist in md.distributions():
    top = dist.read_text("top_level.txt")
    if top:
        names.update(top.split())
    else:
        for f in dist.files or ():
            if f.parts and len(f.parts) >= 1 and (f.suffix == ".py" or len(f.parts) > 1) \
                    and not f.parts[0].endswith((".dist-info", ".data", ".libs")) \
                    and ".." not in f.parts and f.parts[0] != "__pycache__":
                first = f.parts[0]
                names.add(first[:-3] if first.endswith(".py") else first)
# A name in top_level.txt that is no module (Debian's setuptools lists
# `debian`) is not an installed module.
import importlib.util
print("\n".join(sorted(n for n in names if n.isidentifier() and importlib.util.find_spec(n))))
"""


def code_objects(stderr):
    """(used .pyc files, modules compiled from source) from `python -v` output."""
    used, compiled = [], []
    for m in _CODE.finditer(stderr):
        where = m.group(1).strip()
        if where.startswith("'") and where.endswith("'"):
            used.append(where[1:-1])
        else:
            compiled.append(where)
    return used, compiled


# Imports one module (argv[1]); a fresh process per module, as an app starts:
# some packages cannot share a process in every order (setuptools after
# distutils).
_IMPORT_ONE = "import importlib, sys; importlib.import_module(sys.argv[1])"


def import_command(python, module):
    """argv that imports `module` under `python -v`."""
    return [python, "-v", "-c", _IMPORT_ONE, module]


# Run in the image as a non-root user by its python3: imports every top-level
# module (LIST_TOP_LEVEL) in a fresh `python3 -v` each, then runs argv[1:] (the
# app's start) under -v; prints one JSON document of {what: [exit, stdout, stderr]}.
EVIDENCE = r"""
import json, subprocess, sys
names = subprocess.run([sys.executable, "-c", %r], capture_output=True, text=True,
                       check=True).stdout.split()
runs = {}
for name in names:
    p = subprocess.run([sys.executable, "-v", "-c", %r, name], capture_output=True, text=True)
    runs["import " + name] = [p.returncode, p.stdout, p.stderr]
if sys.argv[1:]:
    p = subprocess.run([sys.executable, "-v"] + sys.argv[1:], capture_output=True, text=True)
    runs["app"] = [p.returncode, p.stdout, p.stderr]
print(json.dumps(runs))
""" % (LIST_TOP_LEVEL, _IMPORT_ONE)
