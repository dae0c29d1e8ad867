"""An image's final tree projected into a private temporary directory, as an
fs.Root the audit checks read like any mounted rootfs.

    with image_view("app.tar", want=needs.wanted, place=needs.placement,
                    source_on_disk=needs.source_on_disk) as root:   # an ImageRoot
        root.image.layers, root.entry("/usr/bin/python3")

(audit IMAGE calls it so: pyimgtools.audit.needs.image_view.)

What is written (under tempfile.mkdtemp in `tmpdir` or $TMPDIR, the tree on
/dev/shm instead when _tree_place finds room there; removed when the block
ends, on success, error, Ctrl-C or SIGTERM alike):

* directories, symlinks (the link text as stored), hard links (os.link: one
  inode per blob, as on a mount);
* regular files `want` selects (pyimgtools/audit/needs.py) that `place`
  puts on DISK, with the bytes the reader delivered as the layers streamed
  (on_chunk: written straight to disk, a later layer's copy replaces an
  earlier one, memory stays bounded); of the files it calls LOADER (ELF
  files), only the byte ranges elf.read_elf reads, at their offsets, in a
  sparse file of the real size;
* every other regular file as a sparse file of its real size (ftruncate:
  no block is allocated, sizes are right, nothing is copied);
* permission bits, mtimes (ns) and, when running as root, owners (fchown).
  Not root: owners stay the process's (the index's uid/gid are on
  `ImageRoot.entry(path)`) and u+r (files) / u+rwx (directories) are added so
  the view can be filled, read and removed; the group and other bits, which
  the checks look at, are the image's.

Not written: character and block devices and FIFOs (no check reads them; they
are counted in `ImageRoot.skipped`), and entries whose parent in the final
tree is not a directory (a layer's file below what a later layer made a
symlink or a file: not reachable on a mount either).

Kept in memory instead of written (tens of thousands of small files in an app image,
where a file apiece would cost more than reading the image): the HEAD files'
delivered bytes (a .pyc's header), answered by ImageRoot.read_head, and the
importlib.util.source_hash of SOURCE files (.py), answered by
ImageRoot.source_hash; a SOURCE file is also written when `source_on_disk`
says so for its bytes, or when it is larger than SOURCE_CAP.
"""

import contextlib
import importlib.util
import os
import shutil
import tempfile
import threading

from pyimgtools.elf import loader_ranges
from pyimgtools.fs import Root
from pyimgtools.image import read_image


DISK, HEAD, SOURCE, LOADER = "disk", "head", "source", "loader"   # where `place` puts a wanted file
SOURCE_CAP = 16 << 20     # a larger SOURCE file is written, not held to be hashed
LOADER_MEMORY = 8 << 20   # a larger LOADER file streams through a spool file, not memory


class ImageRoot(Root):
    """The projection of an image's final tree: an fs.Root with the index beside it."""

    def __init__(self, path, image, skipped, heads=None, hashes=None):
        super().__init__(path)
        self.image = image            # pyimgtools.image.Image
        self.skipped = skipped        # [(in-image path, why)] of entries not written
        self._heads = heads or {}     # Blob -> its first bytes (HEAD files)
        self._hashes = hashes or {}   # Blob -> source_hash (SOURCE files)

    def __repr__(self):
        return "ImageRoot(%r, %r)" % (self.image.source, self.path)

    def entry(self, path):
        """The index's Entry of an in-image path (uid, gid, layer, ...), or None."""
        return self.image.tree.get(path)

    def _blob(self, host_path):
        """The final tree's Blob behind a host path of the view (symlinks resolved), or None."""
        if not host_path.startswith(self.path + "/"):
            return None
        path = host_path[len(self.path):]
        e = self.image.tree.get(path)
        if e is not None and e.type == "symlink":
            try:
                e = self.image.tree.get(self.realpath(path))
            except OSError:
                return None
        return e.blob if e is not None else None

    def read_head(self, host_path, length):
        blob = self._blob(host_path)
        head = self._heads.get(blob) if blob is not None else None
        if head is None:
            return super().read_head(host_path, length)
        if len(head) < length and len(head) < blob.size:
            # the view's file holds zeros past the head: a reader asking for
            # more than pyimgtools/audit/needs.py keeps would read wrong bytes
            raise ValueError("%s: only the first %d bytes were kept" % (host_path, len(head)))
        return head[:length]

    def source_hash(self, host_path):
        blob = self._blob(host_path)
        digest = self._hashes.get(blob) if blob is not None else None
        if digest is None:
            return super().source_hash(host_path)
        return digest


