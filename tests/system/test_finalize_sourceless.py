"""finalize leaves every module importable and no fewer loadable .pyc than it found.

A real venv of the host's CPython 3.11 (pip and setuptools installed by ensurepip,
their bytecode written by pip) plus a sourceless module and a sourceless package
(`compileall -b`, then the sources removed, as sourceless distributions ship).
finalize's prune and compile steps run for real on it (the target's standard
library is hidden from the run: the host's own CPython is never written).

Every judgement comes from the real importer, in a subprocess of the venv's
python: which modules import, and which of them were loaded from bytecode
(SourcelessFileLoader, or a SourceFileLoader that never called source_to_code)
rather than compiled from source.
"""

import argparse
import io
import json
import os
import subprocess

import pytest

from pyimgtools import commands, pytarget
from pyimgtools.commands import finalize as finalize_command
from pyimgtools.fs import Root
from pyimgtools.report import Output
from tests.harness.prereq import require_pyenv_python

# Imports every module found in SITE (skipping __main__ modules, which run a
# program) and says how each came: bytecode or compiled from source.
_IMPORT_ALL = r"""
import importlib, importlib.machinery as m, json, os, sys
site = sys.argv[1]
sys.path[:0] = [site]
compiled = set()
real = m.SourceFileLoader.source_to_code
def source_to_code(self, data, path, *a, **k):
    compiled.add(os.path.abspath(path))
    return real(self, data, path, *a, **k)
m.SourceFileLoader.source_to_code = source_to_code
names = set()
for d, dirs, files in os.walk(site):
    dirs[:] = [x for x in dirs if x != "__pycache__" and x.isidentifier()]
    rel = os.path.relpath(d, site)
    parts = [] if rel == "." else rel.split(os.sep)
    for f in files:
        stem, ext = os.path.splitext(f)
        if ext not in (".py", ".pyc") or not stem.isidentifier() or stem == "__main__":
            continue
        names.add(".".join(parts if stem == "__init__" else parts + [stem]))
result = {"ok": [], "failed": [], "bytecode": [], "source": []}
for name in sorted(n for n in names if n):
    try:
        importlib.import_module(name)
    except BaseException:
        result["failed"].append(name)
        continue
    result["ok"].append(name)
for name, mod in sorted(sys.modules.items()):
    spec = getattr(mod, "__spec__", None)
    origin = getattr(spec, "origin", None) or ""
    if not origin.startswith(site + os.sep) or name not in names:
        continue
    if isinstance(spec.loader, m.SourcelessFileLoader):
        result["bytecode"].append(name)
    elif isinstance(spec.loader, m.SourceFileLoader):
        result["source" if os.path.abspath(origin) in compiled else "bytecode"].append(name)
print(json.dumps(result))
"""


def import_all(python, site):
    proc = subprocess.run([python, "-I", "-S", "-B", "-c", _IMPORT_ALL, site],
                          capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_sourceless(python, site):
    files = {"legacy_app.py": "VALUE = 'app'\n",
             "legacy_pkg/__init__.py": "from .core import VALUE\n",
             "legacy_pkg/core.py": "VALUE = 'core'\n"}
    for rel, text in files.items():
        path = os.path.join(site, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    for target in ("legacy_app.py", "legacy_pkg"):
        subprocess.run([python, "-m", "compileall", "-b", "-q", os.path.join(site, target)], check=True)
    for rel in files:
        os.unlink(os.path.join(site, rel))
        assert os.path.isfile(os.path.join(site, rel + "c"))


def run_finalize(python, monkeypatch, tmp_path):
    real_probe = pytarget.probe

    def probe(exe, root=None):
        target = real_probe(exe, root)
        target.stdlib = target.platstdlib = str(tmp_path / "no-stdlib")  # not the host's
        return target

    monkeypatch.setattr(pytarget, "probe", probe)
    parser = argparse.ArgumentParser(prog="pyimgtools")
    finalize_command.register(parser.add_subparsers(dest="command"), commands.common_parent())
    ns = parser.parse_args(["finalize", "--no-security-upgrade", "--python", python])
    ns.root, ns.json, ns.quiet, ns.verbose = "/", False, False, False
    log = io.StringIO()
    assert ns.run(ns, Output(stdout=log, stderr=log), Root("/")) == 0, log.getvalue()
    return log.getvalue()


@pytest.mark.main_only
@pytest.mark.host_only
def test_finalize_keeps_every_module_importable_and_its_bytecode(tmp_path, monkeypatch):
    base = require_pyenv_python("3.11")
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True)  # ensurepip: offline
    python = str(venv / "bin" / "python3")
    site = str(venv / "lib" / "python3.11" / "site-packages")
    add_sourceless(python, site)
    before = import_all(python, site)
    assert {"legacy_app", "legacy_pkg", "legacy_pkg.core", "pip"} <= set(before["ok"])
    assert {"legacy_app", "legacy_pkg", "legacy_pkg.core"} <= set(before["bytecode"])

    log = run_finalize(python, monkeypatch, tmp_path)

    after = import_all(python, site)
    # Only test packages are gone (prune's tests rule: pip's vendored colorama.tests);
    # every module left imports as before, each of them from bytecode where it was
    # before, and none is compiled from source any more.
    found = set(after["ok"]) | set(after["failed"])
    gone = set(before["ok"]) - found
    assert gone and all(".tests." in "." + n + "." for n in gone), gone
    assert set(after["ok"]) == set(before["ok"]) & found
    assert set(after["failed"]) <= set(before["failed"])
    assert set(before["bytecode"]) & found <= set(after["bytecode"])
    assert {"legacy_app", "legacy_pkg", "legacy_pkg.core"} <= set(after["bytecode"])
    assert after["source"] == []
    assert "kept 3 sourceless .pyc files" in log  # and prune said so
