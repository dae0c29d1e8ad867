"""File-system access inside an image root.

``--root DIR`` means every absolute path is read inside DIR, and every symlink
is resolved as if DIR were ``/`` (an absolute link target restarts at DIR, ``..``
never climbs above it). Commands never follow a link out of the root.
"""

import errno
import os
import stat

from pyimgtools import treewalk
from pyimgtools.errors import RootError

_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


class Root:
    """An image's file-system root as seen from the host."""

    def __init__(self, path="/"):
        path = os.fsdecode(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise RootError("--root %s: %s" % (path, exc.strerror or exc)) from None
        if not stat.S_ISDIR(st.st_mode):
            raise RootError("--root %s: not a directory" % path)
        self.path = os.path.abspath(path)
        self.is_host = self.path == "/"

    def __repr__(self):
        return "Root(%r)" % self.path

    def host(self, path):
        """Host path of an absolute in-image path, without resolving symlinks."""
        path = os.fsdecode(path)
        if self.is_host:
            return path
        return self.path + "/" + path.lstrip("/") if path.strip("/") else self.path

    def image(self, host_path):
        """In-image path of a host path that lies inside the root."""
        host_path = os.fsdecode(host_path)
        if self.is_host:
            return host_path
        rel = os.path.relpath(host_path, self.path)
        if rel == ".":
            return "/"
        if rel == ".." or rel.startswith("../"):
            raise ValueError("%s is outside the root %s" % (host_path, self.path))
        return "/" + rel

    def realpath(self, path):
        """Canonical in-image path: every symlink resolved inside the root.

        Missing components are kept as they are (like os.path.realpath with
        strict=False); raises OSError(ELOOP) on a symlink loop.
        """
        path = os.fsdecode(path)
        if not path.startswith("/"):
            raise ValueError("not an absolute path: %r" % path)
        pending = [c for c in path.split("/") if c]
        pending.reverse()
        resolved = []
        links = 0
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/" + "/".join(resolved + [name])
            try:
                target = os.readlink(self.host(candidate))
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                    resolved.append(name)  # not a link (or missing): keep as is
                    continue
                raise
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), candidate)
            if target.startswith("/"):
                resolved = []
            parts = [c for c in target.split("/") if c]
            pending.extend(reversed(parts))
        return "/" + "/".join(resolved)

    def realdir(self, path):
        """The path with its directory canonicalised but its last component kept
        (uncached; see Canonical.realdir)."""
        return Canonical(self).realdir(path)

    def open(self, path, mode="rb"):
        """Open an in-image path after resolving it inside the root."""
        return open(self.host(self.realpath(path)), mode)

    # Reads the bytecode checks make of many small files, by host path (as
    # their directory scans find them); an image view (pyimgtools/image/view.py)
    # answers them from what its reader kept, without a file per answer.
    def read_head(self, host_path, length):
        """The first `length` bytes of the file at `host_path` (fewer if it is shorter)."""
        with open(host_path, "rb") as f:
            return f.read(length)

    def source_hash(self, host_path):
        """importlib.util.source_hash of the file's bytes: what a checked-hash
        .pyc of the running interpreter's magic number records (PEP 552)."""
        import importlib.util
        with open(host_path, "rb") as f:
            return importlib.util.source_hash(f.read())

    def exists(self, path):
        try:
            return os.path.exists(self.host(self.realpath(path)))
        except OSError:
            return False

    def isdir(self, path):
        try:
            return os.path.isdir(self.host(self.realpath(path)))
        except OSError:
            return False