class _Pending:
    """A wanted file held while its bytes stream (every kind but DISK)."""

    __slots__ = ("layer", "path", "kind", "pieces", "size", "spool", "data")

    def __init__(self, layer, path, kind):
        self.layer, self.path, self.kind = layer, path, kind
        self.pieces = []       # the bytes so far, unless spooled
        self.size = 0
        self.spool = None      # a LOADER file too large to hold: the spool's fd
        self.data = b""        # the pieces joined, once complete

    def pread(self, length, offset):
        if self.spool is not None:
            return os.pread(self.spool, length, offset)
        return self.data[offset:offset + length]


class _Contents:
    """The delivered contents: DISK files (and SOURCE files that must be real)
    one host file each under `top`, LOADER files as sparse files holding the
    ranges the loader reads, HEAD bytes and SOURCE hashes in memory, keyed by
    (layer, in-image path) until the final tree's blobs claim them."""

    def __init__(self, top, place=None, source_on_disk=None):
        self.top = top
        self.files = {}        # in-image path -> (layer, host file, ranges or None: whole)
        self.kept = {}         # in-image path -> bytes its host file holds
        self.heads = {}        # (layer, path) -> bytes
        self.hashes = {}       # (layer, path) -> source_hash
        self.final_heads = {}  # Blob -> bytes, of the final tree (claim)
        self.final_hashes = {}
        self._place = place
        self._source_on_disk = source_on_disk
        self._fd = None
        self._n = 0
        self._current = None   # a _Pending
        self._spool = None     # fd of the file large LOADER files stream through

    def write(self, layer, path, offset, data):
        if offset == 0:
            self.close()
            kind = self._place(path, data) if self._place is not None else DISK
            if kind == DISK:
                self._open(layer, path)
            else:
                self._current = _Pending(layer, path, kind)
        p = self._current
        if p is None:
            self._write(data)
            self.kept[path] += len(data)
            return
        if p.spool is not None:
            _pwrite_all(p.spool, data, p.size)
            p.size += len(data)
            return
        p.pieces.append(bytes(data))
        p.size += len(data)
        if p.kind == SOURCE and p.size > SOURCE_CAP:   # too big to hold: a real file, unhashed
            self._current = None
            self._open(layer, path)
            for piece in p.pieces:
                self._write(piece)
            self.kept[path] = p.size
        elif p.kind == LOADER and p.size > LOADER_MEMORY:
            p.spool = self._spool_fd()
            _pwrite_all(p.spool, b"".join(p.pieces), 0)
            p.pieces = []

    def _spool_fd(self):
        if self._spool is None:
            self._spool = os.open(os.path.join(self.top, "spool"),
                                  os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        else:
            os.ftruncate(self._spool, 0)
        return self._spool

    def _open(self, layer, path, ranges=None):
        old = self.files.pop(path, None)
        if old is not None:    # a later layer's copy replaces it
            os.unlink(old[1])
        self._n += 1
        host = os.path.join(self.top, str(self._n))
        self._fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.files[path] = (layer, host, ranges)
        self.kept[path] = 0

    def _write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _finish(self):
        p = self._current
        self._current = None
        if p.kind == LOADER:
            self._finish_loader(p)
            return
        data = b"".join(p.pieces)
        if p.kind == HEAD:
            self.heads[(p.layer, p.path)] = data
            return
        self.hashes[(p.layer, p.path)] = importlib.util.source_hash(data)
        if self._source_on_disk is not None and self._source_on_disk(data):
            self._open(p.layer, p.path)
            self._write(data)
            self.kept[p.path] = len(data)
            self.close()

    def _finish_loader(self, p):
        """Write the bytes of an ELF file that read_elf reads, at their offsets:
        a sparse file of the same size that reads the same to the loader."""
        if p.spool is None:
            p.data = b"".join(p.pieces)
        ranges = _merged(loader_ranges(p.pread, p.size))
        self._open(p.layer, p.path, ranges)
        try:
            for offset, length in ranges:
                _pwrite_all(self._fd, p.pread(length, offset), offset)
            os.ftruncate(self._fd, p.size)
        finally:
            os.close(self._fd)
            self._fd = None
        self.kept[p.path] = sum(length for _offset, length in ranges)

    def take(self, layer, path):
        """(host file, ranges or None) holding `path`'s bytes from `layer`, or None."""
        got = self.files.get(path)
        if got is None or got[0] != layer:
            return None
        del self.files[path]
        del self.kept[path]
        return got[1], got[2]

    def claim(self, blob):
        """What is held in memory for `blob`, a final-tree blob, keyed by it from now on."""
        key = (blob.layer, blob.path)
        head = self.heads.pop(key, None)
        if head is not None:
            self.final_heads[blob] = head
        digest = self.hashes.pop(key, None)
        if digest is not None:
            self.final_hashes[blob] = digest

    def close(self):
        if self._current is not None:
            self._finish()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def drop_spool(self):
        if self._spool is not None:
            os.close(self._spool)
            self._spool = None
            os.unlink(os.path.join(self.top, "spool"))


def _merged(ranges):
    """Sorted ranges with overlapping or touching ones joined."""
    out = []
    for offset, length in sorted(ranges):
        if out and offset <= out[-1][0] + out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[1], offset + length - last[0]))
        elif length:
            out.append((offset, length))
    return out


