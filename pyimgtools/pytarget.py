"""The target Python of a RUN step and the trees it owns.

The target is the interpreter the image's own commands run: `python3` found on
PATH (so `ENV PATH=/opt/venv/bin:$PATH` makes the venv the target), or the one
named with --python. Its trees, asked of the interpreter itself:

- the standard library (the base interpreter's, also for a venv);
- its site-packages: a venv's own (plus the base's when the venv includes the
  system site-packages), or the installation's `site-packages`/`dist-packages`;
- its prefix, which `finalize` prunes: the venv's directory, or the
  installation prefix (`/usr/local` for a Python built there). Debian's own
  Python (prefix `/usr`, files owned by dpkg) is never pruned: its prefix
  stands for `/usr/local`, where pip installs for it.

The probe runs the target with `-I -S` (no environment, no .pth files run)
and finds a venv the way site.py does, from `pyvenv.cfg` beside or above the
executable: before 3.14, `-S` leaves sys.prefix at the base interpreter's. The
probe's code is compile's worker (pyimgtools/pycompile_worker.py, target_info):
one venv probe for both commands.
"""

import dataclasses
import os
import subprocess
import sys
from typing import List

from pyimgtools.errors import TargetPythonError
from pyimgtools.workersource import worker_code, worker_source  # noqa: F401 - the probe's code


# Runs the worker's source from stdin (not __main__: its protocol loop stays off)
# and prints its target_info(VENV) as one JSON line.
_PROBE_BOOT = ("import sys; _g = {'__name__': 'pyimgtools_probe'}; "
               "exec(compile(sys.stdin.buffer.read(), 'pyimgtools-compile-worker', 'exec'), _g); "
               "_g['print_target_info'](sys.argv[1] if len(sys.argv) > 1 else None)")

# Prefixes whose files belong to the distribution's package manager.
DISTRIBUTION_PREFIXES = ("/usr",)


@dataclasses.dataclass
class PyTarget:
    """What the target interpreter says of itself (pycompile_worker.target_info)."""
    executable: str
    version: str
    prefix: str
    base_prefix: str
    venv: bool
    stdlib: str
    platstdlib: str
    site_packages: List[str]

    def prune_root(self):
        """The tree finalize prunes for this target."""
        if not self.venv and os.path.normpath(self.prefix) in DISTRIBUTION_PREFIXES:
            return "/usr/local"
        return self.prefix

    def describe(self):
        kind = "venv %s" % self.prefix if self.venv else "prefix %s" % self.prefix
        return "%s (Python %s, %s)" % (self.executable, self.version, kind)


def on_path(root, path_env=None, name="python3"):
    """The first executable `name` on PATH, not resolved (a venv's bin/python3 is
    a symlink to its base: resolving it would lose the venv). None if there is none."""
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    for directory in path_env.split(os.pathsep):
        if not directory.startswith("/"):
            continue  # a relative PATH entry depends on the working directory
        candidate = os.path.join(directory, name)
        host = candidate if root.is_host else root.host(candidate)
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return candidate
    return None


def choose(root, python=None, path_env=None):
    """The interpreter to target: --python, else python3 on PATH or the one running
    pyimgtools; with --root, the image's python3 (as `compile --root` finds it)."""
    if python:
        return python
    if not root.is_host:
        from pyimgtools import image_python
        return image_python.default_python(root)
    return on_path(root, path_env) or sys.executable


def probe(python, root=None):
    """Ask `python` about itself (PyTarget). Runs it with -I -S: no site, no .pth.

    With a non-host `root`, `python` is a path in the image, run by the image's
    own loader (pyimgtools.image_python); the paths it reports are mapped back
    into the image, and a venv is found from the in-image path."""
    if root is not None and not root.is_host:
        return _probe_in_image(python, root)
    return _run_probe([python], None, python)


def _run_probe(argv, env, python, venv=None):
    try:
        proc = subprocess.run(argv + ["-I", "-S", "-B", "-c", _PROBE_BOOT] + ([venv] if venv else []),
                              input=worker_source().encode("utf-8"),
                              capture_output=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetPythonError("--python %s: %s" % (python, getattr(exc, "strerror", None) or exc))
    import json  # here: only the probe reads JSON, and start-up counts in RUN lines
    try:
        doc = json.loads(proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise TargetPythonError("--python %s: cannot ask it about itself (exit %d: %s)"
                                % (python, proc.returncode, tail[-1] if tail else "no output"))
    return PyTarget(**{f.name: doc.get(f.name) for f in dataclasses.fields(PyTarget)})


def _probe_in_image(python, root):
    from pyimgtools import image_python
    launch = image_python.launch(root, python)
    # A venv's python runs through its resolved binary, so the probe is told the
    # venv (a host path: the image's pyvenv.cfg is read by the probe itself).
    target = _run_probe(launch.argv, launch.env, python, launch.venv)
    inside = lambda p: image_python.to_image(root, p)  # noqa: E731
    for name in ("prefix", "base_prefix", "stdlib", "platstdlib"):
        setattr(target, name, inside(getattr(target, name)))
    target.site_packages = [p for p in dict.fromkeys(inside(p) for p in target.site_packages) if p]
    target.executable = python
    return target
