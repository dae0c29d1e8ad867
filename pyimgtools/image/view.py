"""An image's final tree projected into a private temporary directory, as an
fs.Root the audit checks read like any mounted rootfs.

    with image_view("app.tar", want=needs.wanted) as root:   # an ImageRoot
        root.image.layers, root.entry("/usr/bin/python3")

What is written (under tempfile.mkdtemp in `tmpdir` or $TMPDIR, removed when
the block ends, on success, error, Ctrl-C or SIGTERM alike):

* directories, symlinks (the link text as stored), hard links (os.link: one
  inode per blob, as on a mount);
* regular files `want` selects (pyimgtools/audit/needs.py), with the bytes
  the reader delivered as the layers streamed (on_chunk: written straight to
  disk, a later layer's copy replaces an earlier one, memory stays bounded);
* every other regular file as a sparse file of its real size (os.truncate:
  no block is allocated, sizes are right, nothing is copied);
* permission bits, mtimes (ns) and, when running as root, owners (lchown).
  Not root: owners stay the process's (the index's uid/gid are on
  `ImageRoot.entry(path)`) and u+r (files) / u+rwx (directories) are added so
  the view can be filled, read and removed; the group and other bits, which
  the checks look at, are the image's.

Not written: character and block devices and FIFOs (no check reads them; they
are counted in `ImageRoot.skipped`), and entries whose parent in the final
tree is not a directory (a layer's file below what a later layer made a
symlink or a file: not reachable on a mount either).
"""

import contextlib
import os
import shutil
import tempfile

from pyimgtools.fs import Root
from pyimgtools.image import read_image


class ImageRoot(Root):
    """The projection of an image's final tree: an fs.Root with the index beside it."""

    def __init__(self, path, image, skipped):
        super().__init__(path)
        self.image = image            # pyimgtools.image.Image
        self.skipped = skipped        # [(in-image path, why)] of entries not written

    def __repr__(self):
        return "ImageRoot(%r, %r)" % (self.image.source, self.path)

    def entry(self, path):
        """The index's Entry of an in-image path (uid, gid, layer, ...), or None."""
        return self.image.tree.get(path)


class _Contents:
    """The delivered contents, one file each under `top`, keyed by in-image path."""

    def __init__(self, top):
        self.top = top
        self.files = {}        # in-image path -> (layer, host file)
        self._fd = None
        self._n = 0

    def write(self, layer, path, offset, data):
        if offset == 0:
            self.close()
            old = self.files.pop(path, None)
            if old is not None:    # a later layer's copy replaces it
                os.unlink(old[1])
            self._n += 1
            host = os.path.join(self.top, str(self._n))
            self._fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self.files[path] = (layer, host)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def take(self, layer, path):
        """The host file holding `path`'s bytes from `layer`, or None."""
        got = self.files.get(path)
        if got is None or got[0] != layer:
            return None
        del self.files[path]
        return got[1]

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _remove(top):
    def writable(func, path, _exc):
        # not root: a directory the image made read-only (its u+w was added, but
        # be safe) cannot lose its entries until it is writable again
        os.chmod(os.path.dirname(path), 0o700)
        func(path)
    shutil.rmtree(top, onerror=writable)


def _parent(path):
    return path.rsplit("/", 1)[0] or "/"


def project(img, top, contents):
    """Write `img`'s final tree under the host directory `top` (which exists).
    Returns [(path, why)] of the entries not written."""
    as_root = os.geteuid() == 0
    tree = img.tree
    made = {"/"}            # in-image paths that are directories this function made
    skipped, dirs, linked = [], [], {}

    def host(path):
        return top + path if path != "/" else top

    def ensure_dir(path):
        """Make a directory a tar did not list (all its ancestors made first)."""
        if path in made:
            return True
        if path in tree or not ensure_dir(_parent(path)):
            return False          # a non-directory (or an unwritten entry) of the tree
        os.mkdir(host(path), 0o755)
        made.add(path)
        return True

    def meta(h, e, chmod=True):
        if as_root:
            os.lchown(h, e.uid, e.gid)      # before chmod: chown clears set-id bits
        if chmod:
            os.chmod(h, e.mode | (0 if as_root else 0o400))
        ns = int(e.mtime) * 1000000000
        os.utime(h, ns=(ns, ns), follow_symlinks=False)

    for path in sorted(tree):     # a parent sorts before its children
        e = tree[path]
        if path == "/":
            dirs.append((path, e))
            continue
        if not ensure_dir(_parent(path)):
            skipped.append((path, "its parent is not a directory in the final tree"))
            continue
        h = host(path)
        if e.type == "dir":
            os.mkdir(h, 0o700)
            made.add(path)
            dirs.append((path, e))
        elif e.type == "symlink":
            os.symlink(e.linkname, h)
            meta(h, e, chmod=False)       # a symlink has no mode of its own
        elif e.type in ("file", "hardlink") and e.blob is not None:
            first = linked.get(id(e.blob))
            if first is not None:
                os.link(first, h)       # the inode's metadata is the first name's
                continue
            linked[id(e.blob)] = h
            src = contents.take(e.blob.layer, e.blob.path)
            if src is not None:
                os.rename(src, h)
                # a file asked for by its head (.pyc) holds only those bytes
                if os.lstat(h).st_size < e.size:
                    os.truncate(h, e.size)
            else:
                fd = os.open(h, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.ftruncate(fd, e.size)   # sparse: the size, no blocks
                finally:
                    os.close(fd)
            meta(h, e)
        else:
            skipped.append((path, "%s: not written (no check reads it)" % e.type))
    # directories last, deepest first: their modes may forbid writing into them,
    # and adding entries changes their mtime
    for path, e in reversed(dirs):
        h = host(path)
        if as_root:
            os.lchown(h, e.uid, e.gid)
        os.chmod(h, e.mode | (0 if as_root else 0o700))
        ns = int(e.mtime) * 1000000000
        os.utime(h, ns=(ns, ns))
    if "/" not in tree:
        os.chmod(top, 0o755)
    return skipped


@contextlib.contextmanager
def image_view(source, platform=None, want=None, tmpdir=None):
    """Read the image at `source` (read_image) and yield an ImageRoot over its
    projection; the temporary directory is removed when the block ends."""
    top = tempfile.mkdtemp(prefix="pyimgtools-image-", dir=tmpdir)
    try:
        os.chmod(top, 0o700)
        parts = os.path.join(top, "contents")
        rootdir = os.path.join(top, "root")
        os.mkdir(parts, 0o700)
        os.mkdir(rootdir, 0o700)
        contents = _Contents(parts)
        try:
            img = read_image(source, platform=platform, want=want, on_chunk=contents.write,
                             tmpdir=tmpdir)
        finally:
            contents.close()
        skipped = project(img, rootdir, contents)
        for _layer, stale in contents.files.values():   # replaced or deleted later
            os.unlink(stale)
        contents.files.clear()
        yield ImageRoot(rootdir, img, skipped)
    finally:
        _remove(top)


__all__ = ["ImageRoot", "image_view", "project"]
