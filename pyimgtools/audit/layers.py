"""Which layer brought a finding's bytes, for `audit IMAGE` (never for --root:
a mounted tree does not know its layers).

A path's layer is the one whose entry is in the final tree; for a directory,
the one every regular file below it comes from (several: none). A finding
whose paths all have one layer gets `layer`; otherwise each path gets its own
(`path_layers`), and in the text report the finding goes under "whole image".
"""

import bisect

from pyimgtools.image.view import ImageRoot

DEFAULT_MAX_WASTE = 10 << 20       # layer-waste is a warning above this, info below
DEFAULT_MIN_EFFICIENCY = 0.90      # dive's CI default (lowestEfficiency)


def image_of(root):
    """The Image behind an ImageRoot, else None (--root, in-image)."""
    return root.image if isinstance(root, ImageRoot) else None


def layer_ref(layer):
    return {"index": layer.index, "digest": layer.digest, "created_by": layer.created_by or ""}


class Attribution:
    """Path -> layer index lookups over one image's final tree."""

    def __init__(self, root):
        self.root = root
        self.img = root.image
        self._paths = sorted(self.img.tree)

    def _canonical(self, path):
        if path in self.img.tree:
            return path
        try:
            return self.root.realdir(path)
        except (OSError, ValueError):
            return path

    def layer_of(self, path):
        """Index of the layer that brought `path`'s bytes, or None (unknown or several)."""
        tree = self.img.tree
        path = self._canonical(path)
        e = tree.get(path)
        if e is None:
            return None
        if e.type != "dir":
            return e.blob.layer if e.blob is not None else e.layer
        found = set()
        prefix = path.rstrip("/") + "/"
        i = bisect.bisect_left(self._paths, prefix)
        while i < len(self._paths) and self._paths[i].startswith(prefix):
            child = tree[self._paths[i]]
            if child.blob is not None:
                found.add(child.blob.layer)
                if len(found) > 1:
                    return None
            i += 1
        return found.pop() if found else e.layer

    def of_finding(self, finding):
        """(layer index or None, {path: index or None}) of a finding."""
        # layer-waste's paths are gone from the final tree: the check says where they came from
        given = finding.data.get("path_layer") if isinstance(finding.data, dict) else None
        per = {}
        for p in finding.paths:
            per[p] = given[p] if given and p in given else self.layer_of(p)
        layers = set(per.values())
        one = layers.pop() if len(layers) == 1 else None
        return one, per


def annotate(jsonable, finding, attribution):
    """Add `layer` (or `path_layers`) to a finding's JSON object."""
    one, per = attribution.of_finding(finding)
    layers = attribution.img.layers
    if one is not None:
        jsonable["layer"] = layer_ref(layers[one])
    elif per:
        jsonable["path_layers"] = [
            {"path": p, "layer": layer_ref(layers[i]) if i is not None else None}
            for p, i in per.items()]
    else:
        jsonable["layer"] = None
    return jsonable


def layers_doc(img):
    """results.layers of --json."""
    return [{"index": l.index, "digest": l.digest, "media_type": l.media_type,
             "size": l.bytes_added, "created_by": l.created_by or "",
             "bytes_wasted": l.wasted_bytes} for l in img.layers]


def image_doc(img):
    """results.image of --json."""
    return {"source": img.source, "platform": img.platform, "efficiency": round(img.efficiency, 6),
            "total_bytes": img.total_bytes, "wasted_bytes": img.wasted_bytes,
            "user": img.user, "workdir": img.workdir}
