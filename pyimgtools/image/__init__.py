"""Read a container image as shipped: docker save, oci-archive, OCI layout dir, or "-".

    from pyimgtools import image
    img = image.read_image("app.tar", platform=None,
                           want=lambda path, size, mode: path == "/etc/os-release")
    img.tree["/usr/bin/python3"]     # Entry(layer, size, mode, uid, gid, mtime, type, linkname)
    img.read("/etc/os-release")      # kept bytes of a final-tree file, or None
    img.layers[1].created_by, img.layers[1].wasted_bytes, img.efficiency
    img.waste                        # [Waste(path, size, layer, removed_by, how)]

Layers are read once, in order, as streams; only the index and the wanted
contents stay in memory (see docs/image-archives.md). Every malformed input
raises ImageError (a LibraryError) with a one-line message.
"""

import functools
import gc
import zlib

from pyimgtools.image import manifest as _manifest
from pyimgtools.image.store import ImageError, open_store
from pyimgtools.image.stream import LayerStream
from pyimgtools.image.tarstream import TarReader
from pyimgtools.image.tree import Entry, Peek, Tree, apply_layer

__all__ = ["ImageError", "Entry", "Peek", "Image", "Layer", "Waste", "read_image", "host_platform"]

host_platform = _manifest.host_platform
DEFAULT_KEEP_CAP = 256 << 20


class Layer:
    """One layer: where it came from and what it leaves in the final tree."""

    def __init__(self, index, digest, media_type, created_by):
        self.index = index
        self.digest = digest
        self.media_type = media_type
        self.created_by = created_by   # the history entry's created_by, or None
        self.entries = 0               # tar members, whiteouts included
        self.bytes_added = 0           # bytes of the regular files of this layer
        self.wasted_bytes = 0          # of those, bytes no path of the final tree refers to
        self.bytes_removed = 0         # bytes of (lower or same) layers this layer made waste

    def __repr__(self):
        return "Layer(%d, %s, added=%d, wasted=%d)" % (
            self.index, self.digest, self.bytes_added, self.wasted_bytes)


class Waste:
    """Bytes of a file added in `layer` that the final tree does not hold."""
    __slots__ = ("path", "size", "layer", "removed_by", "how")

    def __init__(self, path, size, layer, removed_by, how):
        self.path, self.size, self.layer, self.removed_by, self.how = (
            path, size, layer, removed_by, how)

    def __repr__(self):
        return "Waste(%r, %d, layer=%d, removed_by=%d, how=%s)" % (
            self.path, self.size, self.layer, self.removed_by, self.how)


class Image:
    """An image as shipped: its final tree, layers, waste and config (read_image)."""
    def __init__(self, source, platform, config, layers, tree, waste, history):
        self.source = source
        self.platform = platform          # as selected from an index, or None
        self.config = config              # the whole image config JSON
        cfg = config.get("config")
        cfg = cfg if isinstance(cfg, dict) else {}
        env = cfg.get("Env")
        self.env = [e for e in env if isinstance(e, str)] if isinstance(env, list) else []
        self.user = cfg.get("User") if isinstance(cfg.get("User"), str) else ""
        self.workdir = cfg.get("WorkingDir") if isinstance(cfg.get("WorkingDir"), str) else ""
        self.history = history            # [(created_by, layer index or None)]
        self.layers = layers              # [Layer]
        self.tree = tree.entries          # path -> Entry, the final tree
        self.waste = waste                # [Waste]
        self._tree = tree

    def read(self, path):
        """Kept content of a final-tree file (or hardlink) that `want` selected, else None."""
        entry = self.tree.get(path)
        return entry.blob.data if entry is not None and entry.blob is not None else None

    @property
    def total_bytes(self):
        """Bytes of every regular-file entry of every layer."""
        return sum(layer.bytes_added for layer in self.layers)

    @property
    def useful_bytes(self):
        """Bytes of the final tree, each hardlinked file once."""
        return sum(b.size for b in self._tree.blobs if b.refs > 0)

    @property
    def wasted_bytes(self):
        return sum(w.size for w in self.waste)

    @property
    def efficiency(self):
        total = self.total_bytes
        return 1.0 if total == 0 else self.useful_bytes / total