class Canonical:
    """Real in-image paths inside one root, with a cache: the one canonicaliser.

    A directory is resolved on its cached real parent, so a new path costs one
    readlink, not one per component. Results (and errors: a symlink loop is
    never guessed around) are cached for the object's life: make one per plan,
    over a tree that does not change meanwhile. Each method raises OSError
    (ELOOP on a loop, EINVAL for a path the OS refuses, e.g. with a NUL byte);
    the caller chooses its fallback.
    """

    def __init__(self, root):
        self.root = root
        self._dirs = {}          # in-image directory -> real path, or the OSError
        self._files = {}         # in-image path -> real path, or the OSError

    @staticmethod
    def _cached(cache, key, compute):
        real = cache.get(key)
        if real is None:
            try:
                real = compute(key)
            except OSError as exc:
                real = exc
            except ValueError as exc:
                real = OSError(errno.EINVAL, str(exc), key)
            cache[key] = real
        if isinstance(real, OSError):
            raise real
        return real

    def dir(self, directory):
        """Real in-image path of a directory (as Root.realpath)."""
        return self._cached(self._dirs, directory, self._dir_uncached)

    def _dir_uncached(self, directory):
        parent, name = os.path.split(directory.rstrip("/"))
        if not name:
            return "/"
        rparent = self.dir(parent or "/")
        if name == ".":
            return rparent
        if name == "..":
            return os.path.dirname(rparent) or "/"
        return self._resolve_last(rparent, name)

    def _resolve_last(self, real_parent, name):
        cand = real_parent.rstrip("/") + "/" + name
        try:
            os.readlink(self.root.host(cand))
        except OSError:
            return cand          # not a link (or missing): kept as is
        return self.root.realpath(cand)

    def file(self, path):
        """Real in-image path of a file: every symlink resolved, the last one too."""
        return self._cached(self._files, path, self._file_uncached)

    def _file_uncached(self, path):
        head, tail = os.path.split(path)
        if tail in ("", ".", ".."):
            return self.dir(path)
        return self._resolve_last(self.dir(head or "/"), tail)

    def try_dir(self, directory):
        """dir(), or None when the directory cannot be resolved."""
        try:
            return self.dir(directory)
        except OSError:
            return None

    def try_file(self, path):
        """file(), or None when the path cannot be resolved."""
        try:
            return self.file(path)
        except OSError:
            return None

    def realdir(self, path):
        """The path with its directory canonicalised but its last component kept.

        This is how file names are compared across usrmerge aliases
        (/lib/x86_64-linux-gnu/libc.so.6 == /usr/lib/x86_64-linux-gnu/libc.so.6).
        """
        path = os.fsdecode(path)
        head, tail = os.path.split(path.rstrip("/") or "/")
        if not tail:
            return "/"
        return self.dir(head or "/").rstrip("/") + "/" + tail


# ---------------------------------------------------------------------------
# Changing a tree: directory descriptors, never a path the kernel resolves.
#
# Every command that creates, re-modes, renames or deletes inside a tree goes
# through a Dir. A Dir is reached from the root down, one component at a time,
# each opened with O_DIRECTORY|O_NOFOLLOW relative to its parent's descriptor;
# a symlink met on the way is read (readlinkat) and resolved inside the root,
# never by the kernel. So a link swapped in for a directory at any moment is
# at worst followed inside the root, and an operation on a Dir's entries
# (dir_fd=) acts on the directory that was opened, wherever it has moved.

O_DIR = treewalk.O_DIR
O_READ = treewalk.O_READ
IdentityChanged = treewalk.IdentityChanged


def as_root(root):
    """A Root from a Root, a path or None ("/")."""
    if isinstance(root, Root):
        return root
    return Root("/" if root is None else root)


