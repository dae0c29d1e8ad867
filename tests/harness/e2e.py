"""Building and measuring the official-slim images of examples/official-slim/.

The functions shared by tests/integration/test_e2e_official_slim.py and
scripts/bench_cases/e2e.py (`scripts/bench e2e`). The facts of an image come from
the image itself, independent of pyimgtools: du, dpkg-query (tests/harness/dpkgquery.py),
ldd (tests/harness/ldd.py), apt-mark, `python -v`, the ELF magic
(tests/harness/elfwalk.py) and the official images' own tests.

The CPython source comes from Debian's source archive (its .orig.tar.gz of
python3.11 is python.org's Python-3.11.2.tgz, same SHA-256), fetched on the host
with apt and a private deb-src list, cached under the test cache. The shared
build stage (Dockerfile.build: build dependencies + `make install`, no
--enable-optimizations) is built once and kept in buildah's storage
(`cached_image`); the upstream finish and the CPython test results of the
images that do not depend on this checkout's code are cached as well.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
import xml.etree.ElementTree as ET

from tests.harness import dpkgquery, ldd
from tests.harness.buildah import buildah, cached_image
from tests.harness.elfwalk import elf_files
from tests.harness.prereq import CACHE_DIR
from tests.harness.rootfs import MIRROR, _locked

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "official-slim")
SRC_DIR = os.path.join(CACHE_DIR, "cpython-src")
STARTUP_CODE = "import asyncio, json, email, http.client"
NONROOT_UID = 65534  # nobody


# CPython's tests of the modules that need libraries kept from the build
# dependencies; names differ between versions, the ones present are run.
CPYTHON_TESTS = ("test_ssl", "test_sqlite3", "test_sqlite", "test_ctypes", "test_lzma", "test_bz2",
                 "test_zlib", "test_hashlib", "test_readline", "test_dbm", "test_dbm_gnu",
                 "test_dbm_ndbm", "test_dbm_dumb", "test_dbm_sqlite3", "test_uuid", "test_decimal",
                 "test_zoneinfo", "test_curses")

class Recipe:
    """One official-slim recipe of examples/official-slim/: its suite, Dockerfiles,
    build args of the tests, and the names of its cached images."""

    def __init__(self, suite, build, upstream, pyimgtools, build_args, tarball, orig, repo_tag):
        self.suite = suite
        self.files = {"build": build, "upstream": upstream, "pyimgtools": pyimgtools}
        self.build_args = build_args
        self.tarball = tarball  # name of python.org's tarball, {v} the version
        self.orig = orig  # name of Debian's .orig tarball, {m} the minor version
        self.built_repo = "localhost/pyimgtools-e2e%s-built" % repo_tag
        self.upstream_repo = "localhost/pyimgtools-e2e%s-upstream" % repo_tag
        self.upstream_purged_repo = "localhost/pyimgtools-e2e%s-upstream-purged" % repo_tag

    def __repr__(self):
        return "Recipe(%s)" % self.suite

    def _env(self, name):
        """ENV values of the build Dockerfile (PYTHON_VERSION, PYTHON_SHA256)."""
        with open(os.path.join(EXAMPLE, self.files["build"])) as f:
            m = re.search(r"^ENV %s (\S+)$" % name, f.read(), re.M)
        return m.group(1)

    @property
    def version(self):
        return self._env("PYTHON_VERSION")

    @property
    def minor(self):
        return ".".join(self.version.split(".")[:2])

    @property
    def sha256(self):
        return self._env("PYTHON_SHA256")

    @property
    def tarball_name(self):
        return self.tarball.format(v=self.version)


RECIPES = {
    # python:3.11-slim (bookworm): without PGO and LTO (the whole test suite
    # runs during a PGO build, about an hour on 2 CPUs)
    "bookworm": Recipe("bookworm", "Dockerfile.build", "Dockerfile.upstream",
                       "Dockerfile.pyimgtools", {"OPTIMIZATIONS": ""}, "Python-{v}.tgz",
                       "python{m}_{v}.orig.tar.gz", ""),
    # python:3.13-slim-trixie, the same way
    "trixie": Recipe("trixie", "Dockerfile.build-trixie", "Dockerfile.upstream-trixie",
                     "Dockerfile.pyimgtools", {"ENABLE_OPTIMIZATIONS": "", "WITH_LTO": ""},
                     "Python-{v}.tar.xz", "python{m}_{v}.orig.tar.xz", "-trixie"),
}


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cpython_source(recipe):
    """Host path of python.org's tarball, fetched from Debian's source archive of the
    recipe's suite (its .orig tarball is the same file: checked by SHA-256), cached."""
    version, want = recipe.version, recipe.sha256
    dest = os.path.join(SRC_DIR, recipe.tarball_name)
    with _locked(os.path.join(SRC_DIR, "fetch.lock")):
        if os.path.exists(dest) and _sha256(dest) == want:
            return dest
        work = tempfile.mkdtemp(prefix="apt-", dir=SRC_DIR)
        try:
            for sub in ("lists/partial", "cache/archives/partial"):
                os.makedirs(os.path.join(work, sub))
            sources = os.path.join(work, "sources.list")
            with open(sources, "w") as f:
                f.write("deb-src %s %s main\n" % (MIRROR, recipe.suite))
            opts = ["-o", "Dir::Etc::SourceList=" + sources, "-o", "Dir::Etc::SourceParts=/dev/null",
                    "-o", "Dir::State::Lists=" + os.path.join(work, "lists"),
                    "-o", "Dir::Cache=" + os.path.join(work, "cache"), "-o", "APT::Sandbox::User=root"]
            subprocess.run(["apt-get"] + opts + ["update", "-qq"], check=True, capture_output=True)
            uris = subprocess.run(["apt-get"] + opts + ["source", "--print-uris", "python" + recipe.minor],
                                  check=True, capture_output=True, text=True).stdout
            orig = recipe.orig.format(m=recipe.minor, v=version)
            for line in uris.splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[1] == orig:
                    url = parts[0].strip("'")
                    break
            else:
                raise RuntimeError("no %s in Debian's source archive:\n%s" % (orig, uris))
            part = dest + ".part"
            with urllib.request.urlopen(url, timeout=300) as resp, open(part, "wb") as out:
                shutil.copyfileobj(resp, out)
            got = _sha256(part)
            if got != want:
                raise RuntimeError("%s: sha256 %s, python.org's tarball has %s" % (url, got, want))
            os.replace(part, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return dest


def built_image(recipe):
    """The cached image of the build Dockerfile: CPython installed, build deps still there."""
    source = cpython_source(recipe)
    ctx = tempfile.mkdtemp(prefix="e2e-ctx-")
    try:
        shutil.copy(os.path.join(EXAMPLE, recipe.files["build"]), ctx)
        os.makedirs(os.path.join(ctx, "src"))
        return cached_image(recipe.built_repo, ctx, dockerfile=recipe.files["build"],
                            suite=recipe.suite, build_args=recipe.build_args,
                            extra_files={"src/" + recipe.tarball_name: source})
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def _finish_context(recipe, flavour, pyz=None):
    ctx = tempfile.mkdtemp(prefix="e2e-ctx-")
    shutil.copy(os.path.join(EXAMPLE, recipe.files[flavour]), ctx)
    if pyz:
        shutil.copy(pyz, os.path.join(ctx, "pyimgtools.pyz"))
    return ctx


def upstream_images(recipe, built):
    """(purged, final) images of the upstream finish, cached: they depend on no code here."""
    ctx = _finish_context(recipe, "upstream")
    dockerfile = recipe.files["upstream"]
    try:
        purged = cached_image(recipe.upstream_purged_repo, ctx, dockerfile=dockerfile,
                              build_args={"BUILT": built}, target="purged", from_base=False)
        final = cached_image(recipe.upstream_repo, ctx, dockerfile=dockerfile,
                             build_args={"BUILT": built}, from_base=False)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return purged, final


def final_stage(recipe, flavour, purged_image):
    """The finishing Dockerfile's last stage (`FROM purged` ...) rebased on an image of
    its `purged` stage: what buildah runs for that stage, without building `purged` twice."""
    name = recipe.files[flavour]
    with open(os.path.join(EXAMPLE, name)) as f:
        lines = f.read().splitlines(True)
    starts = [i for i, l in enumerate(lines) if re.match(r"FROM\s+purged\s*$", l)]
    assert len(starts) == 1, "%s: expected one 'FROM purged' stage" % name
    return "FROM %s\n" % purged_image + "".join(lines[starts[0] + 1:])


class BuildFailed(AssertionError):
    """A finishing Dockerfile did not build; the message ends with buildah's log."""


def build_finish(builder, recipe, flavour, built, pyz=None, target=None, from_purged=None):
    """Build the recipe's finishing Dockerfile FROM `built` with `builder` (its images
    are removed after the test). With `from_purged`, only the last stage, on that image."""
    ctx = _finish_context(recipe, flavour, pyz)
    name = "localhost/pyimgtools-test-%s" % uuid.uuid4().hex[:12]
    dockerfile = recipe.files[flavour]
    if from_purged:
        dockerfile = "Dockerfile.final"
        with open(os.path.join(ctx, dockerfile), "w") as f:
            f.write(final_stage(recipe, flavour, from_purged))
    args = ["bud", "--isolation", "chroot", "--layers=false", "-f", dockerfile,
            "-t", name, "--build-arg", "BUILT=" + built]
    if target:
        args += ["--target", target]
    try:
        builder.images.append(name)
        proc = buildah(*(args + [ctx]), check=False)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    if proc.returncode != 0:
        raise BuildFailed("%s (%s, target %s) did not build, buildah exited %d:\n%s\n%s"
                          % (recipe.files[flavour], recipe.suite, target or "last",
                             proc.returncode, proc.stdout[-5000:], proc.stderr[-3000:]))
    return name, proc.stdout


class Session:
    """One container of an image (kept in storage, not removed) for several commands.

    With vfs storage every container is a full copy of the image, so commands
    that may share a container share one. Use as a context manager; `path` is
    the container's file system, mounted on the host.
    """

    def __init__(self, image, copy=None):
        self.image = image
        self.copy = copy or {}
        self.ctr = None
        self.path = None

    def __enter__(self):
        self.ctr = buildah("from", "--pull-never", self.image).stdout.strip().splitlines()[-1]
        try:
            for dst, src in self.copy.items():
                buildah("copy", self.ctr, src, dst)
            self.path = buildah("mount", self.ctr).stdout.strip()
        except BaseException:
            buildah("rm", self.ctr, check=False)
            raise
        return self

    def __exit__(self, *exc):
        buildah("umount", self.ctr, check=False)
        buildah("rm", self.ctr, check=False)
        return False

    def run(self, cmd, user=None, check=True, env=None):
        args = ["run", "--isolation", "chroot"]
        if user is not None:
            args += ["--user", str(user)]
        for key, value in sorted((env or {}).items()):
            args += ["--env", "%s=%s" % (key, value)]
        return buildah(*(args + [self.ctr, "--", "sh", "-c", cmd]), check=check)


# --- CPython's own tests ------------------------------------------------------

_RUN_TESTS = r"""
cd /tmp
tests=""
lib=$(python3 -c 'import os, test; print(os.path.dirname(test.__file__))')
for extra in /tmp/extra-tests/*; do
  [ -e "$extra" ] && [ ! -e "$lib/${extra##*/}" ] && cp -r "$extra" "$lib/"
done
for t in %(tests)s; do
  if [ -e "$lib/$t.py" ] || [ -d "$lib/$t" ]; then tests="$tests $t"; fi
done
python3 -m test -u none -j 2 --timeout 900 --junit-xml /tmp/junit.xml $tests > /tmp/regrtest.log 2>&1
echo "regrtest-exit=$?"
echo "=====junit"
cat /tmp/junit.xml
echo "=====log"
tail -n 60 /tmp/regrtest.log
"""


def parse_junit(text):
    """{'test.test_x.Class.method': 'passed'|'failed'|'error'|'skipped'} from regrtest's junit XML."""
    results = {}
    root = ET.fromstring(text)
    for case in root.iter("testcase"):
        name = case.get("name", "")
        if "classname" in case.attrib and not name.startswith(case.get("classname") + "."):
            name = case.get("classname") + "." + name
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                break
        if results.get(name) in ("failed", "error"):
            continue  # a test reported twice keeps its worst result
        results[name] = status
    return results


# Test packages `make install` leaves out in some releases (3.11.2 does not
# install Lib/test/test_sqlite3): copied from the same source tarball into the
# throw-away test container, never into an image.
NOT_INSTALLED_TESTS = ("test_sqlite3",)


def extra_test_dirs(recipe):
    """{container path: host path} of NOT_INSTALLED_TESTS, extracted from the source tarball."""
    import tarfile
    tarball = cpython_source(recipe)
    dest = os.path.join(SRC_DIR, "extra-tests-" + recipe.version)
    if not os.path.isdir(dest):
        part = dest + ".part"
        shutil.rmtree(part, ignore_errors=True)
        os.makedirs(part)
        prefix = "Python-%s/Lib/test/" % recipe.version
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                rel = member.name[len(prefix):] if member.name.startswith(prefix) else ""
                if rel.split("/")[0] in NOT_INSTALLED_TESTS and (member.isfile() or member.isdir()):
                    member.name = rel
                    tar.extract(member, part)
        os.replace(part, dest)
    return {"/tmp/extra-tests/" + name: os.path.join(dest, name)
            for name in sorted(os.listdir(dest))}


def cpython_tests(recipe, image, tests=CPYTHON_TESTS):
    """Run the regression tests in a container of `image`: (results dict, exit code, log tail)."""
    with Session(image, copy=extra_test_dirs(recipe)) as s:
        proc = s.run(_RUN_TESTS % {"tests": " ".join(tests)}, check=False)
    out = proc.stdout
    if "=====junit" not in out:
        raise AssertionError("regression tests did not run:\n%s\n%s" % (out[-3000:], proc.stderr[-3000:]))
    head, rest = out.split("=====junit", 1)
    junit, log = rest.split("=====log", 1)
    code = int(re.search(r"regrtest-exit=(\d+)", head).group(1))
    return parse_junit(junit.strip()), code, log


def cached_cpython_tests(recipe, image):
    """cpython_tests() of an image whose id never changes its results: cached by image id."""
    image_id = buildah("images", "-q", "--no-trunc", image).stdout.strip()
    how = hashlib.sha256(repr((_RUN_TESTS, CPYTHON_TESTS, NOT_INSTALLED_TESTS)).encode())
    path = os.path.join(CACHE_DIR, "e2e-results", "cpython-tests-%s-%s.json"
                        % (image_id.replace(":", "-"), how.hexdigest()[:12]))
    try:
        with open(path) as f:
            doc = json.load(f)
        return doc["results"], doc["code"], doc["log"]
    except (OSError, ValueError, KeyError):
        pass
    results, code, log = cpython_tests(recipe, image)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "w") as f:
        json.dump({"results": results, "code": code, "log": log}, f)
    os.replace(path + ".part", path)
    return results, code, log


