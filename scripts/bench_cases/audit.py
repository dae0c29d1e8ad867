"""audit: pyimgtools audit --root against the shell a person would write for part of it;
reading and auditing a ≥ 1 GiB image against `tar -xOf` streaming its layers.

PYIMGTOOLS_BENCH_AUDIT=root, =image (or both, comma-separated; the default)
picks the groups.

Image group (issue 16's acceptance: peak memory under 200 MiB and wall time
≤ 2× the reading floor): the image of _audit_image.py (built once, cached),
as a docker-archive (uncompressed layers) and an oci-archive (gzip layers).
The floor, per form, is GNU tar streaming every layer once to /dev/null, one
pipeline per layer in manifest order (printed under the table):

    tar -xOf ARCHIVE LAYER_MEMBER | tar -xOf - > /dev/null      (docker-archive)
    tar -xOf ARCHIVE LAYER_MEMBER | tar -xzOf - > /dev/null     (oci-archive)

against `read_image(ARCHIVE)` alone (_read_image.py, what audit reads before
any check) and, once this checkout's `pyimgtools audit` takes an IMAGE,
`pyimgtools audit -q --fail-on never ARCHIVE`. Every row runs under
`/usr/bin/time -v` (peak RSS); before each timed run the archive is read once
to /dev/null, so every run reads it from the page cache.

Root group. Input (made once, read-only for every run): the cached debootstrapped bookworm
rootfs of the tests (or this machine's /, when there is none) with a CPython
3.12 install tree (pyenv's, minus site-packages) under /usr/local.

No tool does what audit does; the baseline covers five of its checks with the
usual one-liners: dangling symlinks (`find -xtype l`), test directories
(`find … -exec du`), build tools (`dpkg-query | grep`), apt leftovers (`du`),
a Python's stdlib .py files without a .pyc (`find` + `test -e` per file).
"""

import glob
import json
import os
import posixpath
import shlex
import subprocess
import sys
import tarfile

from _frame import REPO, Variant, pyimgtools_argv

DESCRIPTION = ("audit a rootfs with a CPython 3.12 under /usr/local (read-only); "
               "read and audit a >= 1 GiB image vs tar -xOf of its layers")
_NOTES = []

SHELL = r"""
R="$1"
find "$R" -xdev \( -path "$R/proc" -o -path "$R/sys" -o -path "$R/dev" -o -path "$R/run" \) -prune -o -xtype l -print | wc -l
find "$R/usr/local" -type d \( -name test -o -name tests -o -name idle_test \) -prune -exec du -sb {} + | wc -l
dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Package} ${Installed-Size}\n' | grep -E '^(gcc|g\+\+|cpp|make|binutils)(-[0-9.]+)? |-dev ' | wc -l
du -sb "$R/var/lib/apt/lists" "$R/var/cache/apt" 2>/dev/null | wc -l
find "$R/usr/local/lib/python3.12" \( -name test -o -name tests -o -name idle_test -o -name site-packages -o -name __pycache__ \) -prune -o -name '*.py' -print |
  while read -r f; do d=${f%/*}; b=${f##*/}; [ -e "$d/__pycache__/${b%.py}.cpython-312.pyc" ] || echo "$f"; done | wc -l
"""


def _rootfs_tar():
    found = sorted(glob.glob("/var/cache/pyimgtools-tests/rootfs/bookworm-*.tar"))
    return found[-1] if found else None


def _groups():
    chosen = [g for g in os.environ.get("PYIMGTOOLS_BENCH_AUDIT", "root,image").split(",") if g]
    unknown = set(chosen) - {"root", "image"}
    if unknown:
        raise SystemExit("bench audit: PYIMGTOOLS_BENCH_AUDIT: no group %s (root, image)"
                         % ", ".join(sorted(unknown)))
    return chosen


def notes():
    return _NOTES


def variants(work):
    out = []
    groups = _groups()
    if "root" in groups:
        out += root_variants(work)
    if "image" in groups:
        out += image_variants()
    return out


