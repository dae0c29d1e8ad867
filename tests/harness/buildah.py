"""Building and running real Dockerfiles with buildah (vfs storage, chroot isolation).

The base image of every test build is `FROM scratch` + `ADD rootfs.tar /` made
from the cached debootstrapped rootfs; it is cached in buildah's storage under
the test cache, keyed by the rootfs recipe. Every image and container a test
makes through `Builder` is removed by `Builder.cleanup()`.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid

from tests.harness.prereq import CACHE_DIR
from tests.harness.rootfs import _locked, rootfs_tarball

STORAGE = ["--storage-driver", "vfs",
           "--root", os.path.join(CACHE_DIR, "containers", "storage"),
           "--runroot", "/run/pyimgtools-tests/containers"]
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
              extra_files=None, from_base=True):
        """Build `context`/`dockerfile`; the first stage's FROM becomes the test base.

        `extra_files` maps names in the context to host paths copied in first
        (e.g. {"pyimgtools.pyz": pyz}); they are removed again afterwards.
        """
        name = "localhost/pyimgtools-test-%s" % uuid.uuid4().hex[:12]
        args = ["bud", "--isolation", "chroot", "--layers=false", "-f", dockerfile, "-t", name]
        if from_base:
            args += ["--from", base_image(suite)]
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