def passed(results):
    return {name for name, status in results.items() if status == "passed"}


def cpython_test_module(name):
    """'test.test_ssl.Class.method' -> 'test_ssl'; 'ctypes.test.x.C.m' -> 'test_ctypes'."""
    parts = name.split(".")
    if parts[0] == "test" and len(parts) > 1:
        return parts[1]
    if parts[:2] == ["ctypes", "test"]:
        return "test_ctypes"
    return parts[0]


_IMPORT_DYNLOAD = r"""
import importlib, os, sys, sysconfig
d = sysconfig.get_config_var("DESTSHARED")
bad = []
names = sorted(n.split(".")[0] for n in os.listdir(d) if n.endswith(".so"))
for n in names:
    if "tkinter" in n:
        continue
    try:
        importlib.import_module(n)
    except Exception as e:
        bad.append("%s: %s" % (n, e))
print("checked %d" % len(names))
for b in bad:
    print("FAILED " + b)
"""


def dynload_import_failures(session):
    proc = session.run(_python_c(_IMPORT_DYNLOAD), env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert re.search(r"^checked \d+", proc.stdout, re.M), proc.stdout
    return [l[len("FAILED "):] for l in proc.stdout.splitlines() if l.startswith("FAILED ")]


def elf_files_under(session, names):
    """ELF files (by magic) below directories of /usr/local called one of `names`."""
    found = []
    top = os.path.join(session.path, "usr/local")
    for dirpath, dirnames, _filenames in os.walk(top):
        if os.path.basename(dirpath) in names:
            found += [os.path.relpath(p, session.path) for p in elf_files(dirpath)]
            dirnames[:] = []
    return sorted(found)


# --- facts a user notices -----------------------------------------------------

_STARTUP = r"""
import statistics, subprocess, sys, time
argv = [sys.executable, "-c", %r]
subprocess.run(argv, check=True)
times = []
for _ in range(%d):
    t = time.perf_counter()
    subprocess.run(argv, check=True)
    times.append(time.perf_counter() - t)
print("median=%%.6f" %% statistics.median(times))
"""


def startup_median(session, user=None, runs=10, env=None):
    """Median wall time of `python3 -c STARTUP_CODE` (after one warm-up run) inside a container."""
    proc = session.run(_python_c(_STARTUP % (STARTUP_CODE, runs)), user=user, env=env)
    return float(re.search(r"median=([\d.]+)", proc.stdout).group(1))


def compiled_at_import(session, user=None):
    """Modules the interpreter compiled from source for STARTUP_CODE (python -v's 'code object from X.py')."""
    proc = session.run("cd /tmp && python3 -v -c '%s' 2>&1 >/dev/null" % STARTUP_CODE, user=user)
    found = re.findall(r"^# code object from '?([^'\n]+?)'?$", proc.stdout, re.M)
    assert found, "python -v printed no 'code object from' lines:\n" + proc.stdout[-2000:]
    return [p for p in found if not p.endswith(".pyc")]


def _tree_bytes(top, pyc_only=False):
    """(bytes, pyc bytes) of a mounted tree, like `du -sxb` (each inode once)."""
    seen = set()
    total = pyc = 0
    dev = os.lstat(top).st_dev
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == dev]
        for name in dirnames + filenames + ["."]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            # Bytecode: the .pyc files and the __pycache__ directories holding them.
            is_dir = os.path.isdir(os.path.join(dirpath, name))
            if (name.endswith(".pyc") and not is_dir) or (name == "__pycache__" and is_dir):
                pyc += st.st_size
    return total, pyc


