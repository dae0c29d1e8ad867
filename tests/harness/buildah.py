"""Building and running real Dockerfiles with buildah (vfs storage, chroot isolation).

The base image of every test build is `FROM scratch` + `ADD rootfs.tar /` made
from the cached debootstrapped rootfs; it is cached in buildah's storage under
the test cache, keyed by the rootfs recipe. Every image and container a test
makes through `Builder` is removed by `Builder.cleanup()`.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid

from tests.harness.prereq import CACHE_DIR
from tests.harness.rootfs import _locked, rootfs_tarball

# The run root (locks, mount state) belongs to one storage root: one per cache dir.
_RUNROOT = "/run/pyimgtools-tests/%s" % hashlib.sha256(os.path.abspath(CACHE_DIR).encode()).hexdigest()[:12]
STORAGE = ["--storage-driver", "vfs",
           "--root", os.path.join(CACHE_DIR, "containers", "storage"),
           "--runroot", _RUNROOT]
BASE_REPO = "localhost/pyimgtools-base"


def buildah(*args, check=True, capture=True, timeout=3600):
    proc = subprocess.run(["buildah"] + STORAGE + list(args), capture_output=capture, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("buildah %s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args[:3]), proc.returncode,
                                (proc.stdout or "")[-6000:], (proc.stderr or "")[-4000:]))
    return proc


def image_exists(name):
    return buildah("images", "-q", name, check=False).returncode == 0


def base_image(suite):
    """Name of the cached `FROM scratch` + `ADD rootfs.tar /` image for `suite`."""
    tarball = rootfs_tarball(suite)
    tag = os.path.basename(tarball)[:-len(".tar")]  # suite-recipekey
    name = "%s:%s" % (BASE_REPO, tag)
    with _locked(os.path.join(CACHE_DIR, "containers", "base.lock")):
        if image_exists(name):
            return name
        context = tempfile.mkdtemp(prefix="base-", dir=os.path.join(CACHE_DIR, "containers"))
        try:
            os.link(tarball, os.path.join(context, "rootfs.tar"))
            with open(os.path.join(context, "Dockerfile"), "w") as f:
                f.write('FROM scratch\nADD rootfs.tar /\nENV LANG C.UTF-8\nCMD ["bash"]\n')
            buildah("bud", "--isolation", "chroot", "--layers=false", "-t", name, context)
        finally:
            shutil.rmtree(context, ignore_errors=True)
        # Older base images of this suite (earlier recipes) go.
        listed = buildah("images", "--format", "{{.Name}}:{{.Tag}}", check=False).stdout.split()
        for other in listed:
            if other.startswith("%s:%s-" % (BASE_REPO, suite)) and other != name:
                buildah("rmi", "-f", other, check=False)
    return name


class Builder:
    """Builds Dockerfiles and runs commands in the images; removes all it made."""

    def __init__(self):
        self.images = []
        self.containers = []

    def build(self, context, dockerfile="Dockerfile", suite="bookworm", build_args=None,
              extra_files=None, from_base=True, base=None):
        """Build `context`/`dockerfile`; the first stage's FROM becomes the test base
        (or `base`, an image name).

        `extra_files` maps names in the context to host paths copied in first
        (e.g. {"pyimgtools.pyz": pyz}); they are removed again afterwards.
        """
        name = "localhost/pyimgtools-test-%s" % uuid.uuid4().hex[:12]
        args = ["bud", "--isolation", "chroot", "--layers=false", "-f", dockerfile, "-t", name]
        if from_base:
            args += ["--from", base or base_image(suite)]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", "%s=%s" % (key, value)]
        added = []
        try:
            for rel, src in (extra_files or {}).items():
                dst = os.path.join(context, rel)
                shutil.copy(src, dst)  # keeps the mode: the pyz is executable
                added.append(dst)
            self.images.append(name)
            buildah(*(args + [context]))
        finally:
            for dst in added:
                os.unlink(dst)
        return name

    def run(self, image, cmd, user=None, check=True, env=None):
        """Run a shell command in a fresh container of `image`; returns CompletedProcess."""
        ctr = buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
        self.containers.append(ctr)
        try:
            args = ["run", "--isolation", "chroot"]
            if user is not None:
                args += ["--user", str(user)]
            for key, value in (env or {}).items():
                args += ["--env", "%s=%s" % (key, value)]
            return buildah(*(args + [ctr, "--", "sh", "-c", cmd]), check=check)
        finally:
            buildah("rm", ctr, check=False)
            self.containers.remove(ctr)

    @contextlib.contextmanager
    def mounted(self, image):
        """The image's file system, mounted read-write in a throw-away container."""
        ctr = buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
        self.containers.append(ctr)
        try:
            path = buildah("mount", ctr).stdout.strip()
            try:
                yield path
            finally:
                buildah("umount", ctr, check=False)
        finally:
            buildah("rm", ctr, check=False)
            self.containers.remove(ctr)

    def size(self, image):
        """Flattened size of the image in bytes (du of its mounted file system)."""
        with self.mounted(image) as path:
            out = subprocess.run(["du", "-sxb", path], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0])

    def cleanup(self):
        for ctr in list(self.containers):
            buildah("rm", ctr, check=False)
        self.containers.clear()
        for name in self.images:
            buildah("rmi", "-f", name, check=False)
        self.images.clear()


