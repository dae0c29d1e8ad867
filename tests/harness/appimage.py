"""The app images' build inputs: the shared base per suite and the build context of examples/app/.

`app_base(suite)` is the cached base image (Debian's python3 and
ca-certificates, FROM the suite's rootfs) the three Dockerfiles of
examples/app/ start from; `app_context` copies examples/app/, the suite's
wheelhouse (tests/harness/wheelhouse.py) and the pyz into a build context.
Shared by tests/integration/test_app_images.py and scripts/bench_cases/apps.py.
"""

import os
import shutil
import tempfile

from tests.harness.buildah import cached_image
from tests.harness.wheelhouse import wheelhouse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "app")
BASE_REPO = "localhost/pyimgtools-app-base"
# What the three Dockerfiles start from, installed once per suite (each
# Dockerfile installs it too: apt then finds it there).
BASE_DOCKERFILE = ("FROM scratch\nRUN apt-get update && apt-get install -y --no-install-recommends "
                   "python3 ca-certificates && rm -rf /var/lib/apt/lists/*\n")


def app_base(suite):
    with tempfile.TemporaryDirectory() as ctx:
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(BASE_DOCKERFILE)
        return cached_image(BASE_REPO, ctx, suite=suite, key_extra=suite)


def app_context(dest, suite, pyz):
    """The build context: examples/app/, pyimgtools.pyz and wheels/ (the suite's wheelhouse)."""
    shutil.copytree(EXAMPLE, dest)
    shutil.copytree(wheelhouse(suite), os.path.join(dest, "wheels"))
    shutil.copy(pyz, os.path.join(dest, "pyimgtools.pyz"))
    return dest
