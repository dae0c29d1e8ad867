"""Which manifest, config and layers make up the image in a store.

Two layouts: an OCI image layout (oci-layout + index.json + blobs/sha256/...,
also what `docker save` writes since Docker 25 next to its manifest.json) and
the docker save manifest.json (Config + Layers paths, layers verified against
the config's rootfs.diff_ids). Multi-platform indexes are narrowed by platform
as the OCI image index spec describes (os, architecture, variant).
"""

import hashlib
import json
import platform as _platform

from pyimgtools.image.store import ImageError, member_name

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
                 "i686": "386", "armhf": "arm", "armel": "arm", "ppc64el": "ppc64le"}
_MAX_JSON = 64 << 20


class LayerRef:
    """One layer to read: where its blob is and what its bytes must hash to."""

    def __init__(self, name, digest, media_type, size=None, verify_uncompressed=False):
        self.name = name                  # member name in the store
        self.digest = digest              # "sha256:HEX"
        self.media_type = media_type
        self.size = size                  # expected blob size, when the manifest says
        # docker save: the digest is the config's diff_id (of the uncompressed tar)
        self.verify_uncompressed = verify_uncompressed


class Selected:
    def __init__(self, config, layers, platform):
        self.config = config      # parsed image config JSON (dict)
        self.layers = layers      # [LayerRef]
        self.platform = platform  # "os/arch[/variant]" or None


def host_platform():
    machine = _platform.machine().lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    variant = "v7" if machine.startswith("armv7") else ""
    if machine.startswith("armv"):
        arch = "arm"
    return "linux/%s%s" % (arch, "/" + variant if variant else "")


def _norm(os_, arch, variant):
    arch = _ARCH_ALIASES.get(arch, arch)
    variant = variant or ""
    # The spec's defaults: arm64 means v8, arm means v7.
    if arch == "arm64" and variant in ("", "v8", "8"):
        variant = "v8"
    elif arch == "arm" and variant in ("", "v7", "7"):
        variant = "v7"
    return os_, arch, variant


