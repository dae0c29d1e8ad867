"""The ≥ 1 GiB Python-app image of `scripts/bench audit`, built once and cached.

Shaped like a real app image: the bookworm test base, then

  1. COPY python3.11 (/usr/local/lib/python3.11: an os.py, so that audit sees
     a Python installation there and its bytecode checks read every module,
     and site-packages): 120,000 small files (60,000 .py and their
     __pycache__/*.cpython-311.pyc, 1–20 KiB, log-uniform), 240 C
     extensions of 64 KiB–2 MiB and three shared libraries of 60, 110 and
     200 MB (ELF shared objects whose loader data, as a linker lays it out,
     frames random bytes: the view keeps only what the loader reads of
     them); dist-info directories.
  2. COPY a pip cache: 8,000 small files and two 40 MB wheels under /root/.cache/pip.
  3. RUN rm -rf /root/.cache/pip, every package's tests/ directory (part of
     layer 1), and chmod one of the big .so files (a 60 MB chmod copy): waste.
  4. COPY the app: 1,000 small files under /app.

Contents come from a fixed-seed RNG on the host (`buildah copy`), so every
build holds the same bytes. Exported with `buildah push` to docker-archive:
(uncompressed layers) and oci-archive: (gzip layers) under the test cache's
bench-audit/ directory, keyed by RECIPE and the base image's id; the
containers and images made on the way are removed (vfs keeps a full copy of
every layer).
"""

import hashlib
import math
import os
import random
import shutil
import sys
import uuid

from _frame import REPO

RECIPE = "bench-audit-3"     # bump when the recipe below changes
SEED = 20261202
STDLIB = "/usr/local/lib/python3.11"
SITE = STDLIB + "/site-packages"
N_PACKAGES = 80
N_MODULES = 60000            # .py files, each with its .pyc
N_EXTENSIONS = 240
BIG_SO = (("torch/lib/libtorch_cpu.so", 200 * 10 ** 6), ("torch/lib/libtorch_cuda.so", 110 * 10 ** 6),
          ("scipy.libs/libopenblas.so", 60 * 10 ** 6))
CHMOD_SO = SITE + "/scipy.libs/libopenblas.so"
N_CACHE = 8000
N_APP = 1000
WORDS = ("def class return import from self if else elif for while in not and or None True "
         "False try except finally with as yield lambda raise pass assert global value data "
         "result args kwargs name path item key index count buffer config request response "
         "__init__ __name__ = == != ( ) [ ] { } : , . + - * / % 0 1 2 'text' \"doc\"").split()


def _log_uniform(rng, low, high):
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


class _Pools:
    """Source text and bytecode-like bytes that files take slices of."""

    def __init__(self, rng):
        lines = []
        size = 0
        while size < 8 << 20:
            line = "    " * rng.randrange(4) + " ".join(rng.choices(WORDS, k=rng.randrange(2, 14)))
            lines.append(line)
            size += len(line) + 1
        self.text = "\n".join(lines).encode()
        # Compressible like marshal data: skewed byte frequencies.
        weights = [1.0 / (1 + i) for i in range(256)]
        self.binary = bytes(rng.choices(range(256), weights=weights, k=8 << 20))

    @staticmethod
    def take(pool, rng, size):
        off = rng.randrange(len(pool) - size)
        return pool[off:off + size]


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _random_file(path, rng, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(rng.randbytes(n))
            left -= n


def _elf_file(path, rng, size, soname):
    """An x86-64 ELF shared object of `size` bytes that ld.so would map: a
    read-only PT_LOAD with the string table at 8 KiB, random bytes, and a
    read-write PT_LOAD whose last page holds the dynamic section (DT_NEEDED
    libc.so.6 and libm.so.6, DT_SONAME), where a linker puts them."""
    import struct
    page = 4096
    size -= size % page
    strtab = b"\0libc.so.6\0libm.so.6\0" + soname.encode() + b"\0"
    str_off, dyn_off = 2 * page, size - page
    rw_off = dyn_off - page
    dynamic = struct.pack("<10q", 1, 1, 1, 11, 14, 21, 5, str_off, 10, len(strtab)) + bytes(16)
    phdrs = (struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, rw_off, rw_off, page)        # PT_LOAD r
             + struct.pack("<IIQQQQQQ", 1, 6, rw_off, rw_off, rw_off, page * 2, page * 2, page)
             + struct.pack("<IIQQQQQQ", 2, 6, dyn_off, dyn_off, dyn_off, len(dynamic),
                           len(dynamic), 8))                                        # PT_DYNAMIC
    ehdr = (b"\x7fELF\x02\x01\x01" + bytes(9)
            + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 3, 64, 0, 0))
    head = ehdr + phdrs
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(head + rng.randbytes(str_off - len(head)) + strtab)
        left = dyn_off - str_off - len(strtab)
        while left:
            n = min(left, 16 << 20)
            f.write(rng.randbytes(n))
            left -= n
        f.write(dynamic + rng.randbytes(page - len(dynamic)))


