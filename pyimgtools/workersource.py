"""The code pyimgtools runs inside a target interpreter (pyimgtools/pycompile_worker.py):
its source, and the code object this interpreter's importer has for it.

Its own module so that `compile`, whose start-up every warm run pays, imports
neither pytarget's dataclasses (inspect, ~9 ms) nor anything else.
"""

import os


def worker_code():
    """(magic number, marshalled code object) of pyimgtools/pycompile_worker.py as
    this interpreter's importer has it: from its cached .pyc when that is up to
    date (pip compiles the package at install), else compiled from the source.
    A worker whose interpreter has the same magic number runs it instead of
    compiling the source itself; (b"", b"") when the importer cannot give it."""
    import marshal
    from importlib._bootstrap_external import MAGIC_NUMBER, PathFinder
    import pyimgtools
    name = "pyimgtools.pycompile_worker"
    try:
        spec = PathFinder.find_spec(name, list(pyimgtools.__path__))
        code = spec.loader.get_code(name)
    except Exception:  # noqa: BLE001 - any importer trouble: the worker compiles the source
        return b"", b""
    if code is None:
        return b"", b""
    return MAGIC_NUMBER, marshal.dumps(code)


def worker_source():
    """The source of pyimgtools/pycompile_worker.py, the code pyimgtools runs inside a
    target interpreter; read as package data through the package's loader, as
    pkgutil.get_data does (works from a zip too) without importing pkgutil."""
    import pyimgtools
    data = None
    loader = getattr(getattr(pyimgtools, "__spec__", None), "loader", None)
    try:
        data = loader.get_data(os.path.join(os.path.dirname(pyimgtools.__file__), "pycompile_worker.py"))
    except (AttributeError, OSError):
        data = None
    if not data:
        import inspect
        from pyimgtools import pycompile_worker
        return inspect.getsource(pycompile_worker)
    return data.decode("utf-8")
