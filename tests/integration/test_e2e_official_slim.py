"""The official python slim recipes, finished upstream's way and pyimgtools' way
(examples/official-slim/), proved by CPython's own regression tests: python:3.11-slim
on bookworm and python:3.13-slim-trixie, each as its docker-library/python
Dockerfile has it.

Each recipe's finishes start FROM one cached image of its build Dockerfile
(CPython compiled once, build dependencies still installed, no `ldconfig` after
`make install`: upstream runs it among the cleanup lines that the pyimgtools
finish replaces). The CPython tests of the modules that need kept libraries run
three times: before the purge (that cached image), and after the purge in each
flavour (`--target purged`, before the prune deletes the `test` package).
Expected values come from the upstream image and from the tools (`apt list
--upgradable`, `du`, `python -v`, `ldd` + `dpkg-query`, the ELF magic,
docker-library/official-images' own checks), never from pyimgtools' output.

Cost per recipe: cold about 15 min for bookworm and 20 for trixie (the CPython
build, the upstream images and three regression-test runs; all but the
pyimgtools side are cached); warm about 6 min (the pyimgtools images depend on
this checkout's code).
"""

import os

import pytest

from tests.harness.prereq import require_root, require_tools
from tests.harness import e2e

pytestmark = [pytest.mark.main_only]

# Tests that pass before the purge and not after it, each with the build tool
# whose removal explains it (also listed in docs/official-slim.md). Upstream's
# purge breaks the same ones (test_tests_broken_by_the_upstream_purge_are_explained).
_CTYPES_FIND = {
    "test_find_on_libpath": "compiles a shared library with gcc; skipped once gcc is purged",
    "test_find_library_with_gcc":
        "find_library('c') with ldconfig disabled falls back to `gcc -Wl,-t`: gcc is purged",
    "test_find_library_with_ld":
        "find_library('c') with ldconfig and gcc disabled falls back to `ld -t`: binutils is purged",
}
EXPLAINED_BY_PURGE = {
    # 3.11 runs ctypes' tests as ctypes.test, 3.12+ as test.test_ctypes
    "bookworm": {"ctypes.test.test_find.FindLibraryLinux." + k: v for k, v in _CTYPES_FIND.items()},
    "trixie": dict({"test.test_ctypes.test_find.FindLibraryLinux." + k: v
                    for k, v in _CTYPES_FIND.items()},
                   **{"test.test_ctypes.test_dlerror.TestNullDlsym.test_null_dlsym":
                      "compiles a shared library with gcc; skipped once gcc is purged"}),
}

SELECTED_MODULES = ("test.test_ssl.", "test.test_sqlite3.", "test.test_lzma.",
                    "test.test_bz2.", "test.test_zlib.", "test.test_hashlib.",
                    "test.test_readline.", "test.test_dbm.", "test.test_dbm_gnu.",
                    "test.test_uuid.", "test.test_decimal.", "test.test_zoneinfo.")
CTYPES_MODULE = {"bookworm": "ctypes.test.", "trixie": "test.test_ctypes."}


@pytest.fixture(scope="module", params=sorted(e2e.RECIPES))
def recipe(request):
    return e2e.RECIPES[request.param]


@pytest.fixture(scope="module")
def upstream(recipe):
    """The cached images: the build Dockerfile, and the upstream finish (purged, final)."""
    require_root()
    require_tools("buildah", "debootstrap")
    built = e2e.built_image(recipe)
    purged, final = e2e.upstream_images(recipe, built)
    return {"built": built, "upstream_purged": purged, "upstream": final,
            "built_facts": e2e.built_facts(built)}


@pytest.fixture(scope="module")
def finish_builder(recipe):
    from tests.harness.buildah import Builder
    b = Builder()
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def pyimgtools_purged(recipe, upstream, finish_builder, pyz):
    """Dockerfile.pyimgtools' `purged` stage, built from this checkout (removed afterwards).
    A build that fails fails every test that needs it, with buildah's log."""
    image, log = e2e.build_finish(finish_builder, recipe, "pyimgtools", upstream["built"], pyz=pyz,
                                  target="purged")
    return image, log


@pytest.fixture(scope="module")
def pyimgtools_final(recipe, upstream, finish_builder, pyz, pyimgtools_purged):
    # the last stage on that image (buildah would build `purged` again)
    return e2e.build_finish(finish_builder, recipe, "pyimgtools", upstream["built"], pyz=pyz,
                            from_purged=pyimgtools_purged[0])