def make_site_packages(top, rng, pools):
    """Layer 1's tree at `top` (= site-packages)."""
    pkgs = ["pkg%02d" % i for i in range(N_PACKAGES)]
    for i in range(N_MODULES):
        pkg = pkgs[i % N_PACKAGES]
        depth = rng.randrange(3)
        sub = "/".join("sub%d" % rng.randrange(6) for _ in range(depth))
        if i % N_PACKAGES < N_PACKAGES // 4 and rng.random() < 0.15:
            sub = "tests" + ("/" + sub if sub else "")      # layer 3 deletes these
        d = os.path.join(top, pkg, sub)
        name = "mod%05d" % i
        _write(os.path.join(d, name + ".py"), pools.take(pools.text, rng, _log_uniform(rng, 1024, 20480)))
        pyc = b"\xa7\r\r\n" + bytes(12) + pools.take(pools.binary, rng, _log_uniform(rng, 1024, 20480))
        _write(os.path.join(d, "__pycache__", name + ".cpython-311.pyc"), pyc)
    for i in range(N_EXTENSIONS):
        pkg = pkgs[i % N_PACKAGES]
        name = "_ext%03d.cpython-311-x86_64-linux-gnu.so" % i
        _elf_file(os.path.join(top, pkg, name), rng, _log_uniform(rng, 64 << 10, 2 << 20), name)
    for pkg in pkgs:
        info = os.path.join(top, pkg + "-1.0.dist-info")
        _write(os.path.join(info, "METADATA"), b"Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % pkg.encode())
        _write(os.path.join(info, "RECORD"), pools.take(pools.text, rng, 4096))
    for rel, size in BIG_SO:
        _elf_file(os.path.join(top, rel), rng, size, os.path.basename(rel))


def make_pip_cache(top, rng, pools):
    for i in range(N_CACHE):
        h = "%032x" % rng.getrandbits(128)
        _write(os.path.join(top, "http", h[0], h[1], h[2], h), pools.take(
            pools.binary, rng, _log_uniform(rng, 1024, 20480)))
    for i in range(2):
        _random_file(os.path.join(top, "wheels", "big%d-1.0-cp311-linux_x86_64.whl" % i), rng, 40 * 10 ** 6)


def make_app(top, rng, pools):
    for i in range(N_APP):
        _write(os.path.join(top, "app", "part%d" % (i % 20), "view%04d.py" % i),
               pools.take(pools.text, rng, _log_uniform(rng, 1024, 20480)))


def _harness():
    sys.path.insert(0, REPO)
    from tests.harness import buildah as hb
    from tests.harness.prereq import CACHE_DIR
    from tests.harness.rootfs import _locked
    return hb, CACHE_DIR, _locked


def cached_archives(log=print):
    """{"docker-archive": path, "oci-archive": path} of the cached bench image (built if needed)."""
    hb, cache_dir, locked = _harness()
    base = hb.base_image("bookworm")
    base_id = hb.buildah("images", "-q", "--no-trunc", base).stdout.strip()
    key = hashlib.sha256(("%s %d %s" % (RECIPE, SEED, base_id)).encode()).hexdigest()[:12]
    top = os.path.join(cache_dir, "bench-audit")
    final = os.path.join(top, key)
    out = {"docker-archive": os.path.join(final, "docker.tar"),
           "oci-archive": os.path.join(final, "oci.tar")}
    os.makedirs(top, exist_ok=True)
    with locked(os.path.join(top, "build.lock")):
        if os.path.isdir(final):
            return out
        log("bench audit: building the %s image (once; cached in %s) ..." % (RECIPE, top))
        work = os.path.join(top, "work-" + uuid.uuid4().hex[:8])
        made = []
        try:
            _build(hb, base, work, made, log)
            os.rename(work + "/export", final)
        finally:
            for ref in reversed(made):      # containers as "ctr:ID", images by name
                if ref.startswith("ctr:"):
                    hb.buildah("rm", ref[4:], check=False)
                else:
                    hb.buildah("rmi", "-f", ref, check=False)
            shutil.rmtree(work, ignore_errors=True)
        for old in os.listdir(top):    # earlier recipes or bases
            path = os.path.join(top, old)
            if old != key and os.path.isdir(path) and not old.startswith("work-"):
                shutil.rmtree(path, ignore_errors=True)
    return out


def _step(hb, image, made, created_by, copy=None, run=None):
    """`image` + one committed layer: `buildah copy SRC DEST` or `buildah run sh -c RUN`."""
    ctr = hb.buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
    made.append("ctr:" + ctr)
    if copy:
        src, dest = copy
        hb.buildah("copy", ctr, src, dest, timeout=3600)
    if run:
        hb.buildah("run", "--isolation", "chroot", ctr, "--", "sh", "-c", run, timeout=3600)
    hb.buildah("config", "--created-by", created_by, ctr)
    name = "localhost/pyimgtools-bench-audit-%s" % uuid.uuid4().hex[:12]
    hb.buildah("commit", "--quiet", ctr, name, timeout=3600)
    made.append(name)
    hb.buildah("rm", ctr)
    made.remove("ctr:" + ctr)
    return name


def _build(hb, base, work, made, log):
    rng = random.Random(SEED)
    pools = _Pools(rng)
    ctx = os.path.join(work, "ctx")
    image = base
    log("  layer 1: site-packages (%d files + %d extensions + %d big .so)"
        % (2 * N_MODULES, N_EXTENSIONS, len(BIG_SO)))
    make_site_packages(os.path.join(ctx, "python3.11", "site-packages"), rng, pools)
    _write(os.path.join(ctx, "python3.11", "os.py"), pools.take(pools.text, rng, 40000))
    image = _step(hb, image, made, "COPY python3.11 %s # buildkit" % STDLIB,
                  copy=(os.path.join(ctx, "python3.11"), STDLIB))
    shutil.rmtree(ctx)
    log("  layer 2: pip cache")
    make_pip_cache(os.path.join(ctx, "pip"), rng, pools)
    image = _step(hb, image, made, "COPY pip /root/.cache/pip # buildkit",
                  copy=(os.path.join(ctx, "pip"), "/root/.cache/pip"))
    shutil.rmtree(ctx)
    log("  layer 3: rm -rf the pip cache and the tests/ directories, chmod a .so")
    cmd = ("rm -rf /root/.cache/pip && find %s -name tests -type d -prune -exec rm -rf {} + "
           "&& chmod 0555 %s" % (SITE, CHMOD_SO))
    image = _step(hb, image, made, "/bin/sh -c " + cmd, run=cmd)
    log("  layer 4: the app")
    make_app(ctx, rng, pools)
    image = _step(hb, image, made, "COPY app /app # buildkit", copy=(os.path.join(ctx, "app"), "/app"))
    shutil.rmtree(ctx)
    export = os.path.join(work, "export")
    os.makedirs(export)
    log("  buildah push: docker-archive, oci-archive")
    hb.buildah("push", "--quiet", image, "docker-archive:" + os.path.join(export, "docker.tar"),
               timeout=3600)
    hb.buildah("push", "--quiet", image, "oci-archive:" + os.path.join(export, "oci.tar"),
               timeout=3600)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print(cached_archives())
