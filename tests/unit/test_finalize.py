"""`pyimgtools finalize`: option pass-through, order, skipping, failure, JSON.

Expected options come from the steps' own parsers (`pyimgtools prune …`
parsed by the real CLI, read as the step's adapter's run() reads them); the real-run test checks the tree with os.walk and
importlib.util.cache_from_source, not with finalize's report.
"""

import argparse
import importlib.util
import io
import json
import os
import sys

import pytest

from pyimgtools import cli, commands, finalize, pytarget
from pyimgtools.commandnames import adapter_module
from pyimgtools.commands import finalize as finalize_command
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root
from pyimgtools.report import Output


def parse(*argv):
    parser = argparse.ArgumentParser(prog="pyimgtools")
    sub = parser.add_subparsers(dest="command")
    finalize_command.register(sub, commands.common_parent())
    args = parser.parse_args(["finalize"] + list(argv))
    for key, value in (("root", "/"), ("json", False), ("quiet", False), ("verbose", False)):
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def step_parse(*argv):
    """What the step's own command line gives (the independent expectation)."""
    parser = argparse.ArgumentParser(prog="pyimgtools")
    sub = parser.add_subparsers(dest="command")
    for command, _module, _ in finalize.STEPS:
        step_adapter(command).register(sub, commands.common_parent())
    return parser.parse_args(list(argv))


def set_values(options):
    """The options that differ from "not given" (None, False, an empty list)."""
    return {k: v for k, v in options.items() if v not in (None, False, [], ())}


def step_adapter(command):
    return __import__(adapter_module(command), fromlist=["run"])


@pytest.mark.parametrize("finalize_argv, step_argv", [
    ([], ["prune"]),
    (["--prune-docs", "--prune-keep", "*/keepme/*", "--prune-path", "/a", "--prune-path", "/b"],
     ["prune", "--docs", "--keep", "*/keepme/*", "/a", "/b"]),
    (["--compile-workers", "3", "--compile-invalidation-mode", "timestamp", "--compile-optimize",
      "1", "--compile-optimize", "2", "--compile-path", "/srv/app"],
     ["compile", "-j", "3", "--invalidation-mode", "timestamp", "-O", "1", "-O", "2", "/srv/app"]),
    (["--compile-site-packages", "--compile-exclude", "vendored"],
     ["compile", "--site-packages", "--exclude", "vendored"]),
    (["--security-upgrade-keep-lists", "--security-upgrade-lock-timeout", "5"],
     ["security-upgrade", "--keep-lists", "--lock-timeout", "5"]),
])
def test_options_reach_the_step_as_its_own_parser_gives_them(finalize_argv, step_argv):
    args = parse(*finalize_argv)
    expected = step_parse(*step_argv)
    command = step_argv[0]
    module = step_adapter(command)
    got = finalize_command.step_options(command, args)
    # what the step's own run() passes its library function
    own = {k: getattr(expected, k) for k in module.OPTION_NAMES}
    assert set_values(got) == set_values(own)
    assert set(got) <= set(module.OPTION_NAMES) | {"dry_run"}
    assert expected.run is module.run


def test_check_is_not_passed_through(capsys):
    with pytest.raises(SystemExit) as exc:
        parse("--security-upgrade-check")
    assert exc.value.code == 2


def test_every_option_of_every_step_is_reachable():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    finalize_command.register(sub, commands.common_parent())
    mine = set(sub.choices["finalize"]._option_string_actions)
    for command, _module, excluded in finalize.STEPS:
        scratch = argparse.ArgumentParser()
        steps = scratch.add_subparsers(dest="command")
        step_adapter(command).register(steps, commands.common_parent())
        for action in steps.choices[command]._actions:
            if action.dest in ("help", "root", "json", "quiet", "verbose", "dry_run") \
                    or action.dest in excluded:
                continue
            names = [s for s in action.option_strings if s.startswith("--")]
            if not action.option_strings:
                names = ["--path"]
            assert any("--%s-%s" % (command, n.lstrip("-")) in mine for n in names), \
                (command, action.dest)