@pytest.fixture(scope="module")
def cpython_results(recipe, upstream):
    return {"before": e2e.cached_cpython_tests(recipe, upstream["built"]),
            "upstream": e2e.cached_cpython_tests(recipe, upstream["upstream_purged"])}


@pytest.fixture(scope="module")
def cpython_results_pyimgtools(recipe, pyimgtools_purged, cpython_results):
    image = pyimgtools_purged[0]
    results, code, log = e2e.cpython_tests(recipe, image)
    expected = (e2e.passed(cpython_results["upstream"][0])
                | e2e.passed(cpython_results["before"][0])) - set(EXPLAINED_BY_PURGE[recipe.suite])
    missing = expected - e2e.passed(results)
    if missing:
        # One more run of those test modules, so that a test that fails once in
        # a while (a timing-sensitive test on a loaded machine) is not taken for
        # a library the purge removed; a real loss fails both runs.
        modules = sorted({e2e.cpython_test_module(name) for name in missing})
        again, _, log2 = e2e.cpython_tests(recipe, image, tests=modules)
        results = dict(results)
        results.update({name: "passed" for name in missing if again.get(name) == "passed"})
        log += "\n--- re-run of %s ---\n%s" % (" ".join(modules), log2)
    return results, code, log


@pytest.fixture(scope="module")
def upstream_facts(upstream):
    return e2e.facts(upstream["upstream"], with_dynload=True)


@pytest.fixture(scope="module")
def pyimgtools_facts(pyimgtools_final):
    return e2e.facts(pyimgtools_final[0], with_dynload=True)


@pytest.fixture(scope="module")
def facts(upstream_facts, pyimgtools_facts):
    return {"upstream": upstream_facts, "pyimgtools": pyimgtools_facts}


def test_the_pyimgtools_finish_builds_as_written(recipe, pyimgtools_purged, pyimgtools_final):
    # The user's Dockerfile, unchanged: no `ldconfig` before pyimgtools runs
    # (the build stage ran none after `make install`; issue 12 item 4).
    with open(os.path.join(e2e.EXAMPLE, recipe.files["pyimgtools"])) as f:
        assert "ldconfig" not in "".join(l for l in f if not l.lstrip().startswith("#"))
    assert "pyimgtools build-deps purge" in pyimgtools_purged[1]


def test_cpython_test_runs_are_real(recipe, cpython_results):
    # thousands of tests, every selected module represented (test_curses needs
    # the curses resource, -u none denies it)
    for key in ("before", "upstream"):
        results, _, log = cpython_results[key]
        names = e2e.passed(results)
        assert len(names) > 2000, log
        for module in SELECTED_MODULES + (CTYPES_MODULE[recipe.suite],):
            assert any(name.startswith(module) for name in names), (key, module)


def test_cpython_tests_that_pass_upstream_pass_with_pyimgtools(cpython_results,
                                                               cpython_results_pyimgtools):
    upstream = cpython_results["upstream"][0]
    mine, _, my_log = cpython_results_pyimgtools
    lost = sorted(e2e.passed(upstream) - e2e.passed(mine))
    assert not lost, "pass in the upstream image, not in the pyimgtools image:\n%s\n%s" % (
        "\n".join(lost[:50]), my_log[-3000:])


def _unexplained(recipe, before, after):
    broken = sorted(e2e.passed(before) - e2e.passed(after))
    return [t for t in broken if t not in EXPLAINED_BY_PURGE[recipe.suite]]


def test_tests_broken_by_the_upstream_purge_are_explained(recipe, cpython_results):
    before, after = cpython_results["before"][0], cpython_results["upstream"][0]
    assert _unexplained(recipe, before, after) == []
    # the explanations are not stale: each one is observed
    assert set(EXPLAINED_BY_PURGE[recipe.suite]) <= e2e.passed(before) - e2e.passed(after)


def test_tests_broken_by_the_pyimgtools_purge_are_explained(recipe, cpython_results,
                                                            cpython_results_pyimgtools):
    assert _unexplained(recipe, cpython_results["before"][0], cpython_results_pyimgtools[0]) == []


def test_test_directories_hold_no_elf_files(upstream):
    # The upstream finishes prune after the ldd scan instead of before it; this
    # is why that changes nothing the scan sees.
    with e2e.Session(upstream["upstream_purged"]) as s:
        assert e2e.elf_files_under(s, {"test", "tests", "idle_test"}) == []
        # control: the same probe finds the ELF files of lib-dynload
        assert len(e2e.elf_files_under(s, {"lib-dynload"})) > 40