def _pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _copy(src, fd, ranges):
    """Copy the host file `src` into the open file `fd`: only `ranges` of it
    (a LOADER file: the rest stays a hole), or all of it when ranges is None."""
    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ranges is None:
            ranges = [(0, os.fstat(sfd).st_size)]
        for offset, length in ranges:
            while length > 0:
                data = os.pread(sfd, min(length, 1 << 20), offset)
                if not data:
                    break
                _pwrite_all(fd, data, offset)
                offset += len(data)
                length -= len(data)
    finally:
        os.close(sfd)


def _remove(top, workers=None):
    """Remove the view: the files of each directory on threads (as they were
    made), then whatever is left with shutil.rmtree."""
    def clear(directory):
        with os.scandir(directory) as it:
            for e in it:
                if not e.is_dir(follow_symlinks=False):
                    os.unlink(e.path)

    def writable(func, path, _exc):
        # not root: a directory the image made read-only (its u+w was added, but
        # be safe) cannot lose its entries until it is writable again
        os.chmod(os.path.dirname(path), 0o700)
        func(path)

    directories = [d for d, _subdirs, _files in os.walk(top)]
    try:
        _in_threads(directories, clear, _workers() if workers is None else workers, chunk=8)
    except OSError:
        pass      # rmtree meets it again, and deals with it or reports it
    finally:      # also after Ctrl-C or SIGTERM stopped the threads: nothing is left
        shutil.rmtree(top, onerror=writable)


def _same_fs(a, b):
    return os.stat(a).st_dev == os.stat(b).st_dev


def _parent(path):
    return path.rsplit("/", 1)[0] or "/"


def _workers():
    from pyimgtools.cpus import available_cpus
    return max(1, min(4, available_cpus()))


