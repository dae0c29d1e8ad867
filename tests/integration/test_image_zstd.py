"""zstd layers (issue 16): an OCI layout whose layers mix gzip and zstd.

The layouts come from the tools: `buildah push … oci:` writes gzip layers and
`skopeo copy --dest-compress-format zstd` of it writes zstd ones (the same
uncompressed layers, so the same diff_ids). Neither tool writes a mix by itself;
the mix takes skopeo's zstd blob for the top layer and buildah's gzip blobs for
the rest, in a manifest written here: the reader must tell each layer's
compression from its own bytes, not from the other layers.

- Debian sid's Python 3.14 and 3.15 (`compression.zstd`), inside a sid rootfs,
  read the mix and the all-zstd layout to the same final tree as the gzip
  layout read here;
- an interpreter without `compression.zstd` refuses the mix with one line that
  names the zstd layer's digest and media type.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from pyimgtools.image import ImageError, read_image
from tests.harness.buildah import base_image, buildah
from tests.harness.layered import layered_image
from tests.harness.prereq import require_tools
from tests.harness.sidroot import sid  # noqa: F401 (a fixture)

pytestmark = pytest.mark.main_only

ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# Printed by the image's interpreter: the final tree as JSON (the pyz on sys.path).
TREE = ("import json, sys; sys.path.insert(0, '/usr/local/bin/pyimgtools'); "
        "from pyimgtools.image import read_image; "
        "print(json.dumps({p: [e.layer, e.type, e.size, e.mode, e.uid, e.gid, e.mtime, e.linkname] "
        "for p, e in read_image(sys.argv[1]).tree.items()}))")


def _tree(img):
    return {p: [e.layer, e.type, e.size, e.mode, e.uid, e.gid, e.mtime, e.linkname]
            for p, e in img.tree.items()}


def _blob(layout, digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))


def _manifest(layout):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    (desc,) = index["manifests"]
    with open(_blob(layout, desc["digest"])) as f:
        return desc, json.load(f)


def _mixed_layout(gz, zst, dest):
    """gz's manifest with its top layer taken from zst: a layout in `dest`."""
    desc, manifest = _manifest(gz)
    _zdesc, zmanifest = _manifest(zst)
    assert manifest["config"]["digest"] == zmanifest["config"]["digest"]  # same diff_ids
    manifest["layers"][-1] = zmanifest["layers"][-1]
    os.makedirs(os.path.join(dest, "blobs", "sha256"))
    for layout, d in [(gz, manifest["config"])] + [
            (zst if layer["mediaType"] == ZSTD else gz, layer) for layer in manifest["layers"]]:
        shutil.copyfile(_blob(layout, d["digest"]), _blob(dest, d["digest"]))
    body = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    with open(_blob(dest, digest), "wb") as f:
        f.write(body)
    shutil.copyfile(os.path.join(gz, "oci-layout"), os.path.join(dest, "oci-layout"))
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [dict(desc, digest=digest, size=len(body))]}, f)
    return manifest


def test_gzip_and_zstd_layers_read_to_the_same_tree(builder, sid, tmp_path):  # noqa: F811
    require_tools("skopeo")
    image = layered_image(builder, base_image("bookworm"),
                          ("echo top > /top-layer && chmod 0600 /etc/hostname",))
    gz, zst, mix = (str(tmp_path / n) for n in ("gz", "zst", "mix"))
    buildah("push", "--quiet", image, "oci:" + gz)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-compress-format", "zstd",
                    "oci:" + gz, "oci:" + zst], check=True, capture_output=True)
    assert {layer["mediaType"] for layer in _manifest(gz)[1]["layers"]} == {GZIP}
    assert {layer["mediaType"] for layer in _manifest(zst)[1]["layers"]} == {ZSTD}
    manifest = _mixed_layout(gz, zst, mix)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [GZIP, ZSTD]

    expected = _tree(read_image(gz))
    assert "/top-layer" in expected and expected["/top-layer"][0] == 1

    if sys.version_info < (3, 14):
        with pytest.raises(ImageError) as caught:
            read_image(mix)
        message = str(caught.value)
        assert "\n" not in message
        assert manifest["layers"][-1]["digest"] in message and ZSTD in message, message

    for name, layout in (("mix", mix), ("zst", zst)):
        shutil.copytree(layout, sid.host("/tmp/" + name))
    for python in ("/usr/bin/python3.14", "/usr/bin/python3.15"):
        for name in ("mix", "zst"):
            out = sid.run([python, "-c", TREE, "/tmp/" + name]).stdout
            assert json.loads(out) == expected, (python, name)