def test_every_lib_dynload_extension_imports_after_the_purge(pyimgtools_purged, facts):
    with e2e.Session(pyimgtools_purged[0]) as s:
        assert e2e.dynload_import_failures(s) == []
    assert facts["pyimgtools"]["dynload_failures"] == []


def test_readline_library_kept_and_readline_imports(upstream, pyimgtools_purged, facts):
    # The package that owns the libreadline the readline module loads, found by
    # ldd and dpkg-query in the image before the purge (libreadline8 on
    # bookworm, libreadline8t64 on trixie, whose old /lib spelling is diverted;
    # issue 12 item 5), is still installed after pyimgtools' purge, and the
    # module imports, as a user and as the upstream image have it.
    package = upstream["built_facts"]["readline_package"]
    installed = {k: {p.split(":")[0] for p in f["packages"]} for k, f in facts.items()}  # no :arch
    assert package in installed["upstream"]  # control: upstream keeps it
    assert package in installed["pyimgtools"], (package, upstream["built_facts"])
    with e2e.Session(pyimgtools_purged[0]) as s:
        proc = s.run("python3 -c 'import readline' 2>&1", check=False)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("name", sorted(e2e.OFFICIAL_IMAGE_TESTS))
@pytest.mark.parametrize("flavour", ["upstream", "pyimgtools"])
def test_official_images_checks_pass(recipe, request, flavour, name):
    code, output = request.getfixturevalue(flavour + "_facts")["official_tests"][name]
    assert code == 0, output


def test_official_images_no_pyc_check_fails_only_for_the_compiled_image(facts):
    # python-no-pyc wants no bytecode under /usr/local: upstream's image passes
    # it; the pyimgtools image ships the compiled stdlib, so it fails by design.
    up_code, up_out = facts["upstream"]["official_tests"]["python-no-pyc"]
    assert up_code == 0, up_out
    my_code, my_out = facts["pyimgtools"]["official_tests"]["python-no-pyc"]
    assert my_code != 0 and ".pyc" in my_out


def test_size_at_most_upstream_plus_the_added_bytecode(facts):
    up, mine = facts["upstream"], facts["pyimgtools"]
    assert mine["pyc_bytes"] > 10 * 2 ** 20  # the stdlib really is compiled
    added = mine["pyc_bytes"] - up["pyc_bytes"] + mine["tool_bytes"] - up["tool_bytes"]
    # Security updates the upstream image lacks may grow a package: allow what
    # the upgraded packages declare (Installed-Size) beyond their old versions.
    upgraded = 0
    for name, (version, kib) in mine["versions"].items():
        old_version, old_kib = up["versions"].get(name, (version, kib))
        if old_version != version:
            upgraded += max(0, kib - old_kib) * 1024
    assert mine["size"] <= up["size"] + added + upgraded, (mine["size"], up["size"], added,
                                                           upgraded)


def test_no_pending_security_updates(facts):
    assert facts["pyimgtools"]["pending_security"] == []


def test_nonroot_start_compiles_nothing(recipe, facts, record_property):
    assert facts["pyimgtools"]["compiled_nonroot"] == []
    # control: the upstream image has no bytecode, its non-root start compiles
    assert facts["upstream"]["compiled_nonroot"]
    # recorded, not asserted: timings on a shared machine are noise
    for flavour in ("upstream", "pyimgtools"):
        for who in ("nonroot", "root"):
            t = facts[flavour]["startup_" + who]
            record_property("startup_%s_%s_%s" % (recipe.suite, who, flavour), t)
            print("%s: start-up as %s, %s: median %.1f ms" % (recipe.suite, who, flavour,
                                                               t * 1000))


def test_kept_packages_cover_upstreams(upstream, facts):
    # Every package upstream's ldd pipeline keeps for /usr/local must be kept by
    # pyimgtools too.
    saved = set(upstream["built_facts"]["manual"])
    kept_up = set(facts["upstream"]["manual"]) - saved
    kept_mine = set(facts["pyimgtools"]["manual"]) - saved
    assert kept_up, "the upstream pipeline kept nothing: the comparison would be empty"
    assert kept_up - kept_mine == set(), sorted(kept_up - kept_mine)
    # and every package upstream's image has installed, the pyimgtools image has
    assert set(facts["upstream"]["packages"]) - set(facts["pyimgtools"]["packages"]) == set()