def _history(config, n_layers):
    """[(created_by, layer index or None)]; empty_layer entries have no layer."""
    out, i = [], 0
    history = config.get("history")
    for h in history if isinstance(history, list) else []:
        if not isinstance(h, dict):
            continue
        created_by = h.get("created_by") or h.get("comment") or ""
        created_by = created_by if isinstance(created_by, str) else ""
        if h.get("empty_layer") or i >= n_layers:
            out.append((created_by, None))
        else:
            out.append((created_by, i))
            i += 1
    return out


class _Reread:
    """CRC-32 of a blob of an uncompressed layer, read again from the archive
    (Tree.lazy_crc); one open member per layer, closed by close()."""

    def __init__(self, store, refs):
        self._store, self._refs, self._open = store, refs, {}

    def __call__(self, blob):
        f = self._open.get(blob.layer)
        if f is None:
            f = self._open[blob.layer] = self._store.open(self._refs[blob.layer].name)
        f.seek(blob.offset)
        crc, left = 0, blob.size
        while left:
            data = f.read(min(left, 1 << 20))
            if not data:
                return -1     # cannot be: the layer was read whole; never equal
            crc = zlib.crc32(data, crc)
            left -= len(data)
        return crc

    def close(self):
        for f in self._open.values():
            f.close()
        self._open.clear()


def _without_gc(func):
    """The index is 100k+ small objects without reference cycles: the cyclic
    garbage collector would traverse them again and again as they pile up
    (a fifth of the parsing time) and free nothing. Off while reading."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()
    return wrapper


@_without_gc
def read_image(source, platform=None, want=None, on_content=None, keep_cap=DEFAULT_KEEP_CAP,
               tmpdir=None, on_chunk=None):
    """Index the image at SOURCE (archive path, OCI layout directory, or "-" for stdin).

    platform: "os/arch[/variant]"; None takes the only image, else the host's.
    want(path, size, mode) -> True (whole file) | int (first N bytes) | False:
    which regular files' contents to deliver; want may also return Peek(N) to be
    called again as want(path, size, mode, head) with the first N bytes (decide
    by content, e.g. ELF magic). With on_chunk(layer, path, offset, data) the
    wanted bytes are delivered as they stream, in pieces of at most 1 MiB
    (offset 0 first), nothing is kept and memory stays bounded whatever the
    file sizes. With on_content(layer, path, data)
    each layer's wanted files are delivered as they are read (a later layer may
    replace them: key by (layer, path) and keep those with tree[path].layer ==
    layer); without it they are kept and dropped as soon as a later layer
    replaces or deletes them, at most keep_cap bytes at any time.
    """
    try:
        store = open_store(source, tmpdir)
    except OSError as exc:
        raise ImageError("%s: %s" % (source, exc)) from None
    tree = None
    try:
        try:
            sel = _manifest.select(store, platform)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # JSON of the right syntax but the wrong shape (a list where an object goes...)
            raise ImageError("%s: malformed index, manifest or config (%s: %s)"
                             % (store.label, type(exc).__name__, exc)) from None
        history = _history(sel.config, len(sel.layers))
        by_layer = {i: c for c, i in history if i is not None}
        layers = [Layer(i, ref.digest, ref.media_type, by_layer.get(i))
                  for i, ref in enumerate(sel.layers)]
        tree = Tree()
        tree.reread = _Reread(store, sel.layers)
        for i, ref in enumerate(sel.layers):
            label = "layer %d %s in %s" % (i, ref.digest, store.label)
            with store.open(ref.name) as raw, LayerStream(raw, ref, label) as stream:
                tree.lazy_crc = not stream.compressed
                n, nbytes = apply_layer(tree, TarReader(stream, label), i, label, want,
                                        on_content, keep_cap, on_chunk)
                stream.finish()
            layers[i].entries, layers[i].bytes_added = n, nbytes
        waste = []
        for blob in tree.blobs:
            if blob.refs == 0:
                waste.append(Waste(blob.path, blob.size, blob.layer, blob.removed_by, blob.how))
                layers[blob.layer].wasted_bytes += blob.size
                layers[blob.removed_by].bytes_removed += blob.size
        return Image(source, sel.platform, sel.config, layers, tree, waste, history)
    except OSError as exc:
        raise ImageError("%s: %s" % (source, exc)) from None
    finally:
        if tree is not None:
            tree.reread.close()
        store.close()