# docker-library/official-images runs these on every python image
# (test/tests/python-*/container.*); the same checks, written here. Each runs
# as root in the image, as `docker run IMAGE python container.py` does.
OFFICIAL_IMAGE_TESTS = {
    # python-imports: the modules whose libraries a slim image must keep
    "python-imports": r"""
import sys
import curses
import readline
import dbm.gnu
import dbm.ndbm
import bz2, lzma, zlib
data = b"IT WORKS IT WORKS IT WORKS"
assert bz2.decompress(bz2.compress(data)) == data
assert zlib.decompress(zlib.compress(data)) == data
assert lzma.decompress(lzma.compress(data)) == data
if sys.version_info >= (3, 14):
    from compression import zstd
    assert zstd.decompress(zstd.compress(data)) == data
""",
    # python-sqlite3
    "python-sqlite3": r"""
import sqlite3
ver = sqlite3.sqlite_version
con = sqlite3.connect(":memory:", timeout=1, detect_types=sqlite3.PARSE_DECLTYPES, isolation_level=None)
cur = con.cursor()
cur.execute("CREATE TABLE test (id INT, txt TEXT)")
cur.execute("INSERT INTO test VALUES (?, ?)", (42, "wut"))
cur.execute("SELECT * FROM test")
assert cur.fetchall() == [(42, "wut")]
cur.execute("DROP TABLE test")
con.close()
""",
    # python-stack-size: recursion in a thread must reach RecursionError, not
    # overflow the thread's stack (a segfault)
    "python-stack-size": r"""
import sys, threading
def fun(i):
    try:
        fun(i + 1)
    except:
        sys.exit(0)
t = threading.Thread(target=fun, args=[1])
t.start()
""",
}
# python-no-pyc: no bytecode under /usr/local or /opt. An image that ships its
# compiled stdlib (pyimgtools compile) fails it by design (docs/official-slim.md).
NO_PYC = "find /usr/local /opt '(' -name '*.pyc' -o -name '*.pyo' ')' -print -exec false '{}' +"