def parse_platform(text):
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError("platform %r: expected OS/ARCH[/VARIANT], e.g. linux/amd64" % text)
    return _norm(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _show(p):
    return "/".join(x for x in p if x)


def _read_json(store, name, where, digest=None, kind=dict):
    name = member_name(name, where)
    with store.open(name) as f:
        data = f.read(_MAX_JSON + 1)
    if len(data) > _MAX_JSON:
        raise ImageError("%s: %s is larger than %d bytes" % (store.label, name, _MAX_JSON))
    if digest is not None:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or hashlib.sha256(data).hexdigest() != hexd:
            raise ImageError("%s: %s does not match its digest %s" % (store.label, name, digest))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageError("%s: %s is not valid JSON (%s)" % (store.label, name, exc)) from None
    if not isinstance(doc, kind):
        raise ImageError("%s: %s is not a JSON %s" % (store.label, name,
                                                      "list" if kind is list else "object"))
    return doc


def blob_name(digest, where):
    if not isinstance(digest, str) or ":" not in digest:
        raise ImageError("%s: invalid digest %r" % (where, digest))
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise ImageError("%s: unsupported or invalid digest %r" % (where, digest))
    return "blobs/sha256/" + hexd


def _candidates(store, index, where, out):
    """Flatten nested indexes into [(descriptor, (os, arch, variant) or None)]."""
    descs = index.get("manifests") or []
    if not isinstance(descs, list):
        raise ImageError("%s: %s: manifests is not a list" % (store.label, where))
    for desc in descs:
        if not isinstance(desc, dict):
            raise ImageError("%s: malformed descriptor in %s" % (store.label, where))
        mt = desc.get("mediaType")
        if mt in INDEX_TYPES:
            name = blob_name(desc.get("digest"), where)
            _candidates(store, _read_json(store, name, where, desc["digest"]), name, out)
            continue
        plat = desc.get("platform")
        key = None
        if isinstance(plat, dict):
            key = _norm(plat.get("os", ""), plat.get("architecture", ""), plat.get("variant"))
        out.append((desc, key))
    return out


def _select_oci(store, platform):
    index = _read_json(store, "index.json", "index.json")
    found = _candidates(store, index, "index.json", [])
    # Attestation manifests (buildkit) carry platform unknown/unknown: not images.
    images = [(d, k) for d, k in found if k is None or k[:2] != ("unknown", "unknown")]
    if not images:
        raise ImageError("%s: index.json lists no image manifest" % store.label)
    if platform is None and len(images) == 1:
        chosen = images[0]
    else:
        want = parse_platform(platform or host_platform())
        match = [(d, k) for d, k in images if k == want]
        if not match:
            held = sorted({_show(k) if k else "unknown" for _, k in images})
            raise ImageError("%s: no image for platform %s; the index holds: %s"
                             % (store.label, _show(want), ", ".join(held)))
        chosen = match[0]
    desc, key = chosen
    mname = blob_name(desc.get("digest"), "index.json")
    manifest = _read_json(store, mname, "index.json", desc["digest"])
    cdesc = manifest.get("config")
    if not isinstance(cdesc, dict):
        raise ImageError("%s: %s has no config descriptor" % (store.label, mname))
    config = _read_json(store, blob_name(cdesc.get("digest"), mname), mname, cdesc.get("digest"))
    layers = []
    ldescs = manifest.get("layers") or []
    if not isinstance(ldescs, list):
        raise ImageError("%s: %s: layers is not a list" % (store.label, mname))
    for ldesc in ldescs:
        if not isinstance(ldesc, dict):
            raise ImageError("%s: malformed layer descriptor in %s" % (store.label, mname))
        digest = ldesc.get("digest")
        layers.append(LayerRef(blob_name(digest, mname), digest, ldesc.get("mediaType", ""),
                               ldesc.get("size")))
    return Selected(config, layers, _show(key) if key else None)


def _select_docker(store, platform):
    doc = _read_json(store, "manifest.json", "manifest.json", kind=list)
    if not doc or not all(isinstance(e, dict) for e in doc):
        raise ImageError("%s: manifest.json lists no image" % store.label)
    if len(doc) > 1:
        tags = [", ".join(e.get("RepoTags") or ["<untagged>"]) for e in doc]
        raise ImageError("%s: the archive holds %d images (%s); save one image per archive"
                         % (store.label, len(doc), "; ".join(tags)))
    entry = doc[0]
    config = _read_json(store, entry.get("Config") or "", "manifest.json Config")
    paths = entry.get("Layers") or []
    rootfs = config.get("rootfs")
    diff_ids = (rootfs.get("diff_ids") if isinstance(rootfs, dict) else None) or []
    if not isinstance(paths, list) or not isinstance(diff_ids, list) or len(diff_ids) != len(paths):
        raise ImageError("%s: manifest.json lists %d layers, the config's rootfs.diff_ids %d"
                         % (store.label, len(paths), len(diff_ids)))
    layers = [LayerRef(member_name(p, "manifest.json Layers"), d, "", None, verify_uncompressed=True)
              for p, d in zip(paths, diff_ids)]
    for ref in layers:
        blob_name(ref.digest, "config rootfs.diff_ids")  # validates the form
    sel = Selected(config, layers, None)
    if platform is not None:
        have = _norm(config.get("os", ""), config.get("architecture", ""), config.get("variant"))
        if have != parse_platform(platform):
            raise ImageError("%s: no image for platform %s; the archive holds: %s"
                             % (store.label, _show(parse_platform(platform)), _show(have)))
        sel.platform = _show(have)
    return sel


def select(store, platform=None):
    """The image in STORE for PLATFORM ("linux/arm64/v8"; None: the only one, else the host's)."""
    if store.exists("index.json") and store.exists("oci-layout"):
        return _select_oci(store, platform)
    if store.exists("manifest.json"):
        return _select_docker(store, platform)
    raise ImageError("%s: neither an OCI image layout (oci-layout, index.json) nor a docker "
                     "save archive (manifest.json)" % store.label)
