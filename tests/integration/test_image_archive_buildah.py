"""pyimgtools.image on real buildah images exported three ways.

A 3-step image on the bookworm test base (one layer per step, committed
with buildah): one RUN adds 30 MiB, the next deletes it, the last chmods
/usr/bin/tar. `buildah push` writes it as a
docker-archive (docker save format, uncompressed layers), an oci-archive and
an oci: layout directory (gzip layers). Expected values come from buildah:
the reader's final tree must be the container's mounted file system (paths,
types, sizes, permission bits), the same from all three forms, and the waste
is what the Dockerfile planted.
"""

import os
import stat

import pytest

from pyimgtools.image import read_image
from tests.harness.buildah import base_image, buildah
from tests.harness.layered import layered_image

pytestmark = pytest.mark.main_only

BIG = 30 << 20
STEPS = ("head -c %d /dev/urandom > /big" % BIG, "rm /big", "chmod 0700 /usr/bin/tar")

_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
          stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo"}


def mounted_tree(top):
    """path -> (type, size of regular files, permission bits), from lstat of the mount
    (the root itself is not an entry of buildah's layers)."""
    out = {}
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            kind = _TYPES[stat.S_IFMT(st.st_mode)]
            out["/" + os.path.relpath(p, top)] = (
                kind, st.st_size if kind == "file" else 0, stat.S_IMODE(st.st_mode))
    return out


def index_view(img):
    return {p: ("file" if e.type == "hardlink" else e.type, e.size, e.mode)
            for p, e in img.tree.items()}


def test_three_export_forms_agree_with_the_mount_and_show_the_waste(builder, tmp_path):
    image = layered_image(builder, base_image("bookworm"), STEPS)

    docker = str(tmp_path / "docker.tar")
    ociarc = str(tmp_path / "oci.tar")
    ocidir = str(tmp_path / "oci")
    for dest in ("docker-archive:" + docker, "oci-archive:" + ociarc, "oci:" + ocidir):
        buildah("push", "--quiet", image, dest)

    images = [read_image(src) for src in (docker, ociarc, ocidir)]
    full = [{p: (e.layer, e.type, e.size, e.mode, e.uid, e.gid, e.mtime, e.linkname)
             for p, e in img.tree.items()} for img in images]
    assert full[0] == full[1] == full[2]

    with builder.mounted(image) as top:
        mount = mounted_tree(top)
    view = index_view(images[0])
    missing, extra = sorted(set(mount) - set(view)), sorted(set(view) - set(mount))
    assert (missing, extra) == ([], [])
    differ = {p: (view[p], mount[p]) for p in mount if view[p] != mount[p]}
    assert differ == {}

    for img in images:
        steps = [layer.created_by or "" for layer in img.layers]
        assert len(steps) == 4, steps
        add = next(i for i, s in enumerate(steps) if "head -c" in s)
        rm = next(i for i, s in enumerate(steps) if "rm /big" in s)
        chmod = next(i for i, s in enumerate(steps) if "chmod 0700" in s)
        big = [w for w in img.waste if w.path == "/big"]
        assert [(w.size, w.layer, w.removed_by, w.how) for w in big] == [(BIG, add, rm, "deleted")]
        assert img.layers[add].wasted_bytes >= BIG and img.layers[rm].bytes_removed >= BIG
        tar = [w for w in img.waste if w.path == "/usr/bin/tar"]
        assert [(w.layer, w.removed_by, w.how) for w in tar] == [(0, chmod, "chmod")]
        assert tar[0].size == mount["/usr/bin/tar"][1]
        assert img.wasted_bytes >= BIG + tar[0].size
        assert img.tree["/usr/bin/tar"].mode == 0o700 and "/big" not in img.tree
