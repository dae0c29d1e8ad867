"""Errors by layer: library modules raise their own LibraryError subclasses,
the CLI alone turns them into one line and an exit status."""

import ast
import os

import pytest

import pyimgtools
from pyimgtools import cli, errors
from pyimgtools.elf import ElfError
from pyimgtools.image import ImageError
from pyimgtools.ldcache import CacheError
from tests.conftest import run_cli

LIBRARY = ("apt", "dpkg", "elf", "fs", "ldcache", "loader", "mounts", "osrelease",
           "image_python", "pytarget", "treewalk", "debversion", "cpus")


@pytest.mark.parametrize("module", LIBRARY)
def test_library_modules_raise_no_command_error(module):
    path = os.path.join(os.path.dirname(pyimgtools.__file__), module + ".py")
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    raised = {n.exc.func.id for n in ast.walk(tree)
              if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)
              and isinstance(n.exc.func, ast.Name)}
    assert not raised & {"PyimgtoolsError", "UsageError", "SystemExit"}


def test_library_errors_share_one_base():
    for cls in (errors.RootError, errors.DpkgError, errors.AptError, errors.LdconfigError,
                errors.OsReleaseError, errors.TargetPythonError, ElfError, CacheError, ImageError):
        assert issubclass(cls, errors.LibraryError)


def test_cli_maps_errors_to_exit_statuses():
    assert cli.exit_status(errors.DpkgError("no dpkg database")) == 1
    assert cli.exit_status(ImageError("app.tar: not an image")) == 1
    assert cli.exit_status(errors.UsageError("bad")) == 2
    assert cli.exit_status(errors.RequestError("--python x: not in the image")) == 2
    assert cli.exit_status(errors.PyimgtoolsError("pending", errors.EXIT_WORK_FOUND)) == 100


def test_a_library_error_is_one_line_and_exit_1(tmp_path):
    proc = run_cli("--root", str(tmp_path / "missing"), "keep", "--print")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyimgtools: error: --root ")
    assert len(proc.stderr.strip().splitlines()) == 1
