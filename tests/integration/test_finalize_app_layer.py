"""`finalize` on the app layer, in a Debian chroot: pip into the system
site-packages, a venv on PATH, a uv venv; and the finalize line of the demo.

The rule: after `pyimgtools finalize`, a non-root start of the app compiles
nothing, and no tree has fewer usable .pyc files than before. Evidence from
outside pyimgtools: `python -v` run as a non-root user (tests/harness/startup.py)
and, for the count, importlib's own cache_from_source and MAGIC_NUMBER run by
the image's python3. (Issue 13, items 1 and 3: on 2d3a8ce the demo's line left
the venv's site-packages without bytecode and the default finalize deleted pip's
bytecode in /usr/local.)
"""

import json
import os
import re
import shutil

import pytest

from tests.harness import startup
from tests.harness.wheelhouse import wheelhouse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534
APP_DEPS = "requests flask numpy"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV_PATH = "/opt/venv/bin:" + PATH

# Run by the image's python3: for every .py under the given trees, whether the
# importer finds a .pyc of this interpreter for it (right place, right magic).
USABLE = r"""
import importlib.util as u, os, sys
ok = 0
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                src = os.path.join(d, f)
                try:
                    with open(u.cache_from_source(src), "rb") as fh:
                        good = fh.read(4) == u.MAGIC_NUMBER
                except OSError:
                    good = False
                if good:
                    ok += 1
                    print(src)
"""

# How each flow installs the app's dependencies (in the chroot, offline).
INSTALL = {
    "system": "set -- /tmp/wheels/pip-*.whl && python3 \"$1/pip\" install -q --break-system-packages "
              "--no-index --find-links /tmp/wheels " + APP_DEPS,
    "venv": "python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-index "
            "--find-links /tmp/wheels " + APP_DEPS,
    "uv": "mkdir /tmp/uv && python3 -m zipfile -e /tmp/wheels/uv-*.whl /tmp/uv "
          "&& chmod +x /tmp/uv/uv-*.data/scripts/uv "
          "&& UV_CACHE_DIR=/tmp/uvcache /tmp/uv/uv-*.data/scripts/uv -q venv /opt/venv "
          "--python /usr/bin/python3 "
          "&& UV_CACHE_DIR=/tmp/uvcache /tmp/uv/uv-*.data/scripts/uv -q pip install "
          "--python /opt/venv/bin/python --offline --no-index --find-links /tmp/wheels "
          + APP_DEPS + " && rm -rf /tmp/uv /tmp/uvcache",
}
SITE = {"system": "/usr/local/lib/python3*/dist-packages", "venv": "/opt/venv/lib/python3*/site-packages",
        "uv": "/opt/venv/lib/python3*/site-packages"}