def _sha256_file(path, h):
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def cached_image(repo, context, dockerfile="Dockerfile", suite="bookworm", build_args=None,
                 extra_files=None, target=None, from_base=True, key_extra=""):
    """Name of an image built once and kept in buildah's storage between test runs.

    For expensive build steps (e.g. compiling CPython) that the `Builder`
    fixture would delete after each test. The image is `repo:KEY`, where KEY
    hashes the context's files, `extra_files`' contents (name -> host path,
    copied into a private copy of the context), the build args, the target,
    the base image's id (so a rebuilt base rebuilds it) and `key_extra`.
    Older tags of `repo` are removed. Never remove the returned image in a test.
    """
    h = hashlib.sha256()
    base = base_image(suite) if from_base else None
    if base:
        h.update(buildah("images", "-q", "--no-trunc", base).stdout.strip().encode())
    for top, dirs, files in os.walk(context):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            h.update(os.path.relpath(path, context).encode("utf-8", "surrogateescape") + b"\0")
            _sha256_file(path, h)
    for rel, src in sorted((extra_files or {}).items()):
        h.update(rel.encode() + b"\0")
        _sha256_file(src, h)
    h.update(repr((dockerfile, sorted((build_args or {}).items()), target, key_extra)).encode())
    name = "%s:%s" % (repo, h.hexdigest()[:16])
    lock = os.path.join(CACHE_DIR, "containers", "cached-%s.lock" % repo.rsplit("/", 1)[-1])
    with _locked(lock):
        if image_exists(name):
            return name
        work = tempfile.mkdtemp(prefix="cached-", dir=os.path.join(CACHE_DIR, "containers"))
        try:
            ctx = os.path.join(work, "context")
            shutil.copytree(context, ctx, symlinks=True)
            for rel, src in (extra_files or {}).items():
                dst = os.path.join(ctx, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy(src, dst)
            args = ["bud", "--isolation", "chroot", "--layers=false", "-f", dockerfile, "-t", name]
            if base:
                args += ["--from", base]
            if target:
                args += ["--target", target]
            for key, value in sorted((build_args or {}).items()):
                args += ["--build-arg", "%s=%s" % (key, value)]
            buildah(*(args + [ctx]), timeout=4 * 3600)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        listed = buildah("images", "--format", "{{.Name}}:{{.Tag}}", check=False).stdout.split()
        for other in listed:
            if other.startswith(repo + ":") and other != name:
                buildah("rmi", "-f", other, check=False)
    return name