def _python_c(code):
    return "cd /tmp && python3 -c '%s'" % code.replace("'", "'\"'\"'")


def no_pyc_check(session):
    """(exit status, output tail) of python-no-pyc: run it before any Python runs as root."""
    proc = session.run(NO_PYC + " 2>&1", check=False)
    return proc.returncode, proc.stdout[-500:]


def official_image_tests(session):
    """{test name: (exit status, output tail)} of OFFICIAL_IMAGE_TESTS."""
    results = {}
    for name, code in sorted(OFFICIAL_IMAGE_TESTS.items()):
        proc = session.run(_python_c(code) + " 2>&1", check=False)
        results[name] = (proc.returncode, proc.stdout[-2000:])
    return results


def facts(image, startup_runs=10, with_dynload=False):
    """What a user notices about a finished image, measured in one container, in an
    order where no command changes what a later one sees: nothing that could
    write bytecode runs before the probes that bytecode would change."""
    with Session(image) as s:
        doc = {"image": image}
        out = subprocess.run(["du", "-sxb", s.path], capture_output=True, text=True, check=True)
        doc["size"] = int(out.stdout.split()[0])
        doc["pyc_bytes"] = _tree_bytes(s.path)[1]
        # The pyz the Dockerfile COPYs in and keeps (for `pyimgtools audit` in CI).
        tool = os.path.join(s.path, "usr/local/bin/pyimgtools")
        doc["tool_bytes"] = os.lstat(tool).st_size if os.path.lexists(tool) else 0
        no_pyc = no_pyc_check(s)
        out = s.run("dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package} ${Version} "
                    "${Installed-Size}\\n'").stdout
        rows = [l.split() for l in out.splitlines() if l.startswith("ii ")]
        doc["packages"] = sorted(r[1] for r in rows)
        # name -> (version, Installed-Size in KiB as the package declares it)
        doc["versions"] = {r[1]: (r[2], int(r[3]) if len(r) > 3 and r[3].isdigit() else 0)
                           for r in rows}
        doc["manual"] = sorted(s.run("apt-mark showmanual").stdout.split())
        doc["compiled_nonroot"] = compiled_at_import(s, user=NONROOT_UID)
        doc["startup_nonroot"] = startup_median(s, user=NONROOT_UID, runs=startup_runs)
        # root in a fresh container: nothing it writes survives, so write nothing
        doc["startup_root"] = startup_median(s, runs=startup_runs,
                                             env={"PYTHONDONTWRITEBYTECODE": "1"})
        if with_dynload:
            doc["dynload_failures"] = dynload_import_failures(s)
        # as root, after every probe above (they may write bytecode)
        doc["official_tests"] = dict(official_image_tests(s), **{"python-no-pyc": no_pyc})
        out = s.run("apt-get update -qq >/dev/null 2>&1 && apt list --upgradable 2>/dev/null").stdout
        doc["pending_security"] = sorted(l for l in out.splitlines()
                                         if "-security" in l.split(" ")[0])
    return doc


