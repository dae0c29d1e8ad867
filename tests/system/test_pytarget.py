"""pytarget.probe against the interpreters' own answers, on 3.8-3.13 (host CPythons).

For a venv made by `python -m venv`, the expected site-packages, prefix and
standard library are what the venv's python reports with site.py running
normally (`site.getsitepackages()`, `sys.prefix`, `os.__file__`); the probe runs
with -I -S, where 3.13 and older leave sys.prefix at the base.
"""

import json
import os
import subprocess
import sys

import pytest

from pyimgtools import pytarget
from pyimgtools.fs import Root
from tests.conftest import run_cli
from tests.harness.prereq import pyenv_python, require

MINORS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
_OWN = ("import json, os, site, sys; print(json.dumps({'site': site.getsitepackages(), "
        "'prefix': sys.prefix, 'stdlib': os.path.dirname(os.__file__)}))")


def own_answer(python):
    return json.loads(subprocess.run([python, "-c", _OWN], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.mark.host_only
@pytest.mark.parametrize("system_site", [False, True])
@pytest.mark.parametrize("minor", MINORS)
def test_probe_finds_the_venvs_own_trees(tmp_path, minor, system_site):
    base = pyenv_python(minor)
    require(base is not None, "needs CPython %s under /root/.pyenv" % minor)
    venv = tmp_path / "venv"
    argv = [base, "-m", "venv", "--without-pip", str(venv)]
    if system_site:
        argv.insert(3, "--system-site-packages")
    subprocess.run(argv, check=True)
    python = str(venv / "bin" / "python3")
    got = pytarget.probe(python)
    want = own_answer(python)
    assert got.venv is True
    assert got.prefix == want["prefix"] == str(venv)
    assert got.stdlib == want["stdlib"]
    assert got.site_packages == want["site"]
    assert got.prune_root() == str(venv)


@pytest.mark.host_only
@pytest.mark.parametrize("minor", ("3.8", "3.13"))
def test_a_pyvenv_cfg_without_the_system_site_key_includes_the_system_site(tmp_path, minor):
    # site.py reads an absent include-system-site-packages as true (a hand-written
    # pyvenv.cfg, or a tool that writes only `home`).
    base = pyenv_python(minor)
    require(base is not None, "needs CPython %s under /root/.pyenv" % minor)
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    cfg = venv / "pyvenv.cfg"
    lines = cfg.read_text().splitlines(True)
    cfg.write_text("".join(l for l in lines if not l.lower().startswith("include-system-site-packages")))
    python = str(venv / "bin" / "python3")
    got = pytarget.probe(python)
    want = own_answer(python)
    assert len(want["site"]) > 1  # the system site-packages is in
    assert got.site_packages == want["site"] and got.prefix == want["prefix"] == str(venv)


def test_compile_and_finalize_share_one_venv_probe(tmp_path):
    # pytarget runs compile's worker code (target_info) in the target: the venv site
    # directories `compile --site-packages` covers are those of finalize's target.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python3")
    got = pytarget.probe(python)
    proc = run_cli("compile", "--python", python, "--site-packages", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    trees = json.loads(proc.stdout)["trees"]
    assert got.prefix == str(venv)
    mine = [t for t in trees if t.startswith(str(venv) + "/")]
    assert mine and set(mine) <= set(got.site_packages)


@pytest.mark.host_only
@pytest.mark.parametrize("minor", MINORS)
def test_probe_of_a_plain_installation(minor):
    python = pyenv_python(minor)
    require(python is not None, "needs CPython %s under /root/.pyenv" % minor)
    got = pytarget.probe(python)
    want = own_answer(python)
    assert got.venv is False
    assert (got.prefix, got.stdlib, got.site_packages) == (want["prefix"], want["stdlib"], want["site"])


def test_python3_on_path_is_found_unresolved(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "python3").write_text("not executable")
    target = sys.executable
    os.symlink(target, str(second / "python3"))
    path = "relative/bin:%s:%s" % (first, second)
    assert pytarget.on_path(Root("/"), path) == str(second / "python3")
    assert pytarget.on_path(Root("/"), "/nonexistent") is None