class Dir:
    """An open directory inside a root; every operation is relative to its descriptor.

    `path` is its in-image path (for messages). Names are single components
    (str with surrogateescape, or bytes); a name with a slash is refused.
    """

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path
        st = os.fstat(fd)
        self.dev, self.ino = st.st_dev, st.st_ino

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "Dir(%r)" % self.path

    def child_path(self, name):
        return self.path.rstrip("/") + "/" + os.fsdecode(name)

    def _name(self, name):
        if not name or "/" in os.fsdecode(name) or os.fsdecode(name) in (".", ".."):
            raise ValueError("not a single path component: %r" % (name,))
        return name

    # -- looking
    def lstat(self, name):
        return os.stat(self._name(name), dir_fd=self.fd, follow_symlinks=False)

    def names(self):
        return os.listdir(self.fd)

    def check(self, dev, ino):
        """Raise IdentityChanged unless this is the directory (dev, ino) recorded earlier."""
        st = os.fstat(self.fd)
        if (st.st_dev, st.st_ino) != (dev, ino):
            raise IdentityChanged(errno.ESTALE, "replaced since it was planned", self.path)

    # -- opening
    def subdir(self, name, create=False, mode=0o755):
        """The subdirectory `name` (never a symlink: ELOOP/ENOTDIR); mkdir first with create."""
        name = self._name(name)
        if create:
            try:
                os.mkdir(name, mode, dir_fd=self.fd)
            except FileExistsError:
                pass
        fd = os.open(name, O_DIR, dir_fd=self.fd)
        return Dir(fd, self.child_path(name))

    def open(self, name, flags=os.O_RDONLY, mode=0o644):
        """os.open of the entry `name`; never follows a symlink (ELOOP), never blocks on a FIFO."""
        flags |= os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
        if not flags & (os.O_WRONLY | os.O_RDWR):
            flags |= getattr(os, "O_NONBLOCK", 0)
        return os.open(self._name(name), flags, mode, dir_fd=self.fd)

    # -- changing
    def write_atomic(self, name, data, mode=0o644, temp=None):
        """Replace `name` by a file holding `data` with permissions `mode`.

        The data goes to a new file `temp` (default ".NAME.PID.tmp", created
        O_EXCL, so never through an existing link), is fchmod-ed and renamed
        over `name`; on any failure the temporary file is removed.
        """
        name = self._name(name)
        temp = self._name(temp or ".%s.%d.tmp" % (os.fsdecode(name), os.getpid()))
        fd = self.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=self.fd)
            except OSError:
                pass
            raise

    def chmod(self, name, mode):
        """chmod the entry `name` through a descriptor (a symlink raises ELOOP)."""
        st = self.lstat(name)
        flags = O_DIR if stat.S_ISDIR(st.st_mode) else O_READ
        fd = os.open(self._name(name), flags, dir_fd=self.fd)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise IdentityChanged(errno.ESTALE, "replaced while changing its mode",
                                      self.child_path(name))
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def chmod_self(self, mode):
        os.fchmod(self.fd, mode)

    def rename(self, src, dst):
        os.replace(self._name(src), self._name(dst), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name):
        os.unlink(self._name(name), dir_fd=self.fd)

    def rmdir(self, name):
        os.rmdir(self._name(name), dir_fd=self.fd)

    def remove(self, names):
        """Remove the entries `names` (files, links, whole directory trees) like `rm -rf`.

        Never follows a symlink, never crosses into another file system (a
        mount point below stays, with its parents), re-checks each directory's
        identity when it is entered again to delete. Returns a Removed.
        """
        result = Removed()
        top = treewalk.Node(None, self.path, self.dev, self.ino)
        ops, sizes = [], []
        for name in names:
            self._name(name)
            try:
                st = self.lstat(name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                result.failed.append((self.child_path(name), exc.strerror or str(exc)))
                continue
            if stat.S_ISDIR(st.st_mode):
                self._plan_subtree(top, name, ops, sizes, result)
            else:
                ops.append((top, name, None))
                sizes.append(_freed(st))

        def on_error(i, exc):
            parent, name, _node = ops[i]
            result.failed.append((parent.child_path(name), exc.strerror or str(exc)))

        for i in treewalk.remove(ops, self.fd, top, on_error):
            if ops[i][2] is None:
                result.files += 1
                result.bytes += sizes[i]
            else:
                result.dirs += 1
        return result

    def _plan_subtree(self, top, name, ops, sizes, result):
        """Append the post-order removal ops of the directory `name` (an entry of this Dir)."""
        cursor = treewalk.DirCursor(self.fd, top)
        try:
            try:
                fd, st = cursor.open_child(name)
            except OSError as exc:
                result.failed.append((top.child_path(name), exc.strerror or str(exc)))
                return
            if st.st_dev != self.dev:
                os.close(fd)
                result.kept.append((top.child_path(name), "mount point"))
                return
            node = treewalk.Node(top, name, st.st_dev, st.st_ino)
            cursor.push(fd, node)
            stack = [(node, sorted(os.listdir(fd), reverse=True))]
            while stack:
                node, pending = stack[-1]
                if not pending:
                    stack.pop()
                    cursor.pop()
                    if node.kept:
                        node.parent.kept += 1   # something stays inside: so does the directory
                    else:
                        ops.append((node.parent, node.name, node))
                        sizes.append(0)
                    continue
                entry = pending.pop()
                try:
                    st = os.stat(entry, dir_fd=cursor.fd, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        ops.append((node, entry, None))
                        sizes.append(_freed(st))
                        continue
                    cfd, cst = cursor.open_child(entry)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    result.failed.append((node.child_path(entry), exc.strerror or str(exc)))
                    node.kept += 1
                    continue
                if cst.st_dev != self.dev:
                    os.close(cfd)
                    result.kept.append((node.child_path(entry), "mount point"))
                    node.kept += 1
                    continue
                child = treewalk.Node(node, entry, cst.st_dev, cst.st_ino)
                cursor.push(cfd, child)
                stack.append((child, sorted(os.listdir(cfd), reverse=True)))
        finally:
            cursor.close()


class Removed:
    """What Dir.remove did: counts, and the paths it could not or would not remove."""

    def __init__(self):
        self.files = 0      # non-directories removed
        self.dirs = 0
        self.bytes = 0      # allocated bytes of the removed regular files (one link: freed)
        self.failed = []    # (path, reason)
        self.kept = []      # (path, reason): mount points left in place

    def __repr__(self):
        return "Removed(files=%d, dirs=%d, bytes=%d, failed=%r)" % (
            self.files, self.dirs, self.bytes, self.failed)


def _freed(st):
    if not stat.S_ISREG(st.st_mode):
        return 0
    return st.st_blocks * 512 if st.st_blocks else st.st_size


def open_dir(root, path, create=False, mode=0o755):
    """Open the in-image directory `path` from the root down, as a Dir.

    Each component is opened with O_DIRECTORY|O_NOFOLLOW relative to the one
    before; a symlink is read and resolved inside the root (an absolute target
    restarts at the root, ``..`` stops there), so nothing outside the root is
    ever reached, whatever is renamed or swapped meanwhile. With create,
    missing directories are made (mode `mode`). Raises OSError (ENOENT,
    ENOTDIR, ELOOP after 40 links) naming the in-image path.
    """
    root = as_root(root)
    path = os.fsdecode(path)
    if not path.startswith("/"):
        raise ValueError("not an absolute path: %r" % path)
    root_fd = os.open(root.path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    fds = [root_fd]
    names = []                      # the in-image path reached so far
    pending = [c for c in reversed(path.split("/")) if c]
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if len(fds) > 1:
                    os.close(fds.pop())
                    names.pop()
                continue
            here = "/" + "/".join(names + [name])
            try:
                fd = os.open(name, O_DIR, dir_fd=fds[-1])
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        target = os.readlink(name, dir_fd=fds[-1])
                    except OSError:
                        raise OSError(exc.errno, exc.strerror, here) from None
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), here) from None
                    if target.startswith("/"):
                        while len(fds) > 1:
                            os.close(fds.pop())
                        names = []
                    pending.extend(c for c in reversed(target.split("/")) if c)
                    continue
                if exc.errno == errno.ENOENT and create:
                    try:
                        os.mkdir(name, mode, dir_fd=fds[-1])
                    except FileExistsError:
                        pass
                    links += 1              # bounds the retries when a racer keeps removing it
                    if links > _MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), here) from None
                    pending.append(name)    # open it (or follow what raced in) next round
                    continue
                raise OSError(exc.errno, exc.strerror, here) from None
            fds.append(fd)
            names.append(name)
        result = Dir(fds[-1], "/" + "/".join(names))
        fds.pop()
        return result
    finally:
        for fd in fds:
            os.close(fd)