class FakeOutcome:
    def __init__(self, command, code):
        self.command, self.code = command, code


@pytest.fixture
def fake_steps(monkeypatch):
    """Replace each step's library function with a recorder of its keyword
    arguments; behaviour[command] is "raise" (it raises) or an exit code."""
    calls = []
    behaviour = {}

    def make(command):
        def function(*, root, out, **options):
            calls.append((command, options))
            if behaviour.get(command) == "raise":
                raise PyimgtoolsError("%s broke" % command)
            out.line("%s working" % command)
            return FakeOutcome(command, behaviour.get(command, 0))
        return function

    def report(outcome, out):
        out.summary("pyimgtools %s: did %s things in 0.0 s" % (outcome.command, outcome.command))

    for command, module, _ in finalize.STEPS:
        mod = __import__("pyimgtools." + module, fromlist=["run"])
        monkeypatch.setattr(mod, finalize.FUNCTIONS[module], make(command))
        monkeypatch.setattr(mod, "report", report)
        monkeypatch.setattr(mod, "document", lambda o: {"command": o.command, "marker": 42})
        monkeypatch.setattr(mod, "failure", lambda o: None)
        monkeypatch.setattr(mod, "exit_code", lambda o: o.code)
    return calls, behaviour


def run_finalize(*argv, json_mode=False):
    args = parse(*argv)
    args.json = json_mode
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(json_mode=json_mode, stdout=stdout, stderr=stderr)
    try:
        code = args.run(args, out, Root("/"))
        error = None
    except PyimgtoolsError as exc:
        code, error = exc.exit_code, str(exc)
    return code, error, stdout.getvalue(), stderr.getvalue()


def test_steps_run_in_order_with_one_summary(fake_steps):
    calls, _ = fake_steps
    code, error, stdout, _ = run_finalize()
    assert code == 0 and error is None
    assert [c for c, _ in calls] == ["security-upgrade", "prune", "compile"]
    lines = stdout.splitlines()
    assert lines[-1].startswith("pyimgtools finalize: security-upgrade did security-upgrade things")
    assert "prune did prune things" in lines[-1] and "compile did compile things" in lines[-1]
    assert "prune working" in lines  # the steps' own lines are shown as they come
    assert sum(1 for l in lines if l.startswith("pyimgtools finalize:")) == 1


@pytest.mark.parametrize("skip", ["security-upgrade", "prune", "compile"])
def test_each_step_can_be_skipped(fake_steps, skip):
    calls, _ = fake_steps
    code, _, stdout, _ = run_finalize("--no-" + skip)
    assert code == 0
    assert [c for c, _ in calls] == [c for c, _, _ in finalize.STEPS if c != skip]
    assert "skipped " + skip in stdout.splitlines()[-1]


def test_dry_run_and_common_options_reach_every_step(fake_steps):
    calls, _ = fake_steps
    run_finalize("--dry-run")
    assert [options.get("dry_run") for _, options in calls] == [True, True, True]


def test_a_failing_step_stops_the_rest(fake_steps):
    calls, behaviour = fake_steps
    behaviour["prune"] = "raise"
    code, error, stdout, _ = run_finalize("--json", json_mode=True)
    assert code == 1
    assert "prune: prune broke" in error
    assert [c for c, _ in calls] == ["security-upgrade", "prune"]
    doc = json.loads(stdout)
    assert doc["not_run"] == ["compile"]
    assert [s["exit_code"] for s in doc["steps"]] == [0, 1]


def test_a_step_exit_code_is_finalizes(fake_steps):
    calls, behaviour = fake_steps
    behaviour["security-upgrade"] = 100
    code, error, _, _ = run_finalize()
    assert code == 100 and "security-upgrade exited 100" in error
    assert [c for c, _ in calls] == ["security-upgrade"]