def root_variants(work):
    root = os.path.join(work, "root")
    os.makedirs(root)
    tar = _rootfs_tar()
    if tar is None:
        raise SystemExit("bench audit: no cached bookworm rootfs (run the integration tests once)")
    subprocess.run(["tar", "-C", root, "-xf", tar], check=True)
    py = sorted(glob.glob("/root/.pyenv/versions/3.12.*"))
    if not py:
        raise SystemExit("bench audit: no CPython 3.12 under /root/.pyenv/versions")
    local = os.path.join(root, "usr", "local")
    for part in ("bin", "lib"):
        subprocess.run(["cp", "-a", os.path.join(py[-1], part), local], check=True)
    subprocess.run(["rm", "-rf", os.path.join(local, "lib", "python3.12", "site-packages")], check=True)
    return [
        Variant("shell one-liners (5 of the checks)",
                command=lambda run_dir: ["sh", "-c", SHELL, "bench", root]),
        Variant("pyimgtools audit --root (all checks)",
                command=lambda run_dir: pyimgtools_argv("audit", "-q", "--root", root,
                                                        "--fail-on", "never")),
    ]


def _layer_members(archive):
    """Member names of the layer blobs in manifest order, symlinks resolved
    (buildah's docker-archive links <id>/layer.tar to ../<diff id>.tar), read
    with tarfile: independent of the reader under test."""
    with tarfile.open(archive) as tar:
        members = {posixpath.normpath(m.name): m for m in tar.getmembers()}

        def load(name):
            return json.load(tar.extractfile(members[name]))

        def real(name):
            for _ in range(8):
                m = members[name]
                if not m.issym():
                    return name
                name = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
            raise SystemExit("bench audit: %s: symlink loop at %s" % (archive, name))

        if "index.json" in members:
            desc = load("index.json")["manifests"][0]
            manifest = load("blobs/sha256/" + desc["digest"].split(":", 1)[1])
            return [real("blobs/sha256/" + l["digest"].split(":", 1)[1]) for l in manifest["layers"]]
        return [real(posixpath.normpath(p)) for p in load("manifest.json")[0]["Layers"]]


def floor_script(archive, gzip):
    inner = "tar -xzOf - > /dev/null" if gzip else "tar -xOf - > /dev/null"
    lines = ["set -e"] + ["tar -xOf %s %s | %s" % (shlex.quote(archive), shlex.quote(m), inner)
                          for m in _layer_members(archive)]
    return "\n".join(lines) + "\n"


def _warm(path):
    def prepare(run_dir):
        with open(path, "rb") as f:
            while f.read(8 << 20):
                pass
    return prepare


def _audit_takes_image():
    """Whether this checkout's `pyimgtools audit` has an IMAGE positional."""
    proc = subprocess.run(pyimgtools_argv("audit", "--help"), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), check=False)
    return proc.returncode == 0 and "IMAGE" in proc.stdout


def image_variants():
    from _audit_image import cached_archives
    archives = cached_archives(log=lambda line: print(line, flush=True))
    with_audit = _audit_takes_image()
    reader = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_read_image.py")
    out = []
    for form, gzip in (("docker-archive", False), ("oci-archive", True)):
        archive = archives[form]
        script = floor_script(archive, gzip)
        floor = "%s floor: tar -xOf | tar -x%sOf" % (form, "z" if gzip else "")
        _NOTES.append("%s: %s (%.0f MiB); the floor runs sh -c:\n%s" % (
            form, archive, os.path.getsize(archive) / 1048576.0, script.rstrip()))
        out.append(Variant(floor, command=lambda run_dir, s=script: ["sh", "-c", s],
                           prepare=_warm(archive), baseline=floor, peak_rss=True))
        out.append(Variant("%s read_image (reader alone)" % form,
                           command=lambda run_dir, a=archive: [sys.executable, reader, a],
                           prepare=_warm(archive), baseline=floor, peak_rss=True))
        if with_audit:
            out.append(Variant("%s pyimgtools audit IMAGE" % form,
                               command=lambda run_dir, a=archive: pyimgtools_argv(
                                   "audit", "-q", "--fail-on", "never", a),
                               prepare=_warm(archive), baseline=floor, peak_rss=True))
    if not with_audit:
        _NOTES.append("(no `pyimgtools audit IMAGE` on this checkout yet: reader rows only)")
    return out