def demo_finalize_args():
    """The options of the `pyimgtools finalize` line of examples/demo/Dockerfile."""
    with open(os.path.join(REPO, "examples", "demo", "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"pyimgtools finalize([^;&\n]*)", text)
    assert m, "examples/demo/Dockerfile has no pyimgtools finalize line"
    return m.group(1).split()


@pytest.fixture
def app_chroot(chroot_factory, pyz):
    """make(suite, flow) -> a chroot with python3, pyimgtools and the app's
    dependencies installed the flow's way."""
    def make(suite, flow):
        wheels = wheelhouse(suite)
        c = chroot_factory(suite, ("python3", "python3-venv"))
        shutil.copytree(wheels, c.host("/tmp/wheels"))
        shutil.copy(pyz, c.host("/usr/local/bin/pyimgtools"))
        c.run(INSTALL[flow])
        c.run("rm -rf /tmp/wheels")
        return c

    return make


def usable(c, trees, path=PATH):
    proc = c.run(["sh", "-c", 'exec python3 -c "$0" ' + trees, USABLE], env={"PATH": path})
    return set(proc.stdout.split())


def nonroot_start(c, path):
    """(modules imported, compiled from source) when nobody imports every top-level module."""
    names = c.run(["python3", "-c", startup.LIST_TOP_LEVEL], user=NOBODY,
                  env={"PATH": path}).stdout.split()
    assert names, "no installed top-level modules found"
    compiled = []
    for name in names:
        proc = c.run(startup.import_command("python3", name), user=NOBODY, env={"PATH": path})
        used, fresh = startup.code_objects(proc.stderr)
        assert used, "python -v printed no code objects: the evidence is not real"
        compiled += fresh
    return names, compiled


def _finalize(c, args, path):
    return c.run(["pyimgtools", "finalize", "--no-security-upgrade"] + list(args), env={"PATH": path})


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
@pytest.mark.parametrize("flow", ["system", "venv", "uv"])
def test_default_finalize_leaves_nothing_to_compile_at_a_nonroot_start(app_chroot, suite, flow):
    c = app_chroot(suite, flow)
    path = PATH if flow == "system" else VENV_PATH
    before = usable(c, SITE[flow], path)
    _finalize(c, [], path)
    after = usable(c, SITE[flow], path)
    lost = sorted(p for p in before - after if os.path.exists(c.host(p)))
    assert not lost, "finalize left %d sources without their .pyc: %s" % (len(lost), lost[:5])
    names, compiled = nonroot_start(c, path)
    assert "numpy" in names and "requests" in names and "flask" in names
    assert compiled == [], "a non-root start compiled %d modules: %s" % (len(compiled), compiled[:5])


def test_the_demos_finalize_line_leaves_nothing_to_compile(app_chroot):
    c = app_chroot("bookworm", "venv")
    _finalize(c, demo_finalize_args(), VENV_PATH)
    _, compiled = nonroot_start(c, VENV_PATH)
    assert compiled == [], "a non-root start compiled %d modules: %s" % (len(compiled), compiled[:5])


def test_app_code_is_compiled_with_compile_path(app_chroot):
    c = app_chroot("bookworm", "system")
    os.makedirs(c.host("/app/web"))
    with open(c.host("/app/web/__init__.py"), "w") as f:
        f.write("import flask\nAPP = flask.Flask(__name__)\n")
    with open(c.host("/app/main.py"), "w") as f:
        f.write("import web\nprint(web.APP.name)\n")
    _finalize(c, ["--compile-path", "/app"], PATH)
    proc = c.run(["sh", "-c", "cd /app && exec python3 -v -c 'import main'"], user=NOBODY)
    used, compiled = startup.code_objects(proc.stderr)
    assert "/app/web/__pycache__" in " ".join(used)
    assert compiled == [], compiled[:5]


def test_audit_reports_a_venv_that_lost_its_bytecode(app_chroot):
    c = app_chroot("bookworm", "venv")
    c.run("find /opt/venv/lib -name __pycache__ -prune -exec rm -rf {} +")
    count = int(c.run("find /opt/venv/lib/python3*/site-packages -name '*.py' "
                      "-not -path '*/test/*' -not -path '*/tests/*' | wc -l").stdout)
    audit = ["pyimgtools", "audit", "--json", "--fail-on", "warn"]
    env = {"PATH": VENV_PATH, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = c.run(audit, check=False, env=env)
    assert proc.returncode == 100, proc.stderr[-2000:]
    found = {f["id"]: f for f in json.loads(proc.stdout)["findings"]}
    missing = found["site-missing-pyc"]
    assert missing["data"]["modules"] == count > 100
    assert missing["severity"] == "warn"
    assert "per non-root start" in missing["evidence"][0]
    _finalize(c, [], VENV_PATH)
    after = json.loads(c.run(audit, check=False, env=env).stdout)["findings"]
    assert [f["id"] for f in after if f["id"].startswith(("site-", "stdlib-", "pyc-"))] == []


def test_finalize_from_outside_with_root_and_a_venv_python(app_chroot):
    # The image's own interpreter named by its in-image path (run by the image's
    # loader): the venv's trees, mapped back into the image.
    from tests.conftest import run_cli
    c = app_chroot("bookworm", "uv")
    proc = run_cli("finalize", "--root", c.path, "--python", "/opt/venv/bin/python3",
                   "--no-security-upgrade", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    target = json.loads(proc.stdout)["target"]
    assert target["venv"] is True and target["pruned"] == ["/opt/venv"]
    assert target["site_packages"][0].startswith("/opt/venv/lib/python3")
    _, compiled = nonroot_start(c, VENV_PATH)
    assert compiled == [], compiled[:5]
