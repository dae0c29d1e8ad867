"""scripts/bench apps: the app images of examples/app/, before and after `pyimgtools finalize`.

For each flow (pip into the system site-packages, a venv on PATH, a uv venv) on
bookworm, builds the Dockerfile as written ("after") and the same with its
`pyimgtools finalize` line taken out ("before"), and prints what a user
notices: flattened size, the app's non-root start-up (`python -m webapp
--check`, median in the container, after one warm-up run) and how many modules
that start compiles (`python -v`). Root, buildah and the test harness
(`.venv/bin/python scripts/bench apps` when the system python3 has no pytest).
The timed variants are one `buildah run` of that start per image.
"""

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from _frame import REPO, Variant

DESCRIPTION = "app images (examples/app): before and after pyimgtools finalize, non-root start"
FLOWS = ("system", "venv", "uv")
SUITE = "bookworm"
RUNS_IN_CONTAINER = 10
NOBODY = 65534
_TIMER = r"""
import statistics, subprocess, sys, time
argv = [sys.executable, "-m", "webapp", "--check"]
subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
t = []
for _ in range(%d):
    s = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    t.append(time.perf_counter() - s)
print(statistics.median(t))
""" % RUNS_IN_CONTAINER
_FINALIZE = re.compile(r";\s*\\\n\s*pyimgtools finalize[^\n]*")


def without_finalize(dockerfile_text):
    """The Dockerfile with its `pyimgtools finalize` step taken out (the "before")."""
    text, n = _FINALIZE.subn("", dockerfile_text)
    assert n == 1, "expected one '; pyimgtools finalize' line"
    return text


def measure(work):
    sys.path.insert(0, REPO)
    from tests.harness import startup
    from tests.harness.buildah import Builder
    from tests.harness.appimage import app_base, app_context

    builder = Builder()
    atexit.register(builder.cleanup)
    pyz = os.path.join(work, "pyimgtools.pyz")
    subprocess.run([os.path.join(REPO, "scripts", "build-pyz"), pyz], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHON=sys.executable))
    base = app_base(SUITE)
    images, rows = {}, [("", "size before", "size after", "non-root start before",
                         "after", "compiled at start before", "after")]
    for flow in FLOWS:
        ctx = app_context(os.path.join(work, "ctx-" + flow), SUITE, pyz)
        name = "Dockerfile." + flow
        with open(os.path.join(ctx, name)) as f:
            text = f.read()
        with open(os.path.join(ctx, name + ".before"), "w") as f:
            f.write(without_finalize(text))
        started = time.time()
        found = {}
        for key, df in (("before", name + ".before"), ("after", name)):
            image = builder.build(ctx, df, suite=SUITE, base=base)
            images[(flow, key)] = image
            # Non-root first: a root run would write .pyc files into the "before" image.
            seconds = float(builder.run(image, "cd /app && exec python3 -c %s"
                                        % shlex.quote(_TIMER), user=NOBODY).stdout.split()[-1])
            err = builder.run(image, "cd /app && exec python3 -v -m webapp --check",
                              user=NOBODY).stderr
            found[key] = (builder.size(image), seconds, len(startup.code_objects(err)[1]))
        shutil.rmtree(ctx, ignore_errors=True)
        b, a = found["before"], found["after"]
        rows.append((flow, "%.1f MiB" % (b[0] / 1048576.0), "%.1f MiB" % (a[0] / 1048576.0),
                     "%.0f ms" % (b[1] * 1000), "%.0f ms" % (a[1] * 1000), b[2], a[2]))
        print("%s: built and measured in %.0f s" % (flow, time.time() - started), flush=True)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    print()
    print("#### examples/app on %s, measured %s (%d CPUs); start: python -m webapp --check, "
          "median of %d" % (SUITE, time.strftime("%Y-%m-%d"), os.cpu_count(), RUNS_IN_CONTAINER))
    print()
    for i, r in enumerate(rows):
        print("| " + " | ".join(str(c).ljust(widths[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            print("| " + " | ".join("-" * w for w in widths) + " |")
    print(json.dumps({"rows": rows}), file=sys.stderr)
    sys.stdout.flush()
    return builder, images


def variants(work):
    builder, images = measure(work)
    from tests.harness.buildah import STORAGE, buildah
    containers = {}
    for key, image in images.items():
        containers[key] = buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
    atexit.register(lambda: [buildah("rm", c, check=False) for c in containers.values()])

    def cmd(key):
        return lambda run_dir: (["buildah"] + STORAGE + [
            "run", "--isolation", "chroot", "--user", str(NOBODY), "--workingdir", "/app",
            containers[key], "--", "python3", "-m", "webapp", "--check"])

    return [Variant("%s %s: buildah run, non-root start" % key, cmd(key))
            for key in sorted(images, key=lambda k: (FLOWS.index(k[0]), k[1] != "before"))]
