"""Layers applied in order into an index of the final tree, with per-layer waste.

The rules are the OCI image spec's "Image Layer Filesystem Changeset":
`.wh.NAME` removes NAME (and what is under it) from the lower layers,
`.wh..wh..opq` hides every lower-layer child of its directory, whiteouts only
act on lower layers (an entry of the same layer stays, whatever the order in
the tar), and whiteout files never appear in the tree. A later entry at a path
replaces the earlier one; a directory over a directory only updates the
directory's metadata, anything else replaces the whole subtree.

Every regular file's bytes are one `Blob` (layer, path, size, crc32); tree
entries (the file and its hardlinks) hold references to it. A blob no entry
of the final tree refers to is waste: bytes shipped in its layer that nobody
can see, attributed to the layer that removed the last reference.
"""

import zlib

from pyimgtools.image.store import ImageError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_READ = 1 << 20


class Blob:
    """The bytes of one regular file entry of one layer.

    `crc` is None until needed when the layer is uncompressed: then `offset`
    (of the bytes in the layer's tar) lets Tree.reread compute it."""
    __slots__ = ("layer", "path", "size", "crc", "refs", "data", "removed_by", "how", "offset")

    def __init__(self, layer, path, size, crc, offset=None):
        self.layer, self.path, self.size, self.crc = layer, path, size, crc
        self.offset = offset
        self.refs = 0
        self.data = None          # kept content (bytes), when the caller wanted it
        self.removed_by = None    # layer index that dropped the last reference
        self.how = None           # "deleted" | "overwritten" | "chmod" | "chown" | "re-added"


class Peek:
    """What `want` returns to decide by content: the reader calls
    want(path, size, mode, head) again with the file's first `length` bytes."""
    __slots__ = ("length",)

    def __init__(self, length):
        self.length = length


class Entry:
    """One path of the final tree. `size` of a hardlink is its target's."""
    __slots__ = ("layer", "size", "mode", "uid", "gid", "mtime", "type", "linkname", "blob")

    def __init__(self, layer, size, mode, uid, gid, mtime, type_, linkname, blob):
        self.layer, self.size, self.mode, self.uid, self.gid = layer, size, mode, uid, gid
        self.mtime, self.type, self.linkname, self.blob = mtime, type_, linkname, blob

    def __repr__(self):
        return "Entry(layer=%d, type=%s, size=%d, mode=%o, uid=%d, gid=%d, linkname=%r)" % (
            self.layer, self.type, self.size, self.mode, self.uid, self.gid, self.linkname)


