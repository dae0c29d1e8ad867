"""Where an image's files come from: a directory, a seekable tar, or a tar stream.

A store maps archive-relative names ("blobs/sha256/HEX", "manifest.json") to
readable binary files. Names are checked before use: an absolute name or one
with a ".." component points outside the archive and is refused; nothing is
ever opened through a symlink on the host, and a symlink member inside a tar
is followed only to another regular member of the same tar (old `docker save`
writes one for a layer saved twice).
"""

import io
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile

from pyimgtools.errors import LibraryError

_SMALL = 1 << 20      # stream members up to this size stay in memory (JSON, tiny layers)
_MAX_LINKS = 8        # symlink hops inside an archive


class ImageError(LibraryError):
    """image: the image archive or layout is missing, unreadable or malformed."""


def member_name(name, where):
    """Normalised archive-relative name, or ImageError if it leaves the archive."""
    if not isinstance(name, str) or not name:
        raise ImageError("%s: empty or invalid path" % where)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts:
        raise ImageError("%s: path %r points outside the archive" % (where, name))
    return "/".join(parts)


class DirStore:
    """An OCI image-layout directory (or an unpacked docker save)."""

    def __init__(self, path):
        self.label = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ImageError("%s: %s" % (path, exc.strerror)) from None

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open_fd(self, name):
        parts = name.split("/")
        fd = os.dup(self._fd)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = os.O_RDONLY | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
                nfd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nfd
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImageError("%s: %s is not a regular file" % (self.label, name))
            return fd
        except OSError as exc:
            os.close(fd)
            if exc.errno == 40:   # ELOOP: O_NOFOLLOW met a symlink
                raise ImageError("%s: %s is a symlink; refusing to follow it" % (self.label, name)) from None
            raise ImageError("%s: %s: %s" % (self.label, name, exc.strerror)) from None
        except BaseException:
            os.close(fd)
            raise

    def exists(self, name):
        try:
            os.close(self._open_fd(name))
            return True
        except ImageError:
            return False

    def open(self, name):
        return os.fdopen(self._open_fd(name), "rb")


class _Members:
    """Name -> TarInfo of a tar's members, with in-archive symlink resolution."""

    def __init__(self, label):
        self.label = label
        self.members = {}

    def add(self, info):
        try:
            name = member_name(info.name, self.label)
        except ImageError:
            return   # a member we will never be asked for by a valid name
        self.members[name] = info

    def resolve(self, name):
        seen = 0
        while True:
            info = self.members.get(name)
            if info is None:
                raise ImageError("%s: %s is not in the archive" % (self.label, name))
            if info.isreg():
                return name, info
            if not (info.issym() or info.islnk()) or seen >= _MAX_LINKS:
                raise ImageError("%s: %s is not a regular file" % (self.label, name))
            target = info.linkname
            if info.issym():
                target = posixpath.join(posixpath.dirname(name), target)
                if target.startswith("/"):
                    raise ImageError("%s: %s is a symlink to %s, outside the archive"
                                     % (self.label, name, info.linkname))
                target = posixpath.normpath(target)
                if target == ".." or target.startswith("../"):
                    raise ImageError("%s: %s is a symlink to %s, outside the archive"
                                     % (self.label, name, info.linkname))
            name = member_name(target, self.label)
            seen += 1


class TarStore:
    """A seekable, uncompressed tar file (docker save, oci-archive)."""

    def __init__(self, path, fileobj):
        self.label = path
        self._file = fileobj
        try:
            self._tar = tarfile.open(fileobj=fileobj, mode="r:", encoding="utf-8",
                                     errors="surrogateescape")
            self._idx = _Members(path)
            for info in self._tar:
                self._idx.add(info)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ImageError("%s: not a readable tar archive (%s)" % (path, exc)) from None

    def close(self):
        self._file.close()

    def exists(self, name):
        return name in self._idx.members

    def open(self, name):
        _, info = self._idx.resolve(name)
        if info.sparse is not None:
            return self._tar.extractfile(info)
        return _Member(self._file.fileno(), info.offset_data, info.size)


class _Member(io.RawIOBase):
    """A regular member of a seekable tar, read in place with pread (no copy
    through tarfile's buffers; the archive's own file offset is not touched)."""

    def __init__(self, fd, offset, size):
        super().__init__()
        self._fd, self._start, self._end = fd, offset, offset + size
        self._pos = offset

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        if whence != 0 or pos < 0:
            raise ValueError("only absolute, non-negative seeks")
        self._pos = min(self._start + pos, self._end)
        return self._pos - self._start

    def read(self, n=-1):
        left = self._end - self._pos
        if n is None or n < 0 or n > left:
            n = left
        data = os.pread(self._fd, n, self._pos) if n else b""
        self._pos += len(data)
        return data

    def readall(self):
        parts = []
        while True:
            data = self.read(1 << 20)
            if not data:
                return b"".join(parts)
            parts.append(data)


class SpoolStore:
    """A tar read once from a stream (stdin, or a compressed archive file).

    A stream cannot seek back to a layer that came before the manifest, so
    members larger than _SMALL are copied to a private temporary directory
    (removed by close()); smaller ones stay in memory.
    """

    def __init__(self, fileobj, label, tmpdir=None):
        self.label = label
        self._dir = tempfile.mkdtemp(prefix="pyimgtools-image-", dir=tmpdir)
        self._data = {}
        self._idx = _Members(label)
        try:
            with tarfile.open(fileobj=fileobj, mode="r|*", encoding="utf-8",
                              errors="surrogateescape") as tar:
                for n, info in enumerate(tar):
                    self._idx.add(info)
                    if not info.isreg():
                        continue
                    src = tar.extractfile(info)
                    if info.size <= _SMALL:
                        data = src.read()
                        if len(data) != info.size:
                            raise EOFError("unexpected end of data")
                        self._data[info.name] = data
                        continue
                    spool = os.path.join(self._dir, str(n))
                    with open(spool, "xb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                        if out.tell() != info.size:
                            raise EOFError("unexpected end of data")
                    self._data[info.name] = spool
        except (tarfile.TarError, EOFError, OSError) as exc:
            self.close()
            raise ImageError("%s: not a readable tar stream (%s)" % (label, exc)) from None
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def exists(self, name):
        return name in self._idx.members

    def open(self, name):
        _, info = self._idx.resolve(name)
        data = self._data[info.name]
        if isinstance(data, bytes):
            return io.BytesIO(data)
        return open(data, "rb")


def open_store(source, tmpdir=None):
    """The store for SOURCE: a directory, a tar file path, or "-" for stdin."""
    if source == "-":
        return SpoolStore(sys.stdin.buffer, "-", tmpdir)
    try:
        st = os.stat(source)
    except OSError as exc:
        raise ImageError("%s: %s" % (source, exc.strerror)) from None
    if stat.S_ISDIR(st.st_mode):
        return DirStore(source)
    try:
        f = open(source, "rb")
    except OSError as exc:
        raise ImageError("%s: %s" % (source, exc.strerror)) from None
    try:
        if stat.S_ISREG(st.st_mode):
            head = f.read(512)
            f.seek(0)
            if len(head) == 512 and head[257:262] == b"ustar":
                return TarStore(source, f)
        # gzip'd (docker save | gzip), a pipe (<(docker save app)), an old v7 tar:
        # one sequential pass.
        store = SpoolStore(f, source, tmpdir)
        f.close()
        return store
    except BaseException:
        f.close()
        raise
