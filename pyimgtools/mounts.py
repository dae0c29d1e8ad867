"""The mount table, from /proc/self/mountinfo (proc(5)).

A bind mount of a directory from the same file system has the same st_dev as
its parent, so neither `find -xdev` nor `rm --one-file-system` notices it; the
mount table does. Mount points are kept as bytes, with the kernel's octal
escapes (\\040 space, \\011 tab, \\012 newline, \\134 backslash) undone.
"""

import os
import re

MOUNTINFO = "/proc/self/mountinfo"

_OCTAL = re.compile(rb"\\([0-7]{3})")


def unescape(field):
    """Undo the kernel's octal escapes in one mountinfo field (bytes -> bytes)."""
    if b"\\" not in field:
        return field
    return _OCTAL.sub(lambda m: bytes((int(m.group(1), 8) & 0xFF,)), field)


class Mount:
    """One line of mountinfo: mount id, parent id, root inside its fs, mount point, fs type, source."""

    __slots__ = ("mount_id", "parent_id", "root", "mount_point", "fstype", "source")

    def __init__(self, mount_id, parent_id, root, mount_point, fstype, source):
        self.mount_id = mount_id
        self.parent_id = parent_id
        self.root = root
        self.mount_point = mount_point
        self.fstype = fstype
        self.source = source

    def __repr__(self):
        return "Mount(%r on %r type %r)" % (self.source, self.mount_point, self.fstype)


def parse_mountinfo(data):
    """Mounts in a mountinfo text (bytes). Malformed lines are skipped."""
    mounts = []
    for line in data.split(b"\n"):
        fields = line.split(b" ")
        if len(fields) < 10:
            continue
        try:
            sep = fields.index(b"-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        try:
            mount_id, parent_id = int(fields[0]), int(fields[1])
        except ValueError:
            continue
        mounts.append(Mount(mount_id, parent_id, unescape(fields[3]), unescape(fields[4]),
                            unescape(fields[sep + 1]), unescape(fields[sep + 2])))
    return mounts


class MountTable:
    """The set of mount points, with queries for the ones under a directory."""

    def __init__(self, mounts=(), available=True):
        self.mounts = list(mounts)
        self.available = available
        self.points = frozenset(_normalise(m.mount_point) for m in self.mounts)

    @classmethod
    def load(cls, path=MOUNTINFO):
        """The current process's mount table; `available` is False when it cannot be read."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return cls((), available=False)
        return cls(parse_mountinfo(data))

    def is_mount_point(self, path):
        return _normalise(os.fsencode(path)) in self.points

    def fstype_of(self, path):
        """The type (bytes) of the file system holding `path` (a real path: no
        symlink in it), or None: the mount with the longest mount point above
        it, the last one listed where mounts are stacked."""
        path = _normalise(os.fsencode(path))
        best, best_len = None, -1
        for m in self.mounts:
            point = _normalise(m.mount_point)
            inside = path == point or path.startswith(point if point.endswith(b"/") else point + b"/")
            if inside and len(point) >= best_len:
                best, best_len = m.fstype, len(point)
        return best

    def under(self, top):
        """Mount points strictly below the directory `top` (bytes or str), as bytes."""
        top = _normalise(os.fsencode(top))
        prefix = top if top.endswith(b"/") else top + b"/"
        return sorted(p for p in self.points if p.startswith(prefix) and p != top)


def _normalise(path):
    if len(path) > 1:
        path = path.rstrip(b"/") or b"/"
    return path


def ancestors_of(points, top):
    """Every directory between `top` (included) and each mount point (excluded), as bytes.

    A tree walk only needs to compare paths with the mount table while it is
    inside one of these directories; everywhere else no mount point can be a child.
    """
    top = _normalise(os.fsencode(top))
    result = set()
    for point in points:
        parent = os.path.dirname(point)
        while len(parent) >= len(top) and parent not in result:
            result.add(parent)
            if parent == top:
                break
            parent = os.path.dirname(parent)
    return result
