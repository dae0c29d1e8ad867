"""File-system access inside an image root.

``--root DIR`` means every absolute path is read inside DIR, and every symlink
is resolved as if DIR were ``/`` (an absolute link target restarts at DIR, ``..``
never climbs above it). Commands never follow a link out of the root.
"""

import errno
import os
import stat

from pyimgtools.errors import PyimgtoolsError

_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


class Root:
    """An image's file-system root as seen from the host."""

    def __init__(self, path="/"):
        path = os.fsdecode(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise PyimgtoolsError("--root %s: %s" % (path, exc.strerror or exc)) from None
        if not stat.S_ISDIR(st.st_mode):
            raise PyimgtoolsError("--root %s: not a directory" % path)
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
        """The path with its directory canonicalised but its last component kept.

        This is how file names are compared across usrmerge aliases
        (/lib/x86_64-linux-gnu/libc.so.6 == /usr/lib/x86_64-linux-gnu/libc.so.6).
        """
        path = os.fsdecode(path)
        head, tail = os.path.split(path.rstrip("/") or "/")
        if not tail:
            return "/"
        head = self.realpath(head or "/")
        return head.rstrip("/") + "/" + tail

    def open(self, path, mode="rb"):
        """Open an in-image path after resolving it inside the root."""
        return open(self.host(self.realpath(path)), mode)

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
