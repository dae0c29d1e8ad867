"""fd-based tree walking and removal that never follows a symlink.

Every directory is opened relative to its parent's descriptor with
O_NOFOLLOW | O_DIRECTORY, and every removal is `unlinkat`/`rmdir` with
`dir_fd`, so a symlink swapped in for a directory cannot redirect the walk or a
deletion outside the tree. Walks are iterative (no recursion limit) and keep at
most MAX_OPEN descriptors open: deeper ancestors are closed and re-opened
through `..`, checked against the (st_dev, st_ino) recorded on the way down.
Names are the surrogateescape strings os.scandir returns, which map back to the
exact bytes with os.fsencode.
"""

import errno
import os

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
O_READ = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
MAX_OPEN = 48


class Node:
    """A directory seen by a walk: its place in the tree and what the walk recorded in it.

    `files` holds the recorded non-directory entries as tuples
    (name, kind, size, nlink, ino, dev, rule) with kind 'f' (regular), 'l'
    (symlink) or 'o' (other); `kept` counts the entries that will stay whatever
    happens (not recorded, protected, mount points). The remaining slots belong
    to the walker (prune's rules).
    """

    __slots__ = ("parent", "name", "depth", "dev", "ino", "children", "files", "kept", "py",
                 "has_init", "candidate", "imported", "content_rule", "self_rule", "keep_self",
                 "pycache", "docroot", "selector", "mounts", "removed", "_path")

    def __init__(self, parent, name, dev, ino):
        self.parent = parent
        self.name = name
        self.depth = parent.depth + 1 if parent is not None else 0
        self.dev = dev
        self.ino = ino
        self.children = []
        self.files = []
        self.kept = 0
        self.py = None
        self.has_init = False
        self.candidate = False
        self.imported = False
        self.content_rule = None
        self.self_rule = None
        self.keep_self = False
        self.pycache = False
        self.docroot = None
        self.selector = None
        self.mounts = None
        self.removed = False
        self._path = None

    def path(self):
        """The node's path (str, surrogateescape); the root node's name is its full path."""
        if self._path is None:
            chain = []
            node = self
            while node is not None and node._path is None:
                chain.append(node)
                node = node.parent
            base = node._path if node is not None else None
            for n in reversed(chain):
                if base is None:
                    base = n.name
                else:
                    base = (base if base != "/" else "") + "/" + n.name
                n._path = base
        return self._path

    def child_path(self, name):
        base = self.path()
        return (base if base != "/" else "") + "/" + name

    def __repr__(self):
        return "Node(%r)" % self.path()


class IdentityChanged(OSError):
    """A directory is not the one recorded earlier (moved, or replaced since)."""


class DirCursor:
    """A position in a tree, as a chain of directory descriptors from its root node."""

    def __init__(self, root_fd, root_node):
        self.fds = [root_fd]
        self.node = root_node

    @property
    def fd(self):
        return self.fds[-1]

    def open_child(self, name):
        """Open the directory `name` in the current one (never a symlink); returns (fd, stat)."""
        return _open_dir(name, O_DIR, self.fds[-1])

    def push(self, fd, node):
        """Enter `node`, a child of the current node, through its already opened `fd`."""
        self.fds.append(fd)
        self.node = node
        old = len(self.fds) - 1 - MAX_OPEN
        if old >= 1 and self.fds[old] is not None:
            os.close(self.fds[old])
            self.fds[old] = None

    def pop(self):
        """Go back to the parent node."""
        fd = self.fds.pop()
        parent = self.node.parent
        try:
            if self.fds[-1] is None:
                pfd = os.open("..", O_DIR, dir_fd=fd)
                st = os.fstat(pfd)
                if (st.st_dev, st.st_ino) != (parent.dev, parent.ino):
                    os.close(pfd)
                    raise IdentityChanged(errno.ESTALE, "directory moved during the walk", parent.path())
                self.fds[-1] = pfd
        finally:
            os.close(fd)
            self.node = parent

    def descend(self, node):
        """Enter the recorded child `node`, checking that it is still the same directory."""
        fd, st = self.open_child(node.name)
        if (st.st_dev, st.st_ino) != (node.dev, node.ino):
            os.close(fd)
            raise IdentityChanged(errno.ESTALE, "directory replaced since it was planned", node.path())
        self.push(fd, node)

    def goto(self, target, bad=None):
        """Move to the recorded node `target` (in the same tree).

        Raises OSError when a directory on the way cannot be entered; a node in
        the set `bad` (directories that failed before) raises SkipSubtree.
        """
        cur = self.node
        if cur is target:
            return
        down = []
        t = target
        while t.depth > cur.depth:
            down.append(t)
            t = t.parent
        while cur.depth > t.depth:
            self.pop()
            cur = self.node
        while cur is not t:
            self.pop()
            cur = self.node
            down.append(t)
            t = t.parent
        for n in reversed(down):
            if bad is not None and n in bad:
                raise SkipSubtree(n)
            try:
                self.descend(n)
            except OSError:
                if bad is not None:
                    bad.add(n)
                raise

    def close(self):
        """Close every descriptor but the root's (which belongs to the caller)."""
        for fd in self.fds[1:]:
            if fd is not None:
                os.close(fd)
        self.fds = self.fds[:1]


