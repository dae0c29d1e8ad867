"""Docker save and OCI archives built with tarfile, laid out as the specs say
(docker's image/spec/v1.2 `docker save` format; the OCI image-layout,
image-index, manifest and layer specs), independent of pyimgtools' reader.
Shared by tests/unit/test_image_archive.py and test_audit_image_view.py.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def F(name, data=b"", mode=0o644, uid=0, gid=0):
    return ("file", name, data, mode, uid, gid)


def D(name, mode=0o755):
    return ("dir", name, None, mode, 0, 0)


def S(name, target):
    return ("sym", name, target, 0o777, 0, 0)


def L(name, target):
    return ("link", name, target, 0o644, 0, 0)


def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1700000000
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            if kind in ("sym", "link"):
                info.linkname = data
            tar.addfile(info)
    return buf.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(layers, history=None, arch="amd64", variant=None, env=("PATH=/usr/bin",),
               user="app", workdir="/app"):
    cfg = {"architecture": arch, "os": "linux",
           "config": {"Env": list(env), "User": user, "WorkingDir": workdir},
           "rootfs": {"type": "layers", "diff_ids": [sha(lt) for lt in layers]},
           "history": history if history is not None else
           [{"created_by": "step %d" % i} for i in range(len(layers))]}
    if variant:
        cfg["variant"] = variant
    return cfg


def add_member(tar, name, data=None, kind="file", linkname=""):
    info = tarfile.TarInfo(name)
    if kind == "sym":
        info.type, info.linkname = tarfile.SYMTYPE, linkname
        tar.addfile(info)
    elif kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def docker_save(path, layers, config=None, layer_paths=None, manifest=None):
    """Legacy `docker save`: <id>/layer.tar ..., <config hex>.json, manifest.json last."""
    config = config or config_for(layers)
    cdata = json.dumps(config).encode()
    cname = hashlib.sha256(cdata).hexdigest() + ".json"
    paths = layer_paths or ["%064x/layer.tar" % (i + 1) for i in range(len(layers))]
    with tarfile.open(path, "w") as tar:
        for p, data in zip(paths, layers):
            if data is not None:
                add_member(tar, p.split("/")[0], kind="dir")
                add_member(tar, p, data)
        add_member(tar, cname, cdata)
        doc = manifest or [{"Config": cname, "RepoTags": ["t:1"], "Layers": paths}]
        add_member(tar, "manifest.json", json.dumps(doc).encode())
    return path


def write_blob(top, data):
    d = os.path.join(top, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, sha(data)[7:]), "wb") as f:
        f.write(data)
    return {"digest": sha(data), "size": len(data)}


def oci_image(top, layers, config=None, compress=False, digests=None):
    """Write config, layer blobs and the manifest; returns the manifest descriptor."""
    config = config or config_for(layers)
    cdesc = write_blob(top, json.dumps(config).encode())
    cdesc["mediaType"] = OCI_CONFIG
    ldescs = []
    for i, lt in enumerate(layers):
        blob = gzip.compress(lt, mtime=0) if compress else lt
        desc = write_blob(top, blob)
        desc["mediaType"] = OCI_LAYER + ("+gzip" if compress else "")
        if digests and digests[i]:
            desc["digest"] = digests[i]
        ldescs.append(desc)
    man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": ldescs}
    mdesc = write_blob(top, json.dumps(man).encode())
    mdesc["mediaType"] = OCI_MANIFEST
    return mdesc


def oci_layout(top, descriptors):
    os.makedirs(top, exist_ok=True)
    with open(os.path.join(top, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(top, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}, f)
    return top


def oci_dir(top, layers, **kw):
    return oci_layout(str(top), [oci_image(str(top), layers, **kw)])


def tar_dir(top, path):
    """An oci-archive: the layout directory's files in one tar."""
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(top)):
            tar.add(os.path.join(top, name), name)
    return path
