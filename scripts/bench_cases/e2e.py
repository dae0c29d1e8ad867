"""scripts/bench e2e: the official python slim recipes (python:3.11-slim on bookworm,
python:3.13-slim-trixie), upstream's finish vs pyimgtools'.

PYIMGTOOLS_BENCH_E2E=trixie (or bookworm; comma-separated) limits it to those
recipes; the default is every recipe of tests/harness/e2e.py.

Builds examples/official-slim/ both ways (root, buildah, debootstrap; the
shared CPython build and the upstream images are cached under the test
cache), runs CPython's regression tests of the modules that need kept
libraries in both purged images, and prints side by side what a user notices
(the README's comparison table is this output). The timed variants after the
table are one `buildah run` of the start-up command as a non-root user in each
image: they include buildah's own overhead; the in-container medians are the
table's start-up rows.

Needs the test requirements (pytest) importable: run it as
`.venv/bin/python scripts/bench e2e` when the system python3 has no pytest.
"""

import os
import platform
import subprocess
import sys
import time

from _frame import REPO, Variant

DESCRIPTION = "official python slim recipes: upstream shell vs pyimgtools (examples/official-slim)"
RUNS_IN_CONTAINER = 15

_built = []  # images this case made (removed at exit)


def _mib(n):
    return "%.1f MiB" % (n / 1048576.0)


