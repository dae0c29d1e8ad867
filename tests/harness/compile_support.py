"""The reference `pyimgtools compile` is compared with: compileall, importlib and `python -v`.

COMPILEALL runs compileall's own API (what `python -m compileall` runs) in the
target interpreter; COMPARE compares two trees' .pyc files (headers and code
objects); IMPORT plus recompiled_lines/used_pyc_lines read the interpreter's
`python -v` to tell whether the .pyc files are used at import; pyc/pyc_name
place a .pyc by importlib's rule (PEP 3147/488); VENV_FACTS/BASE_SITE ask a
venv's own interpreter for its trees. Shared by the compile tests of every layer.

The scripts below run inside the *target* interpreter (3.8 ... 3.13, trixie's
3.13 in a chroot): code objects only unmarshal in the version that wrote them.
Each is passed with `-c`, so it works in a chroot that has no copy of this file.
"""

import fcntl
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

from tests.harness.prereq import CACHE_DIR

# The reference: compileall's own API, what `python -m compileall` runs, with no
# exclusion at all, forced (compileall takes a timestamp .pyc of an unchanged
# source as up to date in any mode); every level, in parallel (compileall -j).
COMPILEALL = r"""
import compileall, py_compile, sys
root, mode, levels = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split(",")]
m = py_compile.PycInvalidationMode[mode.upper().replace("-", "_")]
if sys.version_info >= (3, 9):
    compileall.compile_dir(root, maxlevels=100, quiet=2, force=True, optimize=levels, invalidation_mode=m,
                           workers=2)
else:
    for lv in levels:
        compileall.compile_dir(root, maxlevels=100, quiet=2, force=True, optimize=lv, invalidation_mode=m,
                               workers=2)
"""

# Compares two trees compiled from hard links of the same sources: the set of
# .pyc files, their 16-byte headers, and the unmarshalled code objects (==, and
# co_filename relative to each tree, recursively), unless the bytes are equal once
# the tree names (of equal length) are swapped. Prints one JSON document.
COMPARE = r"""
import json, marshal, os, stat, sys
ref, ours = sys.argv[1], sys.argv[2]

def pycs(root):
    found = {}
    for d, dirs, files in os.walk(root):
        if os.path.basename(d) == "__pycache__":
            for f in files:
                if f.endswith(".pyc"):
                    found[os.path.relpath(os.path.join(d, f), root)] = os.path.join(d, f)
    return found

def sources(root):
    found = set()
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                found.add(os.path.relpath(os.path.join(d, f), root))
    return found

def norm(obj):
    # A comparable form of a code object's contents: == on code objects is
    # false for two unmarshallings of a NaN constant, so floats compare by bits.
    if hasattr(obj, "co_code"):
        names = [k for k in sorted(dir(obj)) if k.startswith("co_")
                 and k not in ("co_filename", "co_lnotab") and not callable(getattr(obj, k))]
        return ("code",) + tuple((k, norm(getattr(obj, k))) for k in names)
    if isinstance(obj, float):
        return ("float", obj.hex() if obj == obj else repr(obj))
    if isinstance(obj, complex):
        return ("complex", norm(obj.real), norm(obj.imag))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__,) + tuple(norm(x) for x in obj)
    if isinstance(obj, frozenset):
        return ("frozenset",) + tuple(sorted(repr(norm(x)) for x in obj))
    return (type(obj).__name__, obj)

def code_problem(a, b, where):
    if a != b and norm(a) != norm(b):
        return where + ": code objects differ"
    if os.path.relpath(a.co_filename, ref) != os.path.relpath(b.co_filename, ours):
        return where + ": co_filename %r vs %r" % (a.co_filename, b.co_filename)
    subs_a = [c for c in a.co_consts if hasattr(c, "co_code")]
    subs_b = [c for c in b.co_consts if hasattr(c, "co_code")]
    if len(subs_a) != len(subs_b):
        return where + ": nested code objects differ"
    for x, y in zip(subs_a, subs_b):
        p = code_problem(x, y, where + "/" + x.co_name)
        if p:
            return p
    return None

r, o = pycs(ref), pycs(ours)
mismatches, modes = [], []
for rel in sorted(set(r) & set(o)):
    with open(r[rel], "rb") as f:
        a = f.read()
    with open(o[rel], "rb") as f:
        b = f.read()
    if a[:16] != b[:16]:
        mismatches.append("%s: header %s vs %s" % (rel, a[:16].hex(), b[:16].hex()))
        continue
    if len(ref) == len(ours) and a.replace(ref.encode(), ours.encode()) == b:
        continue  # the same bytes but for the tree's name: the same code, quickly
    p = code_problem(marshal.loads(a[16:]), marshal.loads(b[16:]), rel)
    if p:
        mismatches.append(p)
for rel, path in o.items():
    st = os.stat(path)
    d = os.stat(os.path.dirname(path))
    if st.st_mode & 0o444 != 0o444 or stat.S_IMODE(d.st_mode) != 0o755:
        modes.append("%s %o in %o" % (rel, st.st_mode, d.st_mode))
print(json.dumps({"ref": len(r), "ours": len(o), "only_ref": sorted(set(r) - set(o)),
                  "only_ours": sorted(set(o) - set(r)), "mismatches": mismatches[:50],
                  "n_mismatches": len(mismatches), "bad_modes": modes[:20],
                  "sources": sorted(sources(ours))}))
"""

# Imports modules from a tree with `python -v`; prints the verbose lines
# (stderr) so the test can see which .pyc files were used and what was compiled.
IMPORT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import asyncio, json, email, email.parser, http.client
for name in ("asyncio", "json", "email", "http.client"):
    assert sys.modules[name].__file__.startswith(sys.argv[1]), sys.modules[name].__file__
