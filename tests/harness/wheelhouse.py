"""Wheelhouses for app images: `pip download` on the host, cached under the test cache.

Builds cannot reach PyPI (only the host can): the tests install offline with
`--no-index --find-links`. One wheelhouse per CPython ABI (cp311 for bookworm,
cp313 for trixie) holds the binary wheels of the app's dependencies, uv and pip;
the source distribution built through `build-deps` (psycopg2) and what builds it
are in the same directory. Refetched when the requirement list changes.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from tests.harness.prereq import CACHE_DIR
from tests.harness.rootfs import _locked

# numpy, pillow: manylinux wheels vendoring libraries (numpy.libs/, pillow.libs/); requests and
# flask: many modules at start-up (and charset_normalizer's mypyc .so files).
BINARY = ("numpy", "pillow", "requests", "flask", "uv", "pip")
# Built from source in the image, through `pyimgtools build-deps`.
SOURCE = ("psycopg2",)
BUILD = ("setuptools", "wheel", "packaging")  # wheel 0.4x needs packaging
SUITE_ABI = {"bookworm": "cp311", "trixie": "cp313"}
_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _pip(*args):
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                           "--disable-pip-version-check"] + list(args),
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError("pip download %s failed:\n%s" % (" ".join(args), proc.stderr[-3000:]))


def _complete(dest):
    """Fetch the build requirements a wheelhouse made before they were listed."""
    have = {name.split("-")[0].lower() for name in os.listdir(dest)}
    missing = [b for b in BUILD if b not in have]
    if missing:
        _pip("--no-deps", "--only-binary=:all:", "-d", dest, *missing)


def wheelhouse(suite):
    """Host directory of the wheelhouse for `suite`'s python3 (fetched once)."""
    abi = SUITE_ABI[suite]
    # BUILD[:2]: wheelhouses fetched before packaging was listed keep their
    # name; _complete() adds what they lack.
    key = hashlib.sha256(repr((BINARY, SOURCE, BUILD[:2], _PLATFORMS)).encode()).hexdigest()[:8]
    dest = os.path.join(CACHE_DIR, "wheelhouse-app-%s-%s" % (abi, key))
    with _locked(os.path.join(CACHE_DIR, "wheelhouse-app.lock")):
        if os.path.isdir(dest):
            _complete(dest)
            return dest
        work = tempfile.mkdtemp(prefix="wheelhouse-", dir=CACHE_DIR)
        try:
            version = "%s.%s" % (abi[2], abi[3:])
            platforms = [a for p in _PLATFORMS for a in ("--platform", p)]
            _pip("--only-binary=:all:", "--python-version", version, "--implementation", "cp",
                 "--abi", abi, *platforms, "-d", work, *BINARY)
            _pip("--no-deps", "--no-binary", ",".join(SOURCE), "-d", work, *SOURCE)
            _pip("--no-deps", "--only-binary=:all:", "-d", work, *BUILD)
            os.rename(work, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for old in os.listdir(CACHE_DIR):
            if old.startswith("wheelhouse-app-%s-" % abi) and old != os.path.basename(dest):
                shutil.rmtree(os.path.join(CACHE_DIR, old), ignore_errors=True)
    return dest
