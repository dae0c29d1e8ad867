"""The CLI frame: exit-code contract, one-line errors, help, version."""

import pytest

from pyimgtools import __version__, cli, commands
from pyimgtools.commandnames import COMMANDS, adapter_module
from tests.conftest import run_cli

# Each command's library module (its adapter is adapter_module(name)).
LIBRARY = {"compile": "pyimgtools.compile", "prune": "pyimgtools.prune", "keep": "pyimgtools.keep",
           "build-deps": "pyimgtools.builddeps", "security-upgrade": "pyimgtools.security",
           "finalize": "pyimgtools.finalize", "audit": "pyimgtools.audit"}


def test_every_command_has_an_adapter_and_a_library_module():
    assert sorted(LIBRARY) == sorted(COMMANDS)
    for name in COMMANDS:
        adapter = __import__(adapter_module(name), fromlist=["register"])
        assert callable(adapter.register)


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "pyimgtools " + __version__


def test_help_lists_every_registered_command_and_examples():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert "\n    %s " % name in proc.stdout or "\n    %s\n" % name in proc.stdout
    assert "examples:" in proc.stdout
    assert "100" in proc.stdout  # the exit codes are documented in --help


def test_unknown_command_is_a_usage_error():
    proc = run_cli("no-such-command")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_command_is_a_usage_error():
    proc = run_cli()
    assert proc.returncode == 2


@pytest.mark.parametrize("command", COMMANDS)
def test_nonexistent_root_is_one_line_error(command):
    command = "build-deps purge" if command == "build-deps" else command
    proc = run_cli(*command.split(), "--root", "/nonexistent/pyimgtools-root", "--help")
    assert proc.returncode == 0  # --help wins over everything
    proc = run_cli(*command.split(), "--root", "/nonexistent/pyimgtools-root")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyimgtools: error: --root /nonexistent/pyimgtools-root")
    assert "Traceback" not in proc.stderr


def test_only_the_chosen_command_module_is_imported():
    code = ("import sys\nfrom pyimgtools import cli\n"
            "try:\n    cli.main(['prune', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('pyimgtools.'))))")
    import subprocess, sys
    from tests.conftest import REPO
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    loaded = set(proc.stdout.split())
    assert {"pyimgtools.prune", "pyimgtools.commands.prune"} <= loaded
    others = {m for name in COMMANDS if name != "prune" for m in (adapter_module(name), LIBRARY[name])}
    assert not loaded & others


def test_version_imports_no_command_module():
    # `pyimgtools --version` runs in RUN lines: its start-up is the parser alone.
    code = ("import sys\nfrom pyimgtools import cli\n"
            "try:\n    cli.main(['-q', '--version'])\nexcept SystemExit as exc:\n"
            "    print('exit', exc.code)\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('pyimgtools.'))))")
    import subprocess, sys
    from tests.conftest import REPO
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    lines = proc.stdout.splitlines()
    assert lines[0] == "pyimgtools " + __version__ and lines[1] == "exit 0"
    loaded = set(lines[2].split())
    assert not loaded & {m for name in COMMANDS for m in (adapter_module(name), LIBRARY[name])}


@pytest.mark.parametrize("argv, first", [
    (["--version"], True), (["-q", "--root", "/x", "--version"], True),
    (["--root", "--version"], False), (["prune", "--version"], False),
    (["-h", "--version"], False), (["--", "--version"], False), ([], False)])
def test_version_first(argv, first):
    assert cli.version_first(argv) is first


def test_chosen_command():
    assert cli.chosen_command(["--root", "prune", "keep", "-v"]) == "keep"
    assert cli.chosen_command(["-q", "audit"]) == "audit"
    assert cli.chosen_command(["--help", "audit"]) is None
    assert cli.chosen_command(["nope"]) is None
    assert cli.chosen_command([]) is None


def test_main_turns_expected_and_unexpected_errors_into_one_line(capsys, monkeypatch):
    from pyimgtools.errors import PyimgtoolsError

    def boom(args, out, root):
        raise PyimgtoolsError("something the user can fix", exit_code=100)

    def bug(args, out, root):
        raise ZeroDivisionError("division by zero")

    def oserr(args, out, root):
        raise PermissionError(13, "Permission denied", "/etc/shadow")

    for func, code, text in ((boom, 100, "something the user can fix"),
                             (bug, 1, "internal error: ZeroDivisionError"),
                             (oserr, 1, "Permission denied (/etc/shadow)")):
        monkeypatch.setattr(cli, "build_parser", lambda only=None, f=func: _with_command(REAL_BUILD_PARSER(), f))
        assert cli.main(["fake"]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pyimgtools: error: ") and text in err
        # -v adds the traceback
        assert cli.main(["fake", "-v"]) == code
        assert "Traceback" in capsys.readouterr().err


REAL_BUILD_PARSER = cli.build_parser


def _with_command(parser, func):
    sub = parser._subparsers._group_actions[0] if parser._subparsers else parser.add_subparsers(dest="command")
    fake = sub.add_parser("fake", parents=[commands.common_parent()])
    fake.set_defaults(run=func)
    return parser


def test_common_options_before_or_after_the_command(monkeypatch):
    seen = {}

    def record(args, out, root):
        seen.update(json=args.json, quiet=args.quiet, root=root.path)
        return 0

    monkeypatch.setattr(cli, "build_parser", lambda only=None: _with_command(REAL_BUILD_PARSER(), record))
    assert cli.main(["--json", "fake", "--root", "/tmp"]) == 0
    assert seen == {"json": True, "quiet": False, "root": "/tmp"}
    assert cli.main(["-q", "fake"]) == 0
    assert seen["quiet"] is True and seen["json"] is False
