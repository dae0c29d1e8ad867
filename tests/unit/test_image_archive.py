"""pyimgtools.image: reading docker save / OCI archives and layouts without unpacking.

Archives are built here with tarfile, laid out as the specs say (docker's
image/spec/v1.2 `docker save` format; the OCI image-layout, image-index,
manifest and layer specs), independent of the reader. Expected trees and
byte counts are worked out by hand from the spec's whiteout rules.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

import pytest

from pyimgtools import errors
from pyimgtools.image import ImageError, read_image
from pyimgtools.image import manifest as manifest_mod

from tests.harness.imagearchive import (  # noqa: F401 - builders from the specs
    OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, D, F, L, S, add_member, config_for,
    docker_save, layer_tar, oci_dir, oci_image, oci_layout, sha, tar_dir, write_blob)


def summary(img):
    return {p: (e.layer, e.type, e.size, e.mode) for p, e in img.tree.items()}


def waste(img):
    return sorted((w.path, w.size, w.layer, w.removed_by, w.how) for w in img.waste)


# -- the layers of the main example -------------------------------------------------

BASE = layer_tar([D("etc"), F("etc/a", b"0123456789"), D("usr"), D("usr/bin"),
                  F("usr/bin/x", b"x" * 20, 0o755), S("usr/bin/y", "x")])
ADD_BIG = layer_tar([D("opt"), F("opt/big", b"B" * 100)])
DEL = layer_tar([D("etc"), F("etc/.wh.a"), D("opt"), F("opt/.wh.big")])

# base: 10 + 20 = 30 bytes; layer 1: 100; layer 2: whiteouts only, 0 bytes.
EXPECTED_TREE = {
    "/etc": (2, "dir", 0, 0o755),   # a directory belongs to the last layer that lists it
    "/usr": (0, "dir", 0, 0o755), "/usr/bin": (0, "dir", 0, 0o755),
    "/usr/bin/x": (0, "file", 20, 0o755), "/usr/bin/y": (0, "symlink", 0, 0o777),
    "/opt": (2, "dir", 0, 0o755),
}
EXPECTED_WASTE = [("/etc/a", 10, 0, 2, "deleted"), ("/opt/big", 100, 1, 2, "deleted")]


def check_main_example(img):
    assert summary(img) == EXPECTED_TREE
    assert img.tree["/usr/bin/y"].linkname == "x"
    assert waste(img) == EXPECTED_WASTE
    assert [(l.bytes_added, l.wasted_bytes, l.bytes_removed) for l in img.layers] == \
        [(30, 10, 0), (100, 100, 0), (0, 0, 110)]
    assert img.total_bytes == 130 and img.useful_bytes == 20
    assert img.efficiency == pytest.approx(20 / 130)
    assert img.env == ["PATH=/usr/bin"] and img.user == "app" and img.workdir == "/app"


HISTORY = [{"created_by": "ADD rootfs.tar /"}, {"created_by": "ENV LANG=C", "empty_layer": True},
           {"created_by": "RUN add big"}, {"created_by": "USER app", "empty_layer": True},
           {"created_by": "RUN rm big"}]


def test_docker_save_tree_waste_and_history(tmp_path):
    layers = [BASE, ADD_BIG, DEL]
    path = docker_save(str(tmp_path / "img.tar"), layers, config_for(layers, HISTORY))
    img = read_image(path)
    check_main_example(img)
    assert [l.created_by for l in img.layers] == ["ADD rootfs.tar /", "RUN add big", "RUN rm big"]
    assert img.history == [("ADD rootfs.tar /", 0), ("ENV LANG=C", None), ("RUN add big", 1),
                           ("USER app", None), ("RUN rm big", 2)]


@pytest.mark.parametrize("compress", [False, True])
def test_oci_dir_and_archive_give_the_same_index(tmp_path, compress):
    layers = [BASE, ADD_BIG, DEL]
    top = oci_dir(tmp_path / "layout", layers, compress=compress)
    check_main_example(read_image(top))
    check_main_example(read_image(tar_dir(top, str(tmp_path / "oci.tar"))))
    if compress:
        assert read_image(top).layers[0].media_type == OCI_LAYER + "+gzip"


def test_stdin_stream_with_manifest_last_spools_and_cleans_up(tmp_path, monkeypatch):
    layers = [BASE, ADD_BIG, DEL]
    path = docker_save(str(tmp_path / "img.tar"), layers)
    with open(path, "rb") as f:
        data = f.read()

    class Stdin:
        buffer = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", Stdin)
    spool = tmp_path / "spool"
    spool.mkdir()
    check_main_example(read_image("-", tmpdir=str(spool)))
    assert os.listdir(str(spool)) == []


def test_gzipped_docker_save_file_is_read(tmp_path):
    layers = [BASE, ADD_BIG, DEL]
    path = docker_save(str(tmp_path / "img.tar"), layers)
    with open(path, "rb") as f, open(str(tmp_path / "img.tar.gz"), "wb") as out:
        out.write(gzip.compress(f.read()))
    check_main_example(read_image(str(tmp_path / "img.tar.gz")))


def test_opaque_directory_hides_lower_children_only(tmp_path):
    lower = layer_tar([D("d"), F("d/x", b"12345"), F("d/y", b"1234567"), D("d/sub"),
                       F("d/sub/z", b"123"), F("keep", b"k")])
    # the new child comes before the opaque marker: same-layer entries stay whatever the order
    upper = layer_tar([D("d"), F("d/new", b"nn"), F("d/.wh..wh..opq"), D("d/sub2")])
    img = read_image(oci_dir(tmp_path / "l", [lower, upper]))
    assert summary(img) == {"/d": (1, "dir", 0, 0o755), "/d/new": (1, "file", 2, 0o644),
                            "/d/sub2": (1, "dir", 0, 0o755), "/keep": (0, "file", 1, 0o644)}
    assert waste(img) == [("/d/sub/z", 3, 0, 1, "deleted"), ("/d/x", 5, 0, 1, "deleted"),
                          ("/d/y", 7, 0, 1, "deleted")]
    assert not any(".wh." in p for p in img.tree)


def test_whiteout_of_a_directory_removes_its_subtree_but_not_same_layer_entries(tmp_path):
    lower = layer_tar([D("a"), D("a/b"), F("a/b/c", b"ccc"), F("a/d", b"d")])
    upper = layer_tar([F("a/e", b"ee"), F("a/.wh.b")])
    img = read_image(oci_dir(tmp_path / "l", [lower, upper]))
    assert set(img.tree) == {"/a", "/a/d", "/a/e"}
    assert waste(img) == [("/a/b/c", 3, 0, 1, "deleted")]


def test_hardlinks_keep_bytes_alive_until_the_last_name_goes(tmp_path):
    l0 = layer_tar([F("a", b"abcd"), L("b", "a")])
    l1 = layer_tar([F(".wh.a")])
    l2 = layer_tar([F(".wh.b")])
    img = read_image(oci_dir(tmp_path / "one", [l0, l1]))
    assert summary(img) == {"/b": (0, "hardlink", 4, 0o644)}
    assert img.tree["/b"].linkname == "/a"
    assert img.waste == [] and img.useful_bytes == 4 and img.total_bytes == 4
    img = read_image(oci_dir(tmp_path / "two", [l0, l1, l2]))
    assert img.tree == {} and waste(img) == [("/a", 4, 0, 2, "deleted")]


def test_overwrite_chmod_and_chown_re_adds_are_waste(tmp_path):
    l0 = layer_tar([F("f", b"x" * 100), F("g", b"y" * 30), F("h", b"z" * 7), F("i", b"same")])
    l1 = layer_tar([F("f", b"w" * 50), F("g", b"y" * 30, mode=0o755), F("h", b"z" * 7, uid=1000),
                    F("i", b"same")])
    img = read_image(oci_dir(tmp_path / "l", [l0, l1]))
    assert summary(img) == {"/f": (1, "file", 50, 0o644), "/g": (1, "file", 30, 0o755),
                            "/h": (1, "file", 7, 0o644), "/i": (1, "file", 4, 0o644)}
    assert img.tree["/h"].uid == 1000
    assert waste(img) == [("/f", 100, 0, 1, "overwritten"), ("/g", 30, 0, 1, "chmod"),
                          ("/h", 7, 0, 1, "chown"), ("/i", 4, 0, 1, "re-added")]
    # dive's efficiency: final bytes / every file entry of every layer = 91 / 232
    assert img.efficiency == pytest.approx(91 / 232)


@pytest.mark.parametrize("form", ["docker-archive", "docker-gzip-stream", "oci-dir", "oci-gzip"])
def test_same_size_rewrites_are_told_from_chmod_copies_in_every_form(tmp_path, form):
    """Uncompressed layers compute a file's CRC only when a later layer brings one of
    the same size (reading its bytes again from the archive); compressed ones as they
    stream. Each way, same bytes + new mode is a chmod copy, new bytes are a rewrite."""
    l0 = layer_tar([F("a", b"1" * 40), F("b", b"2" * 40), D("d"), F("d/c", b"3" * 9)])
    l1 = layer_tar([F("pad", b"p" * 700), F("a", b"1" * 40, mode=0o600),
                    F("b", b"X" * 40, mode=0o600), F("d/c", b"3" * 9, gid=5)])
    l2 = layer_tar([F("a", b"1" * 40, mode=0o600)])
    layers = [l0, l1, l2]
    if form == "docker-archive":
        src = docker_save(str(tmp_path / "a.tar"), layers)
    elif form == "docker-gzip-stream":
        plain = docker_save(str(tmp_path / "a.tar"), layers)
        src = str(tmp_path / "a.tar.gz")
        with open(plain, "rb") as f, open(src, "wb") as out:
            out.write(gzip.compress(f.read()))
    else:
        src = oci_dir(tmp_path / "l", layers, compress=form == "oci-gzip")
    img = read_image(src)
    assert waste(img) == [("/a", 40, 0, 1, "chmod"), ("/a", 40, 1, 2, "re-added"),
                          ("/b", 40, 0, 1, "overwritten"), ("/d/c", 9, 0, 1, "chown")]


def test_file_replacing_a_directory_drops_the_subtree(tmp_path):
    l0 = layer_tar([D("p"), F("p/q", b"qq")])
    l1 = layer_tar([F("p", b"file")])
    img = read_image(oci_dir(tmp_path / "l", [l0, l1]))
    assert summary(img) == {"/p": (1, "file", 4, 0o644)}
    assert waste(img) == [("/p/q", 2, 0, 1, "overwritten")]


def test_wanted_contents_are_the_final_trees(tmp_path):
    l0 = layer_tar([F("etc/os-release", b"ID=old\n"), F("bin/e", b"\x7fELF" + b"\0" * 60),
                    F("gone", b"bye")])
    l1 = layer_tar([F("etc/os-release", b"ID=debian\n"), F(".wh.gone")])
    top = oci_dir(tmp_path / "l", [l0, l1])

    def want(path, size, mode):
        return {"/etc/os-release": True, "/bin/e": 4, "/gone": True}.get(path, False)
    img = read_image(top, want=want)
    assert img.read("/etc/os-release") == b"ID=debian\n"
    assert img.read("/bin/e") == b"\x7fELF"
    assert img.read("/gone") is None and img.read("/nope") is None
    assert img._tree.kept_bytes == len(b"ID=debian\n") + 4   # dropped as soon as replaced

    seen = []
    read_image(top, want=want, on_content=lambda layer, path, data: seen.append((layer, path, data)))
    assert seen == [(0, "/etc/os-release", b"ID=old\n"), (0, "/bin/e", b"\x7fELF"),
                    (0, "/gone", b"bye"), (1, "/etc/os-release", b"ID=debian\n")]
    with pytest.raises(ImageError, match="exceed 5 bytes"):
        read_image(top, want=want, keep_cap=5)


# -- multi-platform indexes ------------------------------------------------------------

def multi(top, nested=False):
    top = str(top)
    os.makedirs(top, exist_ok=True)
    descs = []
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v7")):
        one = layer_tar([F("arch", arch.encode())])
        d = oci_image(top, [one], config_for([one], arch=arch, variant=variant))
        d["platform"] = {"os": "linux", "architecture": arch}
        if variant:
            d["platform"]["variant"] = variant
        descs.append(d)
    if nested:
        idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}).encode()
        d = write_blob(top, idx)
        d["mediaType"] = OCI_INDEX
        descs = [d]
    return oci_layout(top, descs)


@pytest.mark.parametrize("nested", [False, True])
def test_platform_selection(tmp_path, nested, monkeypatch):
    top = multi(tmp_path / "m", nested)

    def arch_of(**kw):
        img = read_image(top, want=lambda p, s, m: True, **kw)
        return img.read("/arch"), img.platform
    assert arch_of(platform="linux/arm64") == (b"arm64", "linux/arm64/v8")   # v8 is arm64's default
    assert arch_of(platform="linux/arm64/v8") == (b"arm64", "linux/arm64/v8")
    assert arch_of(platform="linux/arm/v7") == (b"arm", "linux/arm/v7")
    assert arch_of(platform="linux/amd64") == (b"amd64", "linux/amd64")
    monkeypatch.setattr(manifest_mod, "host_platform", lambda: "linux/arm64")
    assert arch_of() == (b"arm64", "linux/arm64/v8")
    with pytest.raises(ImageError) as exc:
        read_image(top, platform="linux/s390x")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "linux/s390x" in msg and "linux/amd64, linux/arm/v7, linux/arm64/v8" in msg


def test_single_image_without_platform_is_taken_and_checked_when_asked(tmp_path):
    path = docker_save(str(tmp_path / "img.tar"), [BASE])
    assert "/etc/a" in read_image(path).tree
    assert "/etc/a" in read_image(path, platform="linux/amd64").tree
    with pytest.raises(ImageError, match="no image for platform linux/arm64/v8.*linux/amd64"):
        read_image(path, platform="linux/arm64")


# -- malformed input ----------------------------------------------------------------

def one_line_error(*args, **kw):
    with pytest.raises(ImageError) as exc:
        read_image(*args, **kw)
    assert isinstance(exc.value, errors.LibraryError)
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def test_layer_digest_mismatch_names_the_layer(tmp_path):
    wrong = "sha256:" + "0" * 64
    top = oci_dir(tmp_path / "l", [BASE, ADD_BIG], digests=[None, wrong])
    # the blob is stored under its real digest; put the bytes under the wrong name too
    os.link(os.path.join(top, "blobs", "sha256", sha(ADD_BIG)[7:]),
            os.path.join(top, "blobs", "sha256", "0" * 64))
    msg = one_line_error(top)
    assert wrong in msg and "digest mismatch" in msg and "layer 1" in msg

    layers = [BASE, ADD_BIG]
    cfg = config_for(layers)
    cfg["rootfs"]["diff_ids"][0] = wrong
    msg = one_line_error(docker_save(str(tmp_path / "d.tar"), layers, cfg))
    assert wrong in msg and "digest mismatch" in msg


def test_truncated_layers(tmp_path):
    gz = gzip.compress(ADD_BIG, mtime=0)
    top = str(tmp_path / "l")
    desc = oci_image(top, [ADD_BIG], compress=True)
    with open(os.path.join(top, "blobs", "sha256", sha(gz)[7:]), "r+b") as f:
        f.truncate(len(gz) // 2)
    oci_layout(top, [desc])
    assert "truncated" in one_line_error(top)

    cut = ADD_BIG[:700]   # in the middle of opt/big's data
    cfg = config_for([ADD_BIG])
    msg = one_line_error(docker_save(str(tmp_path / "d.tar"), [cut], cfg))
    assert "truncated" in msg and "layer 0" in msg


@pytest.mark.parametrize("entries", [
    [F("../etc/passwd", b"x")],
    [F("a/../../x", b"x")],
    [F("/../etc/.wh.passwd")],
    [F("../.wh..wh..opq")],
    [F("ok", b"o"), L("h", "../../etc/shadow")],
    [F("etc/.wh...")],
])
def test_paths_escaping_the_root_are_refused(tmp_path, entries):
    top = oci_dir(tmp_path / "l", [BASE, layer_tar(entries)])
    msg = one_line_error(top)
    assert "layer 1" in msg


def test_absolute_entry_names_stay_inside_the_root(tmp_path):
    img = read_image(oci_dir(tmp_path / "l", [layer_tar([F("/etc/abs", b"a")])]))
    assert set(img.tree) == {"/etc/abs"}


def test_manifest_pointing_outside_the_archive(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "layer.tar").write_bytes(BASE)
    (tmp_path / "d").mkdir()
    path = docker_save(str(tmp_path / "d" / "img.tar"), [BASE], layer_paths=["../x/layer.tar"])
    assert "outside the archive" in one_line_error(path)
    path = docker_save(str(tmp_path / "abs.tar"), [BASE], layer_paths=["/etc/passwd"])
    assert "outside the archive" in one_line_error(path)


def test_symlinked_layer_paths(tmp_path):
    layers = [BASE]
    cfg = json.dumps(config_for(layers)).encode()
    cname = hashlib.sha256(cfg).hexdigest() + ".json"

    def archive(name, target):
        path = str(tmp_path / name)
        with tarfile.open(path, "w") as tar:
            add_member(tar, "real/layer.tar", BASE)
            add_member(tar, "l/layer.tar", kind="sym", linkname=target)
            add_member(tar, cname, cfg)
            add_member(tar, "manifest.json", json.dumps(
                [{"Config": cname, "Layers": ["l/layer.tar"]}]).encode())
        return path
    for target in ("/etc/passwd", "../../etc/passwd", "../../../outside"):
        assert "outside the archive" in one_line_error(archive("bad.tar", target))
    # old docker save links a layer saved twice to its first copy: inside, so followed
    assert "/etc/a" in read_image(archive("dup.tar", "../real/layer.tar")).tree

    # an OCI layout directory whose blob is a symlink on the host: never followed
    top = oci_dir(tmp_path / "lay", layers)
    blob = os.path.join(top, "blobs", "sha256", sha(BASE)[7:])
    outside = str(tmp_path / "outside.tar")
    os.rename(blob, outside)
    os.symlink(outside, blob)
    assert "symlink" in one_line_error(top)


def test_not_an_image(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "neither" in one_line_error(str(tmp_path / "empty"))
    assert "No such file" in one_line_error(str(tmp_path / "missing.tar"))
    (tmp_path / "junk.tar").write_bytes(b"hello" * 200)
    one_line_error(str(tmp_path / "junk.tar"))
    top = oci_layout(str(tmp_path / "badjson"), [])
    with open(os.path.join(top, "index.json"), "w") as f:
        f.write("{not json")
    assert "not valid JSON" in one_line_error(top)


def test_zstd_layer_without_compression_zstd(tmp_path):
    try:
        import compression.zstd  # noqa: F401
        pytest.skip("this Python has compression.zstd")
    except ImportError:
        pass
    top = str(tmp_path / "z")
    blob = b"\x28\xb5\x2f\xfd" + b"\0" * 32   # a zstd frame's magic is enough to be told
    desc = write_blob(top, blob)
    desc["mediaType"] = OCI_LAYER + "+zstd"
    cfg = write_blob(top, json.dumps(config_for([b""])).encode())
    cfg["mediaType"] = OCI_CONFIG
    man = write_blob(top, json.dumps({"schemaVersion": 2, "config": cfg, "layers": [desc]}).encode())
    man["mediaType"] = OCI_MANIFEST
    msg = one_line_error(oci_layout(top, [man]))
    assert desc["digest"] in msg and OCI_LAYER + "+zstd" in msg and "compression.zstd" in msg


def test_zstd_layers_when_the_python_has_compression_zstd(tmp_path):
    try:
        from compression import zstd
    except ImportError:
        pytest.skip("needs compression.zstd (Python 3.14+; runs in the sid rootfs)")
    layers = [BASE, ADD_BIG, DEL]
    top = str(tmp_path / "z")
    descs = []
    for i, lt in enumerate(layers):
        # two frames for the middle layer: readers must go on after the first one
        blob = zstd.compress(lt) if i != 1 else zstd.compress(lt[:1024]) + zstd.compress(lt[1024:])
        d = write_blob(top, blob)
        d["mediaType"] = OCI_LAYER + "+zstd"
        descs.append(d)
    cfg = write_blob(top, json.dumps(config_for(layers)).encode())
    cfg["mediaType"] = OCI_CONFIG
    man = write_blob(top, json.dumps({"schemaVersion": 2, "config": cfg, "layers": descs}).encode())
    man["mediaType"] = OCI_MANIFEST
    check_main_example(read_image(oci_layout(top, [man])))


@pytest.mark.parametrize("index", [
    [], {"manifests": {"a": 1}}, {"manifests": [{"digest": 7}]},
    {"manifests": [{"digest": "sha256:" + "a" * 64, "platform": {"os": ["linux"], "architecture": 1}}],
     "x": 0},
])
def test_json_of_the_wrong_shape(tmp_path, index):
    top = oci_layout(str(tmp_path / "j"), [])
    with open(os.path.join(top, "index.json"), "w") as f:
        json.dump(index, f)
    one_line_error(top)


def test_hardlinked_symlink_is_a_symlink(tmp_path):
    img = read_image(oci_dir(tmp_path / "l", [layer_tar([S("s", "target"), L("t", "s")])]))
    assert (img.tree["/t"].type, img.tree["/t"].linkname) == ("symlink", "target")


@pytest.mark.parametrize("with_index", [True, False])
def test_docker_25_save_layout_with_blobs(tmp_path, with_index):
    """Docker >= 25 saves blobs/sha256/... with an OCI index.json and a manifest.json
    whose Config and Layers name those blobs."""
    layers = [BASE, ADD_BIG, DEL]
    top = str(tmp_path / "save")
    config = config_for(layers)
    oci_dir(top, layers, config=config)
    cname = "blobs/sha256/" + hashlib.sha256(json.dumps(config).encode()).hexdigest()
    with open(os.path.join(top, "manifest.json"), "w") as f:
        json.dump([{"Config": cname, "RepoTags": ["app:1"],
                    "Layers": ["blobs/sha256/" + sha(lt)[7:] for lt in layers]}], f)
    if not with_index:
        os.unlink(os.path.join(top, "index.json"))
    check_main_example(read_image(tar_dir(top, str(tmp_path / "save.tar"))))


# -- tar dialects the layer reader must parse (written by tarfile, read by ours) ----------

LONG = "usr/lib/python3/dist-packages/" + "very_long_directory_name/" * 6 + "m\u00f6dule.py"


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_formats_long_names_and_big_ids(tmp_path, fmt):
    name = LONG if fmt != tarfile.USTAR_FORMAT else "usr/" + "d" * 120 + "/f.py"  # ustar: prefix
    uid = 3000000 if fmt != tarfile.USTAR_FORMAT else 1000    # > 0o7777777: base-256 / pax
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid, info.mode, info.mtime = 5, uid, 7, 0o4755, 1234567890
        tar.addfile(info, io.BytesIO(b"hello"))
        link = tarfile.TarInfo("lnk")
        target = "/" + name if fmt != tarfile.USTAR_FORMAT else "../x/f.py"  # ustar: 100 bytes
        link.type, link.linkname = tarfile.SYMTYPE, target
        tar.addfile(link)
    img = read_image(oci_dir(tmp_path / "l", [buf.getvalue()]), want=lambda p, s, m: True)
    e = img.tree["/" + name]
    assert (e.type, e.size, e.uid, e.gid, e.mode, e.mtime) == ("file", 5, uid, 7, 0o4755, 1234567890)
    assert img.read("/" + name) == b"hello"
    assert img.tree["/lnk"].linkname == target


def test_pax_global_header_applies_to_later_members(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"uid": "4242"}) as tar:
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    img = read_image(oci_dir(tmp_path / "l", [buf.getvalue()]))
    assert img.tree["/f"].uid == 4242


def test_corrupt_tar_header_checksum(tmp_path):
    data = bytearray(BASE)
    data[1536 + 10] ^= 0x55           # inside the third member's header
    cfg = config_for([bytes(data)])
    msg = one_line_error(docker_save(str(tmp_path / "d.tar"), [bytes(data)], cfg))
    assert "checksum" in msg and "layer 0" in msg


def test_named_pipe_is_read_as_a_stream(tmp_path):
    import threading
    path = docker_save(str(tmp_path / "img.tar"), [BASE, ADD_BIG, DEL])
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)

    def feed():
        with open(path, "rb") as src, open(fifo, "wb") as dst:
            dst.write(src.read())
    writer = threading.Thread(target=feed)
    writer.start()
    try:
        check_main_example(read_image(fifo, tmpdir=str(tmp_path)))
    finally:
        writer.join()
    assert sorted(os.listdir(str(tmp_path))) == ["fifo", "img.tar"]


@pytest.mark.parametrize("form", ["docker", "oci-gzip"])
def test_corrupted_archives_give_an_image_error_or_the_image(tmp_path, form):
    """Random byte flips and cuts (fixed seed): an ImageError with one line, never another exception."""
    import random
    layers = [BASE, ADD_BIG, DEL]
    if form == "docker":
        src = docker_save(str(tmp_path / "a.tar"), layers)
    else:
        src = tar_dir(oci_dir(tmp_path / "o", layers, compress=True), str(tmp_path / "a.tar"))
    with open(src, "rb") as f:
        data = f.read()
    rng = random.Random(16)
    path = str(tmp_path / "x.tar")
    for _ in range(200):
        b = bytearray(data)
        for _ in range(rng.choice([1, 2, 8])):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.2:
            b = b[:rng.randrange(len(b))]
        with open(path, "wb") as f:
            f.write(b)
        try:
            read_image(path)
        except ImageError as exc:
            assert "\n" not in str(exc)