def _ms(s):
    return "%.0f ms" % (s * 1000)


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(str(c).ljust(widths[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def _suites(e2e):
    chosen = os.environ.get("PYIMGTOOLS_BENCH_E2E", "")
    names = [n for n in chosen.split(",") if n] or sorted(e2e.RECIPES)
    unknown = [n for n in names if n not in e2e.RECIPES]
    if unknown:
        raise SystemExit("bench e2e: no recipe %s (have %s)" % (", ".join(unknown),
                                                               ", ".join(sorted(e2e.RECIPES))))
    return names


def measure(work, recipe, pyz):
    from tests.harness import e2e

    class Images:
        images = _built

    started = time.time()
    print("%s: building CPython (cached after the first run), the upstream finish (cached), "
          "the pyimgtools finish ..." % recipe.suite, flush=True)
    built = e2e.built_image(recipe)
    up_purged, up_final = e2e.upstream_images(recipe, built)
    pi_purged, _ = e2e.build_finish(Images, recipe, "pyimgtools", built, pyz=pyz, target="purged")
    pi_final, _ = e2e.build_finish(Images, recipe, "pyimgtools", built, pyz=pyz,
                                   from_purged=pi_purged)
    print("built in %.0f s; running CPython's tests and measuring ..." % (time.time() - started),
          flush=True)
    before = e2e.cached_cpython_tests(recipe, built)[0]
    tests = {"upstream": e2e.cached_cpython_tests(recipe, up_purged)[0],
             "pyimgtools": e2e.cpython_tests(recipe, pi_purged)[0]}
    facts = {"upstream": e2e.facts(up_final, startup_runs=RUNS_IN_CONTAINER, with_dynload=True),
             "pyimgtools": e2e.facts(pi_final, startup_runs=RUNS_IN_CONTAINER, with_dynload=True)}
    saved = set(e2e.built_facts(built)["manual"])
    up, pi = facts["upstream"], facts["pyimgtools"]

    def tests_cell(results):
        counts = {}
        for status in results.values():
            counts[status] = counts.get(status, 0) + 1
        return "%d passed, %d failed, %d skipped" % (
            counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0),
            counts.get("skipped", 0))

    def official_cell(f):
        return ", ".join("%s %s" % (name[len("python-"):], "ok" if code == 0 else "FAILS")
                         for name, (code, _) in sorted(f["official_tests"].items()))

    lost = e2e.passed(tests["upstream"]) - e2e.passed(tests["pyimgtools"])
    broken = {k: sorted(e2e.passed(before) - e2e.passed(v)) for k, v in tests.items()}
    kept = {k: sorted(set(f["manual"]) - saved) for k, f in facts.items()}
    rows = [
        ("", "upstream recipe", "pyimgtools", "ratio"),
        ("flattened image size", _mib(up["size"]), _mib(pi["size"]),
         "%.3f" % (pi["size"] / float(up["size"]))),
        ("  of which .pyc files", _mib(up["pyc_bytes"]), _mib(pi["pyc_bytes"]), ""),
        ("  size without the .pyc files", _mib(up["size"] - up["pyc_bytes"]),
         _mib(pi["size"] - pi["pyc_bytes"]), ""),
        ("installed packages", len(up["packages"]), len(pi["packages"]), ""),
        ("packages kept for /usr/local", len(kept["upstream"]), len(kept["pyimgtools"]), ""),
        ("pending security updates", len(up["pending_security"]), len(pi["pending_security"]), ""),
        ("start-up as root, median of %d" % RUNS_IN_CONTAINER, _ms(up["startup_root"]),
         _ms(pi["startup_root"]), "%.2f" % (pi["startup_root"] / up["startup_root"])),
        ("start-up as non-root, median of %d" % RUNS_IN_CONTAINER, _ms(up["startup_nonroot"]),
         _ms(pi["startup_nonroot"]), "%.2f" % (pi["startup_nonroot"] / up["startup_nonroot"])),
        ("modules compiled at a non-root start", len(up["compiled_nonroot"]),
         len(pi["compiled_nonroot"]), ""),
        ("CPython tests after the purge", tests_cell(tests["upstream"]),
         tests_cell(tests["pyimgtools"]), ""),
        ("  passing upstream, not here", "", len(lost), ""),
        ("  passing before the purge, not after", len(broken["upstream"]),
         len(broken["pyimgtools"]), ""),
        ("lib-dynload modules that fail to import", len(up["dynload_failures"]),
         len(pi["dynload_failures"]), ""),
        ("official-images python-* checks", official_cell(up), official_cell(pi), ""),
    ]
    print()
    print("#### examples/official-slim: CPython %s, Debian %s, measured %s on %s "
          "(%d CPUs, %s)" % (recipe.version, recipe.suite, time.strftime("%Y-%m-%d"),
                             platform.node(), os.cpu_count(), platform.machine()))
    print()
    print(table(rows))
    print()
    print("start-up: `python3 -c \"%s\"` in the image, after one warm-up run; as root with "
          "PYTHONDONTWRITEBYTECODE=1 (a fresh container keeps nothing it writes)." % e2e.STARTUP_CODE)
    print("packages kept for /usr/local (manually marked after the purge, not before the build):")
    for k in ("upstream", "pyimgtools"):
        print("  %s: %s" % (k, " ".join(kept[k]) or "-"))
    print("CPython tests passing before the purge, not after: %s" % (
        ", ".join(t.rsplit(".", 1)[-1] for t in broken["pyimgtools"]) or "-"))
    if up["pending_security"]:
        print("pending security updates in the upstream image: %s" % ", ".join(
            l.split("/")[0] for l in up["pending_security"]))
    sys.stdout.flush()
    return up_final, pi_final


def variants(work):
    sys.path.insert(0, REPO)
    from tests.harness import e2e
    from tests.harness.buildah import STORAGE, buildah
    import atexit

    pyz = os.path.join(work, "pyimgtools.pyz")
    subprocess.run([os.path.join(REPO, "scripts", "build-pyz"), pyz], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHON=sys.executable))
    containers = {}

    def cleanup():
        for ctr in containers.values():
            buildah("rm", ctr, check=False)
        for name in _built:
            buildah("rmi", "-f", name, check=False)

    atexit.register(cleanup)
    out = []
    for suite in _suites(e2e):
        up_final, pi_final = measure(work, e2e.RECIPES[suite], pyz)
        for flavour, image in (("upstream", up_final), ("pyimgtools", pi_final)):
            key = "%s %s" % (suite, flavour)
            containers[key] = buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
            out.append(Variant("%s: buildah run, non-root start-up" % key,
                               _command(STORAGE, containers[key])))
    return out


def _command(storage, ctr):
    return lambda run_dir: (["buildah"] + storage + [
        "run", "--isolation", "chroot", "--user", "65534", ctr, "--",
        "python3", "-c", "import asyncio, json, email, http.client"])
