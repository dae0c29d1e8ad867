"""The compile worker's importlib helpers are the bootstrap's own: the same
magic number, cache paths and source hash as importlib.util (the reference),
under every Python the suite runs on, without importing importlib.util (whose
import is ~5 ms of every worker's start, on the critical path of a warm run)."""

import importlib.util
import subprocess
import sys

import pytest

from pyimgtools import pycompile_worker as worker
from pyimgtools.workersource import worker_source


@pytest.mark.parametrize("data", [b"", b"x = 1\n", bytes(range(256)) * 40])
def test_source_hash_is_importlib_utils(data):
    assert worker.hash_of_source(data) == importlib.util.source_hash(data)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_magic_and_cache_path_are_importlib_utils(level):
    assert worker.MAGIC == importlib.util.MAGIC_NUMBER
    path = "/srv/app/pkg/mod.py"
    assert worker.pyc_path(path, level) == importlib.util.cache_from_source(
        path, optimization=level if level else "")


def test_the_worker_does_not_import_importlib_util():
    code = ("import sys\nexec(compile(sys.stdin.read(), 'pycompile_worker', 'exec'), {'__name__': 'w'})\n"
            "print('importlib.util' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=worker_source(),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _launch():
    from pyimgtools.image_python import Launch
    return Launch([sys.executable], None, sys.executable)


def test_a_worker_runs_the_code_object_when_its_magic_matches():
    """The boot runs the marshalled code, not the source, when the magic numbers
    match: given a source that cannot compile, the worker still answers."""
    from pyimgtools.compile import Worker
    from pyimgtools.workersource import worker_code

    worker = Worker(_launch(), "this is not python (\n", worker_code())
    try:
        reply = worker.call(("info", False, None))
    finally:
        worker.close()
    assert reply["magic"] == importlib.util.MAGIC_NUMBER


def test_a_worker_compiles_the_source_when_the_magic_differs():
    from pyimgtools.compile import Worker, WorkerError
    from pyimgtools.workersource import worker_code, worker_source

    _magic, marshalled = worker_code()
    other = bytes(4)  # no interpreter has this magic number
    worker = Worker(_launch(), worker_source(), (other, marshalled))
    try:
        assert worker.call(("info", False, None))["magic"] == importlib.util.MAGIC_NUMBER
    finally:
        worker.close()
    broken = Worker(_launch(), "this is not python (\n", (other, marshalled))
    try:
        with pytest.raises(WorkerError, match="SyntaxError"):
            broken.call(("info", False, None))
    finally:
        broken.close()


@pytest.mark.parametrize("path", [
    "/usr/lib/python3/os.py", "/a/b.c.py", "/a/.py", "/a/x.pyw", "/x.py", "rel/mod.py", "mod.py",
    "/a//b.py", "/a/b/__init__.py", "/a/b/py", "/a/é.py"])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_pyc_path_is_cache_from_source(path, level):
    assert worker.pyc_path(path, level) == importlib.util.cache_from_source(
        path, optimization=level if level else "")