def _in_threads(jobs, do, workers, chunk=512):
    """do(job) for every job, on `workers` threads taking runs of `chunk`
    consecutive jobs (sorted paths: mostly one directory per run). Creating
    inodes is kernel time that threads overlap (measured on ext4: two threads
    cut it to a third); the first error stops the others and is raised here,
    after every thread has ended (nothing may write while the view is removed)."""
    if workers <= 1 or len(jobs) <= chunk:
        for job in jobs:
            do(job)
        return
    runs = iter(range(0, len(jobs), chunk))
    lock = threading.Lock()
    failed = []

    def work():
        try:
            while not failed:
                with lock:
                    start = next(runs, None)
                if start is None:
                    return
                for job in jobs[start:start + chunk]:
                    if failed:
                        return
                    do(job)
        except BaseException as exc:     # re-raised in the calling thread
            failed.append(exc)

    threads = [threading.Thread(target=work, name="pyimgtools-view-%d" % i, daemon=True)
               for i in range(workers)]
    try:
        for t in threads:
            t.start()
    finally:
        for t in threads:
            while t.is_alive():
                try:
                    t.join()
                except BaseException as exc:   # Ctrl-C, SIGTERM: stop them, then go
                    failed.append(exc)
    if failed:
        interrupts = [exc for exc in failed if not isinstance(exc, Exception)]
        raise (interrupts or failed)[0]


def project(img, top, contents, workers=None):
    """Write `img`'s final tree under the host directory `top` (which exists).
    Returns [(path, why)] of the entries not written."""
    as_root = os.geteuid() == 0
    mine = (os.geteuid(), os.getegid())   # a new entry's owner (no directory is set-gid yet)
    umask = os.umask(0o077)     # read it (no call that only reads it); files are
    os.umask(umask)             # created with their mode, chmod only where it differs
    tree = img.tree
    movable = _same_fs(top, contents.top)    # rename the contents into place, or copy them
    made = {"/"}            # in-image paths that are directories this function made
    skipped, dirs, linked = [], [], {}
    files, links = [], []   # (host path, Entry, host file or None); (first name, host path)

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

    def write(job):
        h, e, src = job
        if e.type == "symlink":
            os.symlink(e.linkname, h)       # a symlink has no mode of its own
            if as_root and (e.uid, e.gid) != mine:
                os.lchown(h, e.uid, e.gid)
            ns = int(e.mtime) * 1000000000
            os.utime(h, ns=(ns, ns), follow_symlinks=False)
            return
        mode = e.mode | (0 if as_root else 0o400)
        if src is not None and movable:
            os.rename(src[0], h)
            fd = os.open(h, os.O_WRONLY | os.O_CLOEXEC)
        else:
            fd = os.open(h, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode & 0o777)
        try:
            if src is not None and not movable:     # the tree is on another file system
                _copy(src[0], fd, src[1])
                os.unlink(src[0])
            if e.size:    # the real size (a head was delivered, or nothing: sparse, no blocks)
                os.ftruncate(fd, e.size)
            if as_root and (e.uid, e.gid) != mine:
                os.fchown(fd, e.uid, e.gid)    # before chmod: chown clears set-id bits
            if src is not None or mode & 0o7000 or mode & umask:
                os.fchmod(fd, mode)
            ns = int(e.mtime) * 1000000000
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    # Directories first, here; then every file and symlink, on threads; then
    # hard links (their first name exists by then).
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
            files.append((h, e, None))
        elif e.type in ("file", "hardlink") and e.blob is not None:
            first = linked.get(id(e.blob))
            if first is not None:
                links.append((first, h))    # the inode's metadata is the first name's
                continue
            linked[id(e.blob)] = h
            contents.claim(e.blob)
            files.append((h, e, contents.take(e.blob.layer, e.blob.path)))
        else:
            skipped.append((path, "%s: not written (no check reads it)" % e.type))
    _in_threads(files, write, _workers() if workers is None else workers)
    for first, h in links:
        os.link(first, h)
    # directories last, deepest first: their modes may forbid writing into them,
    # and adding entries changes their mtime
    for path, e in reversed(dirs):
        h = host(path)
        if as_root and (e.uid, e.gid) != mine:
            os.lchown(h, e.uid, e.gid)
        os.chmod(h, e.mode | (0 if as_root else 0o700))
        ns = int(e.mtime) * 1000000000
        os.utime(h, ns=(ns, ns))
    if "/" not in tree:
        os.chmod(top, 0o755)
    return skipped