def test_json_is_one_document_with_each_steps_document(fake_steps):
    code, _, stdout, stderr = run_finalize("--no-security-upgrade", json_mode=True)
    doc = json.loads(stdout)  # exactly one document, nothing else on stdout
    assert code == 0
    assert doc["command"] == "finalize"
    assert [s["command"] for s in doc["steps"]] == ["security-upgrade", "prune", "compile"]
    assert doc["steps"][0]["skipped"] is True
    assert doc["steps"][1]["result"] == {"command": "prune", "marker": 42}
    assert doc["steps"][2]["summary"] == "pyimgtools compile: did compile things in 0.0 s"
    assert "pyimgtools finalize:" in stderr


def fake_target(prefix, venv=True, site=None, stdlib=None):
    return pytarget.PyTarget(executable=sys.executable, version="3.0.0", prefix=str(prefix),
                             base_prefix=str(prefix), venv=venv,
                             stdlib=str(stdlib or os.path.join(str(prefix), "nostdlib")),
                             platstdlib=str(stdlib or os.path.join(str(prefix), "nostdlib")),
                             site_packages=[str(site)] if site else [])


def test_real_prune_then_compile_on_a_tree(tmp_path, monkeypatch):
    # No security-upgrade (needs root and apt): prune and compile for real, on a
    # target whose prefix is tmp_path (the host's own Python is never touched).
    pkg = tmp_path / "lib" / "pkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "tests" / "test_x.py").write_text("assert True\n")
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "mod.py").write_text("def f():\n    return 2\n")
    stale = pkg / "__pycache__" / "old.cpython-30.pyc"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    monkeypatch.setattr(pytarget, "probe", lambda python, root=None: fake_target(tmp_path))
    args = ["finalize", "--no-security-upgrade", "--python", sys.executable]
    parser = argparse.ArgumentParser(prog="pyimgtools")
    sub = parser.add_subparsers(dest="command")
    finalize_command.register(sub, commands.common_parent())
    ns = parser.parse_args(args)
    ns.root, ns.json, ns.quiet, ns.verbose = "/", False, False, False
    out = Output(stdout=io.StringIO(), stderr=io.StringIO())
    assert ns.run(ns, out, Root("/")) == 0
    present = {os.path.relpath(os.path.join(d, f), str(tmp_path))
               for d, _, files in os.walk(str(tmp_path)) for f in files}
    expected = {"lib/pkg/__init__.py", "lib/pkg/mod.py",
                os.path.relpath(importlib.util.cache_from_source(str(pkg / "__init__.py")), str(tmp_path)),
                os.path.relpath(importlib.util.cache_from_source(str(pkg / "mod.py")), str(tmp_path))}
    assert present == expected


@pytest.fixture
def probed(monkeypatch, tmp_path):
    """finalize's probe answers with a venv in tmp_path; returns (target, calls)."""
    site = tmp_path / "venv" / "lib" / "python3.0" / "site-packages"
    std = tmp_path / "base" / "lib" / "python3.0"
    site.mkdir(parents=True)
    std.mkdir(parents=True)
    target = fake_target(tmp_path / "venv", site=site, stdlib=std)
    asked = []
    monkeypatch.setattr(pytarget, "probe", lambda python, root=None: asked.append(python) or target)
    return target, asked


def test_the_default_target_is_python3_on_path(fake_steps, probed, tmp_path, monkeypatch):
    calls, _ = fake_steps
    target, asked = probed
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir()
    exe = bindir / "python3"
    os.symlink(sys.executable, str(exe))
    monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % bindir)
    assert run_finalize("--no-security-upgrade")[0] == 0
    assert asked == [str(exe)]  # as found on PATH, not resolved: the venv is the symlink's
    options = dict(calls)
    assert options["prune"]["paths"] == [target.prefix]
    assert options["compile"]["python"] == str(exe)
    assert options["compile"]["paths"] == [target.stdlib, target.site_packages[0], target.prefix]