def entry_path(name, layer_label):
    """'/a/b' for a tar member name, or ImageError when it would leave the root."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError("%s: entry %r escapes the root with '..'" % (layer_label, name))
    return "/" + "/".join(parts)


def _parent(path):
    return path.rsplit("/", 1)[0] or "/"


class Tree:
    """The final tree while layers are applied in order, with the bytes each
    layer's entries bring and the waste later layers make of them."""
    def __init__(self):
        self.entries = {}       # path -> Entry
        self.children = {}      # dir path -> set of child paths present in entries
        self.blobs = []         # every Blob, in layer order
        self.kept_bytes = 0
        # CRCs on demand: with lazy_crc (set per layer: an uncompressed one, whose
        # tar offsets are the blob's) a file's CRC is only computed, by
        # reread(blob) from its bytes in the archive, when a later layer puts a
        # file of the same size at its path. Most files never need one, and
        # their bytes are then skipped rather than summed.
        self.lazy_crc = False
        self.reread = None
        # The directory of the last put and its child set: a tar lists a
        # directory's files together, and their ancestors are linked already.
        self._last_dir = None
        self._last_kids = None

    def _crc(self, blob):
        if blob.crc is None:
            blob.crc = self.reread(blob)
        return blob.crc

    # -- removal -----------------------------------------------------------------
    def _unref(self, entry, layer, how):
        blob = entry.blob
        if blob is None:
            return
        blob.refs -= 1
        if blob.refs == 0:
            blob.removed_by, blob.how = layer, how
            if blob.data is not None:
                self.kept_bytes -= len(blob.data)
                blob.data = None

    def _subtree(self, path):
        """`path` and every path linked below it, parents before children."""
        order, stack = [], [path]
        while stack:
            p = stack.pop()
            order.append(p)
            stack.extend(self.children.get(p, ()))
        return order

    def _drop(self, path, layer, how, lower_only):
        """Remove `path` and its subtree; with lower_only keep the entries of `layer`."""
        order = self._subtree(path)
        for p in order:
            entry = self.entries.get(p)
            if entry is None or (lower_only and entry.layer == layer):
                continue
            del self.entries[p]
            self._unref(entry, layer, how)
        # Unlink paths left with neither an entry nor anything below them.
        self._last_dir = None
        for p in reversed(order):
            if p not in self.entries and not self.children.get(p):
                self.children.pop(p, None)
                if p != "/":
                    siblings = self.children.get(_parent(p))
                    if siblings is not None:
                        siblings.discard(p)

    def whiteout(self, path, layer):
        self._drop(path, layer, "deleted", lower_only=True)

    def opaque(self, directory, layer):
        for child in list(self.children.get(directory, ())):
            self._drop(child, layer, "deleted", lower_only=True)

    # -- addition ----------------------------------------------------------------
    def put(self, path, entry, layer):
        """Add `path` from `layer`, replacing (and counting as waste) what a lower
        layer had there; a directory over a directory only updates its metadata."""
        old = self.entries.get(path)
        if old is not None:
            if old.type == "dir" and entry.type == "dir":
                self.entries[path] = entry     # metadata update; children stay
                return
            how = "overwritten"
            ob = old.blob
            nb = entry.blob
            if (ob is not None and nb is not None and nb is not ob
                    and ob.size == nb.size and self._crc(ob) == self._crc(nb)):
                if (old.uid, old.gid) != (entry.uid, entry.gid):
                    how = "chown"
                elif old.mode != entry.mode:
                    how = "chmod"
                else:
                    how = "re-added"
            self._drop(path, layer, how, lower_only=False)
        self.entries[path] = entry
        par = path[:path.rfind("/")] or "/"
        if path == "/":
            pass
        elif par == self._last_dir:
            self._last_kids.add(path)
        else:
            children = self.children
            p = path   # link every ancestor: a tar need not list parent directories
            while p != "/":
                up = p[:p.rfind("/")] or "/"
                kids = children.get(up)
                if kids is None:
                    kids = children[up] = {p}
                elif p in kids:
                    break
                else:
                    kids.add(p)
                p = up
            self._last_dir, self._last_kids = par, children[par]
        blob = entry.blob
        if blob is not None:
            blob.refs += 1


