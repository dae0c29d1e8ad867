"""Real app images: examples/app/Dockerfile.{system,venv,uv} built with buildah on
bookworm and trixie, each finished by `RUN pyimgtools finalize --compile-path /app`
as the README shows it.

Dependencies (examples/app/requirements.txt): pillow (a manylinux wheel vendoring
libraries), requests and flask (many modules at start-up), psycopg2 (built from
source through `pyimgtools build-deps`, libpq5 kept). Evidence, from outside
pyimgtools: as a non-root user, `python3 -v` importing every installed top-level
module (importlib.metadata) and starting the app (`python -m webapp --check`, the
app's own check) shows no module compiled from source; `pyimgtools audit
--fail-on warn` in the image exits 0. Sizes are recorded (record_property), not
asserted; `scripts/bench apps` measures before/after.

Cost: one shared base per suite (python3 + ca-certificates, cached); each image
installs its build dependencies and security updates from Debian's archive.
"""

import json
import os
import shlex

import pytest

from tests.harness import startup
from tests.harness.appimage import app_base, app_context

NOBODY = 65534

pytestmark = pytest.mark.main_only


def build_app(builder, flow, suite, pyz, tmp_path):
    ctx = app_context(str(tmp_path / "context"), suite, pyz)
    return builder.build(ctx, "Dockerfile." + flow, suite=suite, base=app_base(suite))


def evidence(builder, image):
    """{what: (exit, stdout, compiled from source)} for a non-root start of each
    top-level module and of the app."""
    proc = builder.run(image, "cd /app && exec python3 -c %s -m webapp --check"
                       % shlex.quote(startup.EVIDENCE), user=NOBODY)
    runs = json.loads(proc.stdout)
    result = {}
    for what, (code, out, err) in runs.items():
        used, compiled = startup.code_objects(err)
        assert used, "%s: python -v printed no code objects: the evidence is not real" % what
        result[what] = (code, out, compiled)
    return result


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
@pytest.mark.parametrize("flow", ["system", "venv", "uv"])
def test_app_image_starts_without_compiling_and_audits_clean(builder, pyz, tmp_path, flow,
                                                             suite, record_property):
    image = build_app(builder, flow, suite, pyz, tmp_path)
    runs = evidence(builder, image)
    imports = sorted(w[len("import "):] for w in runs if w.startswith("import "))
    for want in ("PIL", "requests", "flask", "psycopg2", "charset_normalizer"):
        assert want in imports, (want, imports)
    failed = {w: r[1] for w, r in runs.items() if r[0] != 0}
    assert not failed, "imports or the app's check failed as non-root: %s" % sorted(failed)
    compiled = {w: r[2] for w, r in runs.items() if r[2]}
    assert not compiled, "a non-root start compiled modules: %s" % {
        w: c[:3] for w, c in compiled.items()}
    check = json.loads(runs["app"][1].strip().splitlines()[-1])
    assert check["ok"] is True and check["libpq"] > 0
    audit = builder.run(image, "pyimgtools audit --fail-on warn", check=False, user=0,
                        env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
    record_property("flattened_bytes", builder.size(image))
    record_property("modules_imported", len(imports))


def test_a_bind_mounted_pyz_leaves_no_trace(builder, pyz, tmp_path):
    ctx = app_context(str(tmp_path / "context"), "bookworm", pyz)
    image = builder.build(ctx, "Dockerfile.mount", suite="bookworm", base=app_base("bookworm"))
    with builder.mounted(image) as root:
        left = [p for p in ("usr/local/bin/pyimgtools", "tmp/wheels")
                if os.path.lexists(os.path.join(root, p))
                and (not os.path.isdir(os.path.join(root, p)) or os.listdir(os.path.join(root, p)))]
        venv_pycs = sum(1 for d, _, files in os.walk(os.path.join(root, "opt/venv"))
                        for f in files if f.endswith(".pyc"))
    assert left == [], "the bind-mounted files were left in the image: %s" % left
    assert venv_pycs > 0
    proc = builder.run(image, "python -v -c 'import requests'", user=NOBODY)
    used, compiled = startup.code_objects(proc.stderr)
    assert used and compiled == [], compiled[:5]