# The readline module's file, for ldd (run inside the image: its own loader and cache).
_READLINE_LDD = "ldd \"$(python3 -c 'import readline; print(readline.__file__)')\""


def readline_owner(run):
    """(libreadline path the readline module loads, as ldd prints it; [owning packages,
    without :arch]) with `run(shell command) -> stdout` inside the image. The owner
    is dpkg-query's for the file's real path in either usrmerge spelling (a
    pattern without the /usr prefix)."""
    loaded = ldd.by_name(run(_READLINE_LDD))
    found = [p for n, p in loaded.items() if n.startswith("libreadline.so")]
    assert len(found) == 1 and found[0], loaded
    real = run("realpath %s" % shlex.quote(found[0])).strip()
    pattern = "*" + (real[len("/usr"):] if real.startswith("/usr/") else real)
    listers, _diverted = dpkgquery.parse_search(run("dpkg-query --search %s" % shlex.quote(pattern)))
    return found[0], sorted({p.split(":")[0] for pkgs in listers.values() for p in pkgs})


def built_facts(built):
    """Facts of the build image, before any purge (cached by image id: a container of
    that image is a copy of a gigabyte or more): the manual package set the build
    Dockerfile saved before the build deps went in, and the package owning the
    libreadline that the readline module loads (as `ldd` and dpkg-query see it)."""
    image_id = buildah("images", "-q", "--no-trunc", built).stdout.strip()
    path = os.path.join(CACHE_DIR, "e2e-results", "built-%s.json" % image_id.replace(":", "-"))
    if not os.path.exists(path):
        with Session(built) as s:
            with open(os.path.join(s.path, "tmp/manual.txt")) as f:
                manual = sorted(f.read().split())
            library, owners = readline_owner(lambda cmd: s.run(cmd).stdout)
        assert len(owners) == 1, (library, owners)
        doc = {"manual": manual, "readline_package": owners[0], "readline_library": library}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".part", "w") as f:
            json.dump(doc, f)
        os.replace(path + ".part", path)
    with open(path) as f:
        return json.load(f)