def _tree_place(tmpdir, img, contents):
    """A tmpfs directory for the view's tree, or None (the tree goes beside
    its contents, in `tmpdir` or $TMPDIR or /tmp).

    The tree is an inode per entry of the image (a hundred thousand in an
    app image), which on a disk file system costs more than reading the
    image; a tmpfs holds it in memory for a few seconds. So, unless a place
    was chosen (--tmpdir, $TMPDIR) or the default place is a tmpfs already,
    the tree goes to /dev/shm when that is a writable tmpfs with room for the
    contents (ELF files as the ranges the loader reads: kilobytes each) and
    an inode per entry."""
    if tmpdir is not None or os.environ.get("TMPDIR"):
        return None
    from pyimgtools.mounts import MountTable
    mounts = MountTable.load()
    if mounts.fstype_of(os.path.realpath(tempfile.gettempdir())) == b"tmpfs":
        return None
    shm = os.path.realpath(TREE_TMPFS)
    try:
        if mounts.fstype_of(shm) != b"tmpfs" or not os.access(shm, os.W_OK | os.X_OK):
            return None
        st = os.statvfs(shm)
    except OSError:
        return None
    pages = sum(-(-n // 4096) for n in contents.kept.values()) + len(img.tree) // 16
    need = pages * 4096 + TREE_MARGIN     # (+ a page per 16 entries: long symlinks, directories)
    if st.f_bavail * st.f_frsize < need:
        return None
    if st.f_files and st.f_favail < len(img.tree) + 1024:
        return None
    return shm


TREE_TMPFS = "/dev/shm"
TREE_MARGIN = 16 << 20


@contextlib.contextmanager
def image_view(source, platform=None, want=None, tmpdir=None, place=None, source_on_disk=None):
    """Read the image at `source` (read_image) and yield an ImageRoot over its
    projection; the temporary directories are removed when the block ends.
    place(path, first bytes) -> DISK | HEAD | SOURCE | LOADER for each wanted
    file (default: DISK); source_on_disk(bytes) -> whether a SOURCE file is
    written too. The contents (and a spool for large ELF files) go to
    `tmpdir`; the tree to a tmpfs when _tree_place finds one, else beside them."""
    top = tempfile.mkdtemp(prefix="pyimgtools-image-", dir=tmpdir)
    tree_top = None
    try:
        os.chmod(top, 0o700)
        parts = os.path.join(top, "contents")
        os.mkdir(parts, 0o700)
        contents = _Contents(parts, place, source_on_disk)
        try:
            img = read_image(source, platform=platform, want=want, on_chunk=contents.write,
                             tmpdir=tmpdir)
        finally:
            contents.close()
            contents.drop_spool()
        where = _tree_place(tmpdir, img, contents)
        if where is not None:
            tree_top = tempfile.mkdtemp(prefix="pyimgtools-image-", dir=where)
            os.chmod(tree_top, 0o700)
        rootdir = os.path.join(tree_top or top, "root")
        os.mkdir(rootdir, 0o700)
        skipped = project(img, rootdir, contents)
        for _layer, stale, _ranges in contents.files.values():   # replaced or deleted later
            os.unlink(stale)
        contents.files.clear()
        contents.kept.clear()
        contents.heads.clear()       # of files replaced or deleted later
        contents.hashes.clear()
        yield ImageRoot(rootdir, img, skipped, contents.final_heads, contents.final_hashes)
    finally:
        try:
            if tree_top is not None:
                _remove(tree_top)
        finally:
            _remove(top)


__all__ = ["DISK", "HEAD", "LOADER", "SOURCE", "ImageRoot", "image_view", "project"]
