"""The examples/audit images' build inputs and what audit's tests compare.

`context_with_python(tmp_path)` is examples/audit/ plus python.tar (a CPython
3.12 `make install` tree packed from pyenv's build), the context of
Dockerfile.dirty and Dockerfile.clean; `comparable(doc)` is what must be the
same in audit's JSON from every source (inside the image, --root on its
mount, the image archives). Shared by tests/integration/test_audit_image.py
and test_audit_image_archives.py.
"""

import json
import os
import shutil
import tarfile

from tests.harness import prereq
from tests.harness.buildah import buildah

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "audit")

# The interpreter running pyimgtools would otherwise write the .pyc files of
# the stdlib modules it imports (and rewrite the planted stale one) before
# audit looks: see README, audit.
NO_PYC = {"PYTHONDONTWRITEBYTECODE": "1"}


def python_tar(dest):
    """A CPython 3.12 `make install` tree for /usr/local, packed from pyenv's build:
    bin/python3.12 (+ python3), lib/libpython3.12.so.1.0, lib/python3.12 without
    .pyc files, test suite, site-packages contents, config-3.12-* and tkinter."""
    exe = prereq.require_pyenv_python("3.12")
    prefix = os.path.dirname(os.path.dirname(exe))
    lib = os.path.join(prefix, "lib", "python3.12")

    def keep(info):
        name = info.name
        parts = name.split("/")
        if "__pycache__" in parts or name.endswith((".pyc", ".pyo")) or "_tkinter" in parts[-1]:
            return None
        top = parts[2] if parts[:2] == ["lib", "python3.12"] and len(parts) > 2 else ""
        if top in ("test", "tkinter") or top.startswith("config-3.12"):
            return None
        if name.startswith("lib/python3.12/site-packages/"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(dest, "w") as tar:
        tar.add(exe, "bin/python3.12", filter=keep)
        link = tarfile.TarInfo("bin/python3")
        link.type = tarfile.SYMTYPE
        link.linkname = "python3.12"
        tar.addfile(link)
        tar.add(os.path.join(prefix, "lib", "libpython3.12.so.1.0"), "lib/libpython3.12.so.1.0",
                filter=keep)
        tar.add(lib, "lib/python3.12", filter=keep)


def context_with_python(tmp_path):
    context = str(tmp_path / "context")
    shutil.copytree(EXAMPLE, context)
    python_tar(os.path.join(context, "python.tar"))
    return context


def comparable(doc):
    """What must be the same inside the image and from outside."""
    return {f["id"]: (f["severity"], sorted(map(json.dumps, f["paths"])), f["bytes"])
            for f in doc["findings"]}


def image_env_file(image, path):
    """The image's configured environment (buildah inspect), one NAME=VALUE a line."""
    out = buildah("inspect", "--type", "image", "--format",
                  "{{range .OCIv1.Config.Env}}{{.}}\n{{end}}", image).stdout
    with open(path, "w") as f:
        f.write(out)
    return path