"""

MODULES = ("asyncio", "json", "email", "http")


def pyc(path, level=0):
    """Where the running interpreter's importer looks for the .pyc of `path` (importlib's own rule)."""
    return importlib.util.cache_from_source(str(path), optimization=level if level else "")


def pyc_name(rel_source, cache_tag, level):
    """Where compileall puts the .pyc of `rel_source` (PEP 3147/488), independently."""
    head, tail = os.path.split(rel_source)
    opt = ".opt-%d" % level if level else ""
    return os.path.join(head, "__pycache__", "%s.%s%s.pyc" % (tail[:-3], cache_tag, opt))


def run_json(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def recompiled_lines(verbose_stderr, tree):
    """Lines of `python -v` saying a module under `tree` was compiled from source."""
    prefix = "# code object from " + tree.rstrip("/") + "/"
    return [line for line in verbose_stderr.splitlines()
            if line.startswith(prefix) and line.endswith(".py")]


def used_pyc_lines(verbose_stderr, tree):
    """Lines of `python -v` saying a .pyc under `tree` was validated and used."""
    return [line for line in verbose_stderr.splitlines()
            if line.startswith("# " + tree.rstrip("/") + "/") and " matches " in line]


# ---------------------------------------------------------------- venv makers

VENV_TOOLS = os.path.join(CACHE_DIR, "venv-tools")
VENV_TOOLS_MAX_AGE = 7 * 24 * 3600
VENV_KINDS = ("venv", "virtualenv", "uv")

# What a venv's own interpreter (site enabled) says about itself: its site
# directories, the stdlib (the directory of a pure-Python stdlib package, which
# is never frozen), and the base interpreter it runs on.
VENV_FACTS = r"""
import json, os, site, sys
import json as _j
print(json.dumps({"site": site.getsitepackages(),
                  "stdlib": os.path.dirname(os.path.dirname(_j.__file__)),
                  "base_executable": getattr(sys, "_base_executable", None),
                  "prefix": sys.prefix, "base_prefix": sys.base_prefix}))
"""
# The base interpreter's own site directories (site enabled, user site included).
BASE_SITE = r"""
import json, site
print(json.dumps(site.getsitepackages() + [site.getusersitepackages()]))
"""


def venv_tools():
    """{"virtualenv": a PYTHONPATH entry holding virtualenv and its dependencies,
    "uv": the uv binary}, unpacked from their PyPI wheels (pip download on the
    host, cached for a week; without PyPI the test cannot run)."""
    from tests.harness.prereq import require
    site_dir = os.path.join(VENV_TOOLS, "site")
    stamp = os.path.join(VENV_TOOLS, ".complete")
    os.makedirs(VENV_TOOLS, exist_ok=True)
    with open(os.path.join(VENV_TOOLS, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            fresh = time.time() - os.stat(stamp).st_mtime < VENV_TOOLS_MAX_AGE
        except FileNotFoundError:
            fresh = False
        if not fresh:
            wheels = os.path.join(VENV_TOOLS, "wheels")
            shutil.rmtree(wheels, ignore_errors=True)
            shutil.rmtree(site_dir, ignore_errors=True)
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                                   "--disable-pip-version-check", "--only-binary", ":all:",
                                   "-d", wheels, "virtualenv", "uv"], capture_output=True, text=True)
            require(proc.returncode == 0, "cannot download virtualenv and uv from PyPI: %s"
                    % proc.stderr[-500:])
            for name in sorted(os.listdir(wheels)):
                with zipfile.ZipFile(os.path.join(wheels, name)) as whl:
                    whl.extractall(site_dir)
            open(stamp, "w").close()
    uv = glob.glob(os.path.join(site_dir, "uv-*.data", "scripts", "uv"))
    require(len(uv) == 1, "no uv binary in the uv wheel under %s" % site_dir)
    os.chmod(uv[0], 0o755)
    return {"virtualenv": site_dir, "uv": uv[0]}


def make_venv_argv(kind, python, dest, tools, runner=None):
    """(argv, env) that make a venv at `dest` for `python` with `kind`'s own tool;
    `runner` is the interpreter that runs virtualenv (default: `python`)."""
    if kind == "venv":
        return [python, "-m", "venv", "--without-pip", dest], {}
    if kind == "virtualenv":
        return ([runner or python, "-m", "virtualenv", "--no-seed", "--no-periodic-update",
                 "-p", python, dest],
                {"PYTHONPATH": tools["virtualenv"],
                 "VIRTUALENV_OVERRIDE_APP_DATA": dest + ".appdata"})
    if kind == "uv":
        return ([tools["uv"], "venv", "--no-config", "--offline", "--python", python, dest],
                {"UV_CACHE_DIR": dest + ".uvcache", "UV_PYTHON_DOWNLOADS": "never",
                 "UV_NO_CONFIG": "1"})
    raise ValueError(kind)


def expected_venv_trees(facts, base_site, host=lambda path: path):
    """What `compile --site-packages` of a venv must walk: the base stdlib, then the
    venv's existing site directories (once each); and the base's site directories,
    none of which may be walked. `host` maps a path of the venv's file system to this one's."""
    trees, seen = [facts["stdlib"]], {os.path.realpath(host(facts["stdlib"]))}
    for d in facts["site"]:
        if os.path.isdir(host(d)) and os.path.realpath(host(d)) not in seen:
            seen.add(os.path.realpath(host(d)))
            trees.append(d)
    return trees, [d for d in base_site if d]


def assert_no_base_site(doc, base_site):
    for d in base_site:
        d = d.rstrip("/") + "/"
        assert not any((t.rstrip("/") + "/").startswith(d) for t in doc["trees"]), (d, doc["trees"])
        assert not any(it["path"].startswith(d) for it in doc["to_compile"]), d