def apply_layer(tree, tar, layer, label, want, on_content, keep_cap, on_chunk=None):
    """Apply one layer (a tarstream.TarReader) to `tree`.

    Returns (entries, bytes of regular files). Wanted contents go to
    `on_chunk(layer, path, offset, data)` piece by piece, to
    `on_content(layer, path, data)`, or are kept on the blob (`keep_cap` bounds
    the kept bytes of the files still in the tree).
    """
    n_entries = n_bytes = 0
    put, blobs, next_member, crc_rest = tree.put, tree.blobs, tar.next, tar.crc_rest
    lazy = tree.lazy_crc and tree.reread is not None
    while True:
        info = next_member()
        if info is None:
            break
        n_entries += 1
        path = ("/" + info.name).rstrip("/") or "/"
        if "//" in path or "/." in path:    # else clean, and no name starts with "."
            path = entry_path(info.name, label)
            base = path.rsplit("/", 1)[1]
            if base.startswith(WHITEOUT):
                directory = _parent(path)
                if base == OPAQUE:
                    tree.opaque(directory, layer)
                else:
                    name = base[len(WHITEOUT):]
                    if name in ("", ".", ".."):
                        raise ImageError("%s: whiteout %r escapes the root" % (label, info.name))
                    tree.whiteout(directory.rstrip("/") + "/" + name, layer)
                continue
        type_ = info.type
        if path == "/" and type_ != "dir":
            raise ImageError("%s: entry %r replaces the root directory" % (label, info.name))
        blob, size, linkname = None, 0, info.linkname or None
        if type_ == "file":
            size = info.size
            if want is None:      # the common case, inline: no content wanted
                if not size:
                    blob = Blob(layer, path, 0, 0)
                elif lazy:        # the bytes are skipped at the next header
                    blob = Blob(layer, path, size, None, tar.data_offset)
                else:
                    blob = Blob(layer, path, size, crc_rest())
                blobs.append(blob)
            else:
                blob = _read_file(tree, tar, info, path, layer, label, want, on_content,
                                  keep_cap, on_chunk)
            n_bytes += size
        elif type_ == "hardlink":
            linkname = entry_path(info.linkname, label)
            target = tree.entries.get(linkname)
            if target is None or target.type == "dir":
                raise ImageError("%s: hardlink %r to %r, which is not in this or a lower layer"
                                 % (label, info.name, info.linkname))
            blob, size = target.blob, target.size
            if blob is None:      # GNU tar hardlinks symlinks and device nodes too
                type_, linkname = target.type, target.linkname
        put(path, Entry(layer, size, info.mode, info.uid, info.gid, info.mtime,
                        type_, linkname, blob), layer)
    return n_entries, n_bytes


def _wanted_bytes(w, size):
    return size if w is True else int(w or 0)


def _read_file(tree, tar, info, path, layer, label, want, on_content, keep_cap, on_chunk=None):
    nwant, peek = 0, None
    if want is not None and info.size:
        w = want(path, info.size, info.mode)
        if isinstance(w, Peek):
            peek = w.length
        else:
            nwant = _wanted_bytes(w, info.size)
    if not nwant and peek is None:    # nothing wanted: as in apply_layer's fast path
        if not info.size:
            blob = Blob(layer, path, 0, 0)
        elif tree.lazy_crc and tree.reread is not None:
            blob = Blob(layer, path, info.size, None, tar.data_offset)
        else:
            blob = Blob(layer, path, info.size, tar.crc_rest())
        tree.blobs.append(blob)
        return blob
    # Read only as far as wanted (a .pyc's header, an ELF's magic); the rest is
    # summed in place, or skipped when the CRC can come later (lazy_crc).
    lazy = tree.lazy_crc and tree.reread is not None
    start = tar.data_offset
    crc, head, taken, remaining = 0, [], 0, info.size
    while remaining and (peek is not None or taken < nwant):
        chunk = tar.read(min(_READ, remaining) if peek is not None else
                         min(_READ, remaining, nwant - taken))
        remaining -= len(chunk)
        if not lazy:
            crc = zlib.crc32(chunk, crc)
        if peek is not None:      # decided by the first bytes (read anyway)
            nwant = _wanted_bytes(want(path, info.size, info.mode, chunk[:peek]), info.size)
            peek = None
        if taken < nwant:
            piece = chunk[:nwant - taken]
            if on_chunk is not None:
                on_chunk(layer, path, taken, piece)
            else:
                head.append(piece)
            taken += len(piece)
    if lazy:
        blob = Blob(layer, path, info.size, None, start)
    else:
        if remaining:
            crc = tar.crc_rest(crc)
        blob = Blob(layer, path, info.size, crc)
    tree.blobs.append(blob)
    if nwant and on_chunk is None:
        data = b"".join(head)
        if on_content is not None:
            on_content(layer, path, data)
        else:
            old = tree.entries.get(path)
            freed = len(old.blob.data) if old is not None and old.blob is not None and \
                old.blob.refs == 1 and old.blob.data is not None else 0
            if tree.kept_bytes - freed + len(data) > keep_cap:
                raise ImageError("the wanted file contents exceed %d bytes (at %s in %s)"
                                 % (keep_cap, path, label))
            blob.data = data
            tree.kept_bytes += len(data)
    return blob