class SkipSubtree(Exception):
    """The target lies under a directory that already failed to open."""

    def __init__(self, node):
        super().__init__(node)
        self.node = node


def open_top(path):
    """Open a walk's top directory (following symlinks in `path` itself); returns (fd, stat)."""
    return _open_dir(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0), None)


def _open_dir(path, flags, dir_fd):
    """(fd, its stat); the fd is closed when the stat fails."""
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    return fd, st


def remove(ops, root_fd, root_node, on_error, workers=1):
    """Perform removals; returns the indexes (into `ops`) of those that succeeded.

    `ops` is a list of (parent_node, name, node_or_None) in post-order: a file or
    symlink when node is None, else the directory `node` (a child of
    parent_node), listed after everything planned inside it. A directory is
    only removed when everything planned inside it went; the first failure
    under it is reported once through on_error(index, exc), and the
    directories above a failure are left alone without further reports.

    With workers > 1 independent subtrees are removed by several threads (the
    system calls release the GIL), each through its own descriptors; the
    directories at the top of each removed subtree go last.
    """
    incomplete = set()
    done = []
    if workers <= 1 or len(ops) < 256:
        _remove_batch(ops, range(len(ops)), root_fd, root_node, on_error, incomplete, done)
        return sorted(done)
    units, last = _units(ops)
    import queue
    import threading
    work = queue.Queue()
    for unit in units:
        work.put(unit)
    errors = []

    def worker():
        fd = os.dup(root_fd)
        try:
            while True:
                try:
                    unit = work.get_nowait()
                except queue.Empty:
                    return
                _remove_batch(ops, unit, fd, root_node, on_error, incomplete, done)
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    _remove_batch(ops, last, root_fd, root_node, on_error, incomplete, done)
    return sorted(done)


def _units(ops, batch=128):
    """Split post-ordered ops into independent units, plus the ops that must come last.

    A removed subtree's top directory (its parent stays) is removed last; each
    subdirectory of it is one unit (its ops are contiguous in post-order), and
    its own files and the single files elsewhere are batched.
    """
    removed = set(id(node) for _, _, node in ops if node is not None)
    head = {}  # id(dir node) -> True when it heads a unit (its parent is a top)
    units = []
    last = []
    loose = []
    current = {}  # id(unit head) -> list of indexes
    for i, (parent, name, node) in enumerate(ops):
        if id(parent) not in removed:
            if node is None:
                loose.append(i)
                if len(loose) >= batch:
                    units.append(loose)
                    loose = []
            else:
                last.append(i)
            continue
        # parent is removed: find the unit head (child of a top), memoised
        key = _unit_head(parent if node is None else node, removed, head)
        if key is None:  # a file directly in a top directory
            loose.append(i)
            if len(loose) >= batch:
                units.append(loose)
                loose = []
            continue
        current.setdefault(key, []).append(i)
        if node is not None and id(node) == key:
            units.append(current.pop(key))
    if loose:
        units.append(loose)
    units.extend(current.values())  # (only if ops were not in post-order)
    return units, last


def _unit_head(node, removed, head):
    """id of the ancestor-or-self of `node` whose parent is the top of a removed subtree, or None."""
    chain = []
    result = None
    n = node
    while True:
        known = head.get(id(n))
        if known is not None or id(n) in head:
            result = known
            break
        parent = n.parent
        if parent is None or id(parent) not in removed:
            result = None  # n is the top itself
            head[id(n)] = None
            break
        grand = parent.parent
        if grand is None or id(grand) not in removed:
            result = id(n)  # parent is a top
            head[id(n)] = result
            break
        chain.append(n)
        n = parent
    for c in chain:
        head[id(c)] = result
    return result


def _remove_batch(ops, indexes, root_fd, root_node, on_error, incomplete, done):
    cursor = DirCursor(root_fd, root_node)
    unlink = os.unlink
    rmdir = os.rmdir
    bad = set()
    try:
        for i in indexes:
            parent, name, node = ops[i]
            if node is not None and node in incomplete:
                incomplete.add(parent)
                continue
            if cursor.node is not parent:
                try:
                    cursor.goto(parent, bad)
                except SkipSubtree:
                    incomplete.add(parent)
                    continue
                except OSError as exc:
                    incomplete.add(parent)
                    on_error(i, exc)
                    continue
            try:
                if node is None:
                    unlink(name, dir_fd=cursor.fds[-1])
                else:
                    rmdir(name, dir_fd=cursor.fds[-1])
            except OSError as exc:
                incomplete.add(parent)
                if node is not None:
                    bad.add(node)
                on_error(i, exc)
                continue
            done.append(i)
    finally:
        cursor.close()