def test_prune_and_compile_paths_add_to_the_defaults(fake_steps, probed, tmp_path):
    calls, _ = fake_steps
    target, _ = probed
    app = tmp_path / "app"
    app.mkdir()
    code = run_finalize("--python", sys.executable, "--prune-path", str(app),
                        "--compile-path", "/srv/code")[0]
    assert code == 0
    options = dict(calls)
    assert options["prune"]["paths"] == [target.prefix, str(app)]
    assert options["compile"]["paths"] == [target.stdlib, target.site_packages[0], target.prefix,
                                   str(app), "/srv/code"]


def test_without_prune_compile_still_covers_stdlib_and_site(fake_steps, probed):
    calls, _ = fake_steps
    target, _ = probed
    assert run_finalize("--python", sys.executable, "--no-prune")[0] == 0
    assert [c for c, _ in calls] == ["security-upgrade", "compile"]
    assert dict(calls)["compile"]["paths"] == [target.stdlib, target.site_packages[0]]


def test_debians_own_python_prunes_usr_local_not_usr():
    debian = fake_target("/usr", venv=False)
    assert debian.prune_root() == "/usr/local"
    assert fake_target("/usr/local", venv=False).prune_root() == "/usr/local"
    assert fake_target("/opt/venv").prune_root() == "/opt/venv"
    assert fake_target("/opt/python3.12", venv=False).prune_root() == "/opt/python3.12"


def test_json_names_the_target_and_its_trees(fake_steps, probed):
    target, _ = probed
    code, _, stdout, _ = run_finalize("--python", sys.executable, "--no-security-upgrade",
                                      json_mode=True)
    doc = json.loads(stdout)
    assert doc["target"]["prefix"] == target.prefix and doc["target"]["venv"] is True
    assert doc["target"]["site_packages"] == target.site_packages


def test_each_steps_document_is_the_commands_own(tmp_path, monkeypatch, capsys):
    # The independent expectation: `pyimgtools prune --json` and `pyimgtools
    # compile --json` run on the same tree (dry runs: the tree stays as it is).
    pkg = tmp_path / "lib" / "pkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "tests" / "test_x.py").write_text("assert True\n")
    (pkg / "mod.py").write_text("X = 1\n")
    monkeypatch.setattr(pytarget, "probe", lambda python, root=None: fake_target(tmp_path))
    code, _, stdout, _ = run_finalize("--no-security-upgrade", "--dry-run", "--json",
                                      "--python", sys.executable, json_mode=True)
    assert code == 0
    steps = {s["command"]: s["result"] for s in json.loads(stdout)["steps"] if not s["skipped"]}
    capsys.readouterr()
    for argv in (["prune", "--dry-run", "--json", str(tmp_path)],
                 ["compile", "--dry-run", "--json", "--python", sys.executable, str(tmp_path)]):
        assert cli.main(argv) == 0
        own = json.loads(capsys.readouterr().out)
        mine = dict(steps[argv[0]])
        assert mine.pop("seconds") >= 0 and own.pop("seconds") >= 0
        assert mine == own


def test_run_steps_is_a_library_function(fake_steps, probed):
    # No argparse namespace: keyword arguments in, an Outcome out; nothing rendered yet.
    calls, _ = fake_steps
    target, _ = probed
    stdout = io.StringIO()
    out = Output(stdout=stdout, stderr=stdout)
    outcome = finalize.run_steps(root=Root("/"), out=out, python=sys.executable,
                                 skip=["security-upgrade"], dry_run=True,
                                 options={"compile": {"workers": 3}})
    assert [c for c, _ in calls] == ["prune", "compile"]
    assert dict(calls)["compile"] == {"workers": 3, "dry_run": True, "python": sys.executable,
                                      "paths": [target.stdlib, target.site_packages[0],
                                                target.prefix]}
    assert outcome.code == 0 and outcome.error is None and outcome.not_run == []
    assert [s["command"] for s in outcome.steps] == ["security-upgrade", "prune", "compile"]
    assert "pyimgtools finalize:" not in stdout.getvalue()
    finalize.report(outcome, out)
    assert stdout.getvalue().splitlines()[-1].startswith("pyimgtools finalize: prune did")
