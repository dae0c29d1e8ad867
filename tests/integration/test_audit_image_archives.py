"""`audit IMAGE` on the examples/audit images exported by `buildah push`.

Each image is built once (Dockerfile.dirty: one instance of every check;
Dockerfile.clean: the same Python finished with pyimgtools' commands) and
pushed as docker-archive:, oci-archive: and oci:. The expected findings come
from `audit --root` on the image's buildah mount with the image's Env (buildah
inspect): the same ids, severities, paths and bytes per finding from every
archive form and from stdin. That makes the mount the proof that the image
view (pyimgtools/image/view.py) holds every content a check reads: a check
reading a sparse placeholder would differ. The layer findings are the image's
own: compared with buildah's layer list (buildah inspect) and with what the
planted steps did (one RUN adds 30 MiB, the next deletes it), not with audit.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli
from tests.harness.auditimage import comparable, context_with_python, image_env_file
from tests.harness.buildah import base_image, buildah
from tests.harness.layered import layered_image

pytestmark = pytest.mark.main_only

IMAGE_ONLY = {"layer-waste", "layer-efficiency"}


def exports(image, tmp_path):
    forms = {"docker-archive": str(tmp_path / "docker.tar"),
             "oci-archive": str(tmp_path / "oci.tar"), "oci": str(tmp_path / "oci")}
    for transport, dest in forms.items():
        buildah("push", "--quiet", image, "%s:%s" % (transport, dest))
    return forms


def audit_json(*args, stdin=None):
    if stdin is None:
        proc = run_cli("audit", *args, "--json")
    else:
        with open(stdin, "rb") as f:
            proc = subprocess.run([sys.executable, "-m", "pyimgtools", "audit", *args, "--json"],
                                  stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(os.environ, PYTHONPATH=REPO), text=True)
    assert proc.returncode in (0, 100), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def without_layers(doc):
    got = comparable(doc)
    return {k: v for k, v in got.items() if k not in IMAGE_ONLY}


def agree(builder, image, tmp_path):
    """(the --root document, {form: the IMAGE document}) after asserting they agree."""
    env_file = image_env_file(image, str(tmp_path / "env.txt"))
    with builder.mounted(image) as mnt:
        mounted = audit_json("--root", mnt, "--env", env_file)
    forms = exports(image, tmp_path)
    docs = {form: audit_json(path) for form, path in forms.items()}
    docs["stdin"] = audit_json("-", stdin=forms["docker-archive"])
    expected = comparable(mounted)
    assert not IMAGE_ONLY & set(expected)
    # buildah's own list of the image's layers (digests of the uncompressed tars)
    diff_ids = json.loads(buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["rootfs"]["diff_ids"]
    for form, doc in docs.items():
        assert without_layers(doc) == expected, form
        layers = doc["results"]["layers"]
        assert len(layers) == len(diff_ids), form
        if form in ("docker-archive", "stdin"):
            assert [l["digest"] for l in layers] == diff_ids
        info = doc["results"]["image"]
        assert info["total_bytes"] == sum(l["size"] for l in layers)
        assert info["wasted_bytes"] == sum(l["bytes_wasted"] for l in layers)
        # every finding with paths names a layer (or one per path); none in --root mode
        for f in doc["results"]["findings"]:
            assert "layer" in f or "path_layers" in f, f["id"]
    for f in mounted["results"]["findings"]:
        assert "layer" not in f and "path_layers" not in f
    return mounted, docs


def test_dirty_image_archives_agree_with_the_mount(builder, pyz, tmp_path):
    context = context_with_python(tmp_path)
    image = builder.build(context, dockerfile="Dockerfile.dirty",
                          extra_files={"pyimgtools.pyz": pyz})
    mounted, docs = agree(builder, image, tmp_path)
    # the planted findings are there (test_audit_image.py checks them in detail)
    assert {"security-updates", "unresolved-libs", "dead-weight", "stdlib-stale-pyc",
            "apt-lists"} <= {f["id"] for f in mounted["findings"]}
    for doc in docs.values():
        got = {f["id"]: f for f in doc["results"]["findings"]}
        # /usr/local/lib/libplanted.so came with the last layer (the RUN that built it)
        last = len(doc["results"]["layers"]) - 1
        path_layers = got["unresolved-libs"].get("layer") or {}
        assert path_layers.get("index") == last, got["unresolved-libs"]


def test_clean_image_archives_agree_with_the_mount(builder, pyz, tmp_path):
    context = context_with_python(tmp_path)
    image = builder.build(context, dockerfile="Dockerfile.clean",
                          extra_files={"pyimgtools.pyz": pyz})
    mounted, docs = agree(builder, image, tmp_path)
    for doc in [mounted] + list(docs.values()):
        assert [f["id"] for f in doc["results"]["findings"] if f["severity"] == "error"] == []


BIG = 30 << 20
ADD, DELETE = "head -c %d /dev/urandom > /big" % BIG, "rm /big"


def test_waste_added_in_one_step_and_deleted_in_the_next(builder, tmp_path):
    image = layered_image(builder, base_image("bookworm"), (ADD, DELETE))
    archive = str(tmp_path / "oci.tar")
    buildah("push", "--quiet", image, "oci-archive:" + archive)
    doc = audit_json(archive, "--max-waste", "20M")
    got = {f["id"]: f for f in doc["findings"]}
    waste = got["layer-waste"]
    assert waste["severity"] == "warn" and waste["bytes"] >= BIG
    big = [g for g in waste["data"]["groups"] if {"path": "/big", "bytes": BIG} in g["paths"]]
    assert len(big) == 1 and big[0]["how"] == "deleted"
    assert ADD in big[0]["added_by"] and DELETE in big[0]["removed_by_step"]
    assert any(ADD in line and DELETE in line for line in waste["evidence"])
    layers = doc["results"]["layers"]
    assert ADD in layers[big[0]["added_in"]]["created_by"]
    assert layers[big[0]["added_in"]]["bytes_wasted"] >= BIG
    assert doc["results"]["image"]["wasted_bytes"] >= BIG
    text = run_cli("audit", archive, "--fail-on", "never").stdout
    assert "layer-waste" in text and DELETE in text
