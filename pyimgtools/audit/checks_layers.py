"""Audit checks about an image's layers (`audit IMAGE` only: a mounted tree has
no layers): bytes one layer adds and a later one deletes or copies again,
and the image's efficiency (dive's: useful bytes / bytes of all layers)."""

from pyimgtools.audit.layers import image_of
from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import check
from pyimgtools.report import display_path, format_bytes, format_count

_PATHS = 50       # biggest waste paths on the finding (data has per-group tops)
_TOP = 5          # paths shown per group in the evidence

def _step(img, index):
    layer = img.layers[index]
    return "layer %d (%s)" % (index, layer.created_by or "no history entry")


_HOW = {"deleted": "deleted", "overwritten": "overwritten", "chmod": "copied again by a chmod",
        "chown": "copied again by a chown", "re-added": "added again unchanged"}


@check("layer-waste", image_only=True)
def check_layer_waste(ctx):
    """Bytes added in one layer and deleted, overwritten or re-added (chmod/chown)
    in a later one: they ship in the image but no file of it holds them."""
    img = image_of(ctx.root)     # plan() runs image-only checks on an image only
    if not img.waste:
        return []
    groups = {}
    for w in img.waste:
        groups.setdefault((w.layer, w.removed_by, w.how), []).append(w)
    ordered = sorted(groups.items(), key=lambda kv: -sum(w.size for w in kv[1]))
    total = img.wasted_bytes
    evidence, data_groups = [], []
    for (added, removed, how), items in ordered:
        items.sort(key=lambda w: (-w.size, w.path))
        nbytes = sum(w.size for w in items)
        evidence.append("%s in %s added by %s, %s by %s: e.g. %s" % (
            format_bytes(nbytes), format_count(len(items), "file"), _step(img, added),
            _HOW.get(how, how), _step(img, removed),
            ", ".join("%s (%s)" % (display_path(w.path), format_bytes(w.size))
                      for w in items[:_TOP])))
        data_groups.append({
            "added_in": added, "removed_by": removed, "how": how, "bytes": nbytes,
            "files": len(items), "added_by": img.layers[added].created_by or "",
            "removed_by_step": img.layers[removed].created_by or "",
            "paths": [{"path": w.path, "bytes": w.size} for w in items[:_TOP * 2]]})
    biggest = sorted(img.waste, key=lambda w: (-w.size, w.path))[:_PATHS]
    limit = ctx.max_waste
    severity = "warn" if total > limit else "info"
    copies = any(how in ("chmod", "chown") for _a, _r, how in groups)
    fix = "delete files in the same RUN step that created them"
    if copies:
        fix += "; set modes and owners in the COPY (--chmod, --chown), not in a later RUN"
    return [Finding(
        "layer-waste", severity,
        "%s shipped in layers but not in the image: added in one layer, removed or copied "
        "again in a later one" % format_bytes(total),
        fix, evidence=evidence, paths=[w.path for w in biggest], bytes=total, reclaimable=True,
        data={"groups": data_groups, "max_waste": limit,
              "path_layer": {w.path: w.layer for w in biggest}})]


@check("layer-efficiency", image_only=True)
def check_layer_efficiency(ctx):
    """The image's useful bytes over the bytes of all its layers, below --min-efficiency."""
    img = image_of(ctx.root)     # plan() runs image-only checks on an image only
    eff = img.efficiency
    if eff >= ctx.min_efficiency:
        return []
    worst = sorted(img.layers, key=lambda l: -l.wasted_bytes)
    evidence = ["%s of %s in the layers is in the final tree (efficiency %.3f, below %.2f)"
                % (format_bytes(img.useful_bytes), format_bytes(img.total_bytes), eff,
                   ctx.min_efficiency)]
    evidence += ["%s: %s added, %s of it wasted" % (_step(img, l.index), format_bytes(l.bytes_added),
                                                     format_bytes(l.wasted_bytes))
                 for l in worst if l.wasted_bytes][:_TOP]
    return [Finding(
        "layer-efficiency", "warn",
        "image efficiency %.3f: %s of %s in the layers is wasted" % (
            eff, format_bytes(img.total_bytes - img.useful_bytes), format_bytes(img.total_bytes)),
        "delete in the same RUN step that created the files; set modes in the COPY (--chmod)",
        evidence=evidence, bytes=img.total_bytes - img.useful_bytes,
        data={"efficiency": round(eff, 6), "useful_bytes": img.useful_bytes,
              "total_bytes": img.total_bytes, "min_efficiency": ctx.min_efficiency})]
