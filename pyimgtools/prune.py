"""`pyimgtools prune`: remove dead weight from an image tree, safely.

Default rules are the upstream recipe's (docker-library/python):

    find /usr/local -depth \\( \\( -type d -a \\( -name test -o -name tests -o -name idle_test \\) \\) \\
        -o \\( -type f -a \\( -name '*.pyc' -o -name '*.pyo' -o -name 'libpython*.a' \\) \\) \\) \\
        -exec rm -rf '{}' +

plus the `__pycache__` directories that leaves empty. A `test`/`tests` package is
kept when code outside the test directories imports it at module level. A legacy
`foo.pyc` (not in `__pycache__`) without a regular `foo.py` beside it is kept: the
importer loads it as the module itself (sourceless distributions, `compileall -b`)
and `compile` cannot write it again.

plan:  one fd-based walk per tree records the directories, the entries the rules
       match and everything inside candidate subtrees; the import check then
       decides which test directories stay; a post-order pass turns that into the
       exact list of removals (children before their directory).
apply: the same list, removed through directory descriptors.
"""

import dataclasses
import errno
import os
import re
import stat
import time

from pyimgtools import apt, commandnames, pyimports, treewalk
from pyimgtools.errors import PyimgtoolsError, UsageError
from pyimgtools.mounts import MountTable, ancestors_of
from pyimgtools.report import display_path, envelope, format_bytes, format_count, json_path

NAME = commandnames.PRUNE

TEST_DIRS = ("test", "tests", "idle_test")
IMPORT_CHECKED = ("test", "tests")
DOC_DIRS = ("doc", "man", "info", "locale")
TK_DIRS = ("tkinter", "idlelib", "turtledemo")
_IDLE_SCRIPT = re.compile(r"idle(3(\.\d+)?)?\Z")
_MAN_SECTION = re.compile(r"man\d")

# Frame modes of the walk.
M_NORMAL = 0   # the tree rules apply
M_INERT = 1    # inside a subtree that goes as a whole (or a .dist-info): record only
M_DOC = 2      # under share/doc: `copyright` files stay
M_CACHE = 3    # a cache directory walked on its own: only its selector applies

KINDS = {"f": "file", "l": "symlink", "o": "other", "d": "dir"}

# The recorded "rule" of sourceless bytecode: kept, and listed as kept (unless a
# directory around it goes as a whole, e.g. a test directory).
SOURCELESS = "sourceless"

# What Walker.file_rule returns besides a rule name or None.
STAYS = "stays"      # stays even inside a recorded subtree
LEGACY = "legacy"    # a legacy .pyc: decided by the .py files beside it


class Rules:
    """Which rules are on (from the command line)."""

    def __init__(self, tests=True, bytecode=True, static_libs=False, docs=False, caches=False,
                 tk=False, keep=(), import_check=True):
        self.tests = tests
        self.bytecode = bytecode
        self.static_libs = static_libs
        self.docs = docs
        self.caches = caches
        self.tk = tk
        self.keep = list(keep)
        self.import_check = import_check

    def names(self):
        names = []
        if self.tests:
            names.append("tests")
        if self.bytecode:
            names.append("bytecode")
        names.append("static-libs" if self.static_libs else "libpython-static")
        for flag in ("docs", "caches", "tk"):
            if getattr(self, flag):
                names.append(flag)
        return names


# ---------------------------------------------------------------- plan data

class Removal:
    """One path the plan removes: a file/symlink in `parent`, or the directory `node`."""

    __slots__ = ("tree", "parent", "name", "node", "kind", "size", "rule", "nlink", "ino", "dev")

    def __init__(self, tree, parent, name, node, kind, size, rule, nlink=1, ino=0, dev=0):
        self.tree = tree
        self.parent = parent
        self.name = name
        self.node = node
        self.kind = kind
        self.size = size
        self.rule = rule
        self.nlink = nlink
        self.ino = ino
        self.dev = dev

    def path(self):
        return self.tree.image_path(self.parent.child_path(self.name))


class Tree:
    """One walked top directory: in-image path, host path (canonical), root node."""

    def __init__(self, image, host, root_prefix, node, cache_job=None):
        self.image = image
        self.host = host
        self.root_prefix = root_prefix  # "" when --root is /
        self.node = node
        self.cache_job = cache_job
        self.mount_points = ()
        self.mount_ancestors = None

    def image_path(self, host_path):
        """In-image form of a host path under this tree."""
        if not self.root_prefix:
            return host_path
        return host_path[len(self.root_prefix):] or "/"


class Kept:
    """A test directory kept because code outside the test directories imports it."""

    def __init__(self, path, module, importer, lineno, imported, note=None):
        self.path = path
        self.module = module
        self.importer = importer
        self.lineno = lineno
        self.imported = imported
        self.note = note


class Plan:
    """What a prune would remove (and keep, skip, warn about) in its trees."""
    def __init__(self, rules):
        self.rules = rules
        self.trees = []
        self.removals = []
        self.kept = []          # Kept
        self.sourceless = []    # in-image paths of the sourceless .pyc files kept
        self.skipped = []       # (path, reason): mount points and the like met inside pruned subtrees
        self.warnings = []      # (path, message) found while planning
        self.errors = []        # (path, message) that make the run fail (unreadable directories)

    def totals(self, removals=None):
        """files, dirs, bytes freed (hard links counted once), per-rule counts, hard-link notes."""
        removals = self.removals if removals is None else removals
        by_rule = {}
        links = {}
        for r in removals:
            if r.kind == "f" and r.nlink > 1:
                key = (r.dev, r.ino)
                links[key] = links.get(key, 0) + 1
        files = dirs = total = 0
        hard = {"files": 0, "inodes": 0, "bytes_freed": 0, "bytes_not_freed": 0}
        seen = set()
        for r in removals:
            entry = by_rule.setdefault(r.rule, {"files": 0, "dirs": 0, "bytes": 0})
            if r.kind == "d":
                dirs += 1
                entry["dirs"] += 1
                continue
            files += 1
            entry["files"] += 1
            size = r.size
            if r.kind == "f" and r.nlink > 1:
                # bytes are freed once, with the last link, and only if every link goes
                key = (r.dev, r.ino)
                hard["files"] += 1
                if key in seen:
                    size = 0
                else:
                    seen.add(key)
                    hard["inodes"] += 1
                    if links[key] < r.nlink:
                        hard["bytes_not_freed"] += size
                        size = 0
                    else:
                        hard["bytes_freed"] += size
            total += size
            entry["bytes"] += size
        return files, dirs, total, by_rule, hard


# ---------------------------------------------------------------- the walk

class Walker:
    """Classifies the entries of the directories a walk opens (prune's rules)."""

    def __init__(self, rules, plan, cache_tops):
        self.rules = rules
        self.plan = plan
        self.cache_tops = cache_tops    # (dev, ino) -> CacheJob
        self.keep = rules.keep
        self.covered = set()            # cache jobs met inside a tree

    # -- classification of one directory's entries
    def scan(self, tree, node, fd, mode, record):
        """List one directory; returns the subdirectories to enter as (name, mode, record, setup).

        The rules themselves are subdir() and file_rule(); this applies them to
        each entry, after the mount points and --keep patterns that override them.
        """
        to_enter = []
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            self.plan.errors.append((tree.image_path(node.path()), exc.strerror or str(exc)))
            node.kept += 1
            return to_enter
        mount_points = self._mount_children(tree, node)
        keep = self.keep
        parent_name = node.name if node.parent is not None else os.path.basename(node.name)
        subdir = self.subdir
        file_rule = self.file_rule
        legacy = []
        kept = 0
        for entry in entries:
            name = entry.name
            if mount_points is not None and name in mount_points:
                self._mount_point(tree, node, name)
                kept += 1
                continue
            if keep and self._protected(tree, node, name):
                kept += 1
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                step = subdir(node, name, mode, record, parent_name)
                if step is None:
                    kept += 1
                else:
                    to_enter.append(step)
                continue
            rule = file_rule(node, entry, name, mode, parent_name)
            if rule is LEGACY:
                legacy.append(entry)  # decided once every .py here is known
            elif rule is STAYS or (rule is None and not record):
                kept += 1
            else:
                self._record(tree, node, entry, rule)
        node.kept += kept
        if legacy:
            self._legacy_bytecode(tree, node, legacy)
        return to_enter

    def subdir(self, node, name, mode, record, parent_name):
        """Prune's rules for the subdirectory `name` of `node` (scanned in `mode`,
        its entries recorded or not): (name, mode, record, setup) to enter it, or
        None to leave it unentered (it stays)."""
        rules = self.rules
        selector = node.selector
        if selector is not None:
            if selector.wants(name, True):
                return (name, M_INERT, True, ("subtree", "caches"))
            if mode == M_CACHE:
                return None
        if mode == M_NORMAL:
            if name in TEST_DIRS and rules.tests:
                return (name, M_NORMAL, True, ("candidate", "tests"))
            if name.endswith(".dist-info"):
                return (name, M_INERT, True, None) if record else None
            if name == "__pycache__" and rules.bytecode:
                return (name, M_NORMAL, record, ("pycache", None))
            if rules.tk and name in TK_DIRS and parent_name.startswith("python"):
                return (name, M_INERT, True, ("subtree", "tk"))
            if rules.docs and name in DOC_DIRS and parent_name == "share":
                return (name, M_DOC if name == "doc" else M_INERT, True, ("docroot", name))
            return (name, M_NORMAL, record, None)
        if mode == M_DOC:
            return (name, M_DOC, True, None)
        if node.docroot == "man" and _MAN_SECTION.match(name):
            return (name, M_INERT, True, ("mansection",))
        return (name, M_INERT, record, None)

    def file_rule(self, node, entry, name, mode, parent_name):
        """Prune's rules for the non-directory `entry` of `node`: the rule that
        removes it, None (no rule: it goes only with a recorded subtree), STAYS
        (it stays even then) or LEGACY (a legacy .pyc: it depends on the .py files
        beside it). Notes the regular .py files of a normal directory in node.py."""
        selector = node.selector
        if selector is not None and selector.wants(name, False) and \
                (not selector.files_only or entry.is_file(follow_symlinks=False)):
            return "caches"
        if mode == M_NORMAL:
            rules = self.rules
            if name[-4:] in (".pyc", ".pyo"):
                if rules.bytecode and entry.is_file(follow_symlinks=False):
                    if name[-1] == "c" and not node.pycache:
                        return LEGACY
                    return "bytecode"
            elif name.endswith(".py"):
                if entry.is_file(follow_symlinks=False):
                    if node.py is None:
                        node.py = [name]
                    else:
                        node.py.append(name)
                    if name == "__init__.py":
                        node.has_init = True
            elif name.endswith(".a"):
                if (rules.static_libs or name.startswith("libpython")) and \
                        entry.is_file(follow_symlinks=False):
                    return "static-libs" if rules.static_libs else "libpython-static"
            elif rules.tk:
                if parent_name == "lib-dynload" and name.startswith("_tkinter") and \
                        entry.is_file(follow_symlinks=False):
                    return "tk"
                if parent_name == "bin" and _IDLE_SCRIPT.match(name):
                    return "tk"
            return None
        if mode == M_DOC:
            return STAYS if name == "copyright" else None
        if mode == M_CACHE or (node.docroot == "locale" and name == "locale.alias"):
            return STAYS
        return None

    def _mount_point(self, tree, node, name):
        """`name` in `node` is a mount point: never entered, it stays."""
        node.mounts = (node.mounts or []) + [name]
        if name in TEST_DIRS and self.rules.tests:
            self.plan.skipped.append((tree.image_path(node.child_path(name)),
                                      "mount point named like a test directory"))

    def _legacy_bytecode(self, tree, node, entries):
        """Legacy foo.pyc files of one directory (regular files, outside __pycache__):
        dead weight when a regular foo.py is beside them (the importer prefers the
        source, and compile writes its cache), the module itself when none is."""
        sources = set(node.py or ())
        for entry in entries:
            has_source = entry.name[:-4] + ".py" in sources
            self._record(tree, node, entry, "bytecode" if has_source else SOURCELESS)

    def _record(self, tree, node, entry, rule):
        name = entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno != 2:  # gone meanwhile: nothing to do
                self.plan.errors.append((tree.image_path(node.child_path(name)), exc.strerror or str(exc)))
                node.kept += 1
            return
        mode_bits = st.st_mode
        if stat.S_ISREG(mode_bits):
            kind = "f"
        elif stat.S_ISLNK(mode_bits):
            kind = "l"
        elif stat.S_ISDIR(mode_bits):  # replaced by a directory meanwhile
            node.kept += 1
            return
        else:
            kind = "o"
        node.files.append((name, kind, st.st_size if kind != "o" else 0, st.st_nlink,
                           st.st_ino, st.st_dev, rule))

    def _protected(self, tree, node, name):
        import fnmatch
        path = tree.image_path(node.child_path(name))
        for pattern in self.keep:
            if fnmatch.fnmatchcase(path, pattern):
                return True
        return False

    def _mount_children(self, tree, node):
        """Names in `node` that are mount points, or None when none can be."""
        on_path = tree.mount_ancestors
        if not on_path:
            return None
        host = os.fsencode(node.path())
        if host not in on_path:
            return None
        prefix = host if host.endswith(b"/") else host + b"/"
        names = set()
        for point in tree.mount_points:
            if point.startswith(prefix) and b"/" not in point[len(prefix):]:
                names.add(os.fsdecode(point[len(prefix):]))
        return names or None

    # -- one tree
    def walk(self, tree, fd, top_mode):
        """Iterative depth-first walk of `tree` (its root fd open); fills the node tree."""
        root_node = tree.node
        cursor = treewalk.DirCursor(fd, root_node)
        plan = self.plan
        try:
            pending = self.scan(tree, root_node, fd, top_mode, False)
            stack = [(root_node, pending, top_mode)]
            while stack:
                node, pending, mode = stack[-1]
                if not pending:
                    stack.pop()
                    if stack:
                        cursor.pop()
                    continue
                name, child_mode, record, setup = pending.pop()
                try:
                    cfd, st = cursor.open_child(name)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        continue
                    plan.errors.append((tree.image_path(node.child_path(name)), exc.strerror or str(exc)))
                    node.kept += 1
                    continue
                if st.st_dev != node.dev:
                    os.close(cfd)
                    node.kept += 1
                    node.mounts = (node.mounts or []) + [name]
                    continue
                child = treewalk.Node(node, name, st.st_dev, st.st_ino)
                job = self.cache_tops.get((st.st_dev, st.st_ino)) if self.cache_tops else None
                if job is not None and mode != M_CACHE:
                    child.selector = job
                    self.covered.add(job)
                if setup is not None:
                    what = setup[0]
                    if what == "candidate":
                        child.candidate = True
                        child.content_rule = child.self_rule = "tests"
                    elif what == "subtree":
                        child.content_rule = child.self_rule = setup[1]
                    elif what == "pycache":
                        child.pycache = True
                    elif what == "docroot":
                        child.content_rule = "docs"
                        child.keep_self = True
                        child.docroot = setup[1]
                    elif what == "mansection":
                        child.keep_self = True
                node.children.append(child)
                cursor.push(cfd, child)
                stack.append((child, self.scan(tree, child, cfd, child_mode, record), child_mode))
        finally:
            cursor.close()


class CacheJob:
    """A cache directory and which of its entries go."""

    def __init__(self, image, wants_dir, wants_file, files_only=True):
        self.image = image
        self._dir = wants_dir
        self._file = wants_file
        self.files_only = files_only

    def wants(self, name, is_dir):
        return self._dir(name) if is_dir else self._file(name)


def cache_jobs():
    homes = ["/root"]
    home = os.environ.get("HOME")
    if home and home.startswith("/") and home.rstrip("/") not in homes:
        homes.append(home.rstrip("/"))
    jobs = [CacheJob(h + "/.cache", lambda n: n in ("pip", "uv"), lambda n: False) for h in homes]
    for leftover in apt.LEFTOVERS:
        jobs.append(CacheJob(leftover.directory,
                             lambda n, l=leftover: l.wants(n, True),
                             lambda n, l=leftover: l.wants(n, False),
                             files_only=not leftover.whole))
    return jobs


# ---------------------------------------------------------------- refusals

# The top-level directories of the FHS and of Debian's images, and the /usr
# directories usrmerge makes of /bin, /sbin and /lib*: each holds far more than
# one application's tree (other programs' tests/, every package's bytecode), so a
# PATH that is one of them is almost always a mistake (an unset variable,
# WORKDIR /). /usr/local, /opt/X and /app stay allowed: a prefix or an
# application's own tree.
_USRMERGED = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_DIRS = frozenset(_USRMERGED + tuple("/usr" + d for d in _USRMERGED) + (
    "/boot", "/dev", "/etc", "/home", "/media", "/mnt", "/opt", "/proc", "/root", "/run",
    "/srv", "/sys", "/tmp", "/usr", "/var"))
ALLOW_FLAG = "--allow-system-dirs"


def refusal(root, path):
    """Why prune refuses the PATH argument `path` without --allow-system-dirs, or None."""
    if path == "":
        return "an empty path (it would mean the current directory; is a variable unset?)"
    image = _canonical(root, path)
    shown = path if path == image else "%s (%s)" % (path, image)
    if image == "/":
        return "%s is the file-system root" % shown
    if image in SYSTEM_DIRS:
        return "%s is a top-level system directory" % shown
    return None


def check_targets(root, paths, allowed=False):
    """Raise a one-line usage error for the first PATH prune must not take."""
    if allowed:
        return
    for path in paths:
        why = refusal(root, path)
        if why:
            raise UsageError("refusing to prune: %s; name the tree to prune (e.g. /usr/local) or "
                             "pass %s" % (why, ALLOW_FLAG))


# ---------------------------------------------------------------- planning

def _canonical(root, path):
    if not os.path.isabs(path):
        if not root.is_host:
            raise UsageError("%s: paths must be absolute with --root" % path)
        path = os.path.abspath(path)
    try:
        return root.realpath(path)
    except OSError as exc:
        raise PyimgtoolsError("%s: %s" % (path, exc.strerror or exc))


def make_plan(root, paths, rules, mounts, out=None):
    """Walk `paths` (outermost only when nested) by `rules`, never crossing a
    mount point of `mounts`: the Plan a real run applies and a dry run prints."""
    plan = Plan(rules)
    images = []
    for p in paths:
        image = _canonical(root, p)
        if not os.path.isdir(root.host(image)):
            raise PyimgtoolsError("%s: %s" % (p, "not a directory" if os.path.lexists(root.host(image))
                                              else "no such directory"))
        images.append(image)
    # nested or repeated trees: walk the outermost only
    tops = []
    for image in sorted(set(images), key=len):
        if not any(image == t or image.startswith(t.rstrip("/") + "/") for t in tops):
            tops.append(image)
    cache_tops = {}
    jobs = []
    if rules.caches:
        for job in cache_jobs():
            try:
                image = root.realpath(job.image)
                st = os.stat(root.host(image))
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in cache_tops:
                continue
            job.image = image
            cache_tops[(st.st_dev, st.st_ino)] = job
            jobs.append(job)
    walker = Walker(rules, plan, cache_tops)
    for image in tops:
        _walk_top(walker, root, image, M_NORMAL, mounts, plan)
    for job in jobs:
        if job not in walker.covered:
            _walk_top(walker, root, job.image, M_CACHE, mounts, plan, job)
    if rules.tests and rules.import_check:
        ImportCheck(plan, root).run()
    for tree in plan.trees:
        _decide(plan, tree)
    return plan


def _walk_top(walker, root, image, mode, mounts, plan, job=None):
    root_prefix = "" if root.is_host else os.path.realpath(root.path)
    host = image if root.is_host else (root_prefix + image if image != "/" else root_prefix)
    try:
        fd, st = treewalk.open_top(host)
    except OSError as exc:
        raise PyimgtoolsError("%s: %s" % (image, exc.strerror or exc))
    try:
        node = treewalk.Node(None, host, st.st_dev, st.st_ino)
        node.keep_self = True
        if job is not None:
            node.selector = job
        tree = Tree(image, host, root_prefix, node, job)
        tree.mount_points = mounts.under(host)
        tree.mount_ancestors = ancestors_of(tree.mount_points, host) if tree.mount_points else None
        plan.trees.append(tree)
        walker.walk(tree, fd, mode)
    finally:
        os.close(fd)
    return tree


def _decide(plan, tree):
    """Post-order pass: the exact removals, children before their directory."""
    removals = plan.removals
    rules = plan.rules
    root_node = tree.node
    stack = [(root_node, None, False)]
    while stack:
        node, inherited, post = stack.pop()
        own = node.content_rule if not node.imported else None  # a kept test directory
        content = inherited or own
        if not post:
            stack.append((node, inherited, True))
            for child in reversed(node.children):
                stack.append((child, content, False))
            continue
        complete = node.kept == 0
        for (name, kind, size, nlink, ino, dev, rule) in node.files:
            r = content or rule
            if r is None or r == SOURCELESS:
                if r is not None:
                    plan.sourceless.append(tree.image_path(node.child_path(name)))
                complete = False
                continue
            removals.append(Removal(tree, node, name, None, kind, size, r, nlink, ino, dev))
        for child in node.children:
            if child.removed is not True:
                complete = False
        if node.mounts:
            for name in node.mounts:
                if content:
                    plan.skipped.append((tree.image_path(node.child_path(name)), "mount point"))
        if node.parent is None or node.keep_self or not complete:
            continue
        self_rule = inherited or (node.self_rule if not node.imported else None)
        if self_rule is None and node.pycache and rules.bytecode:
            self_rule = "bytecode"
        if self_rule is None:
            continue
        removals.append(Removal(tree, node.parent, node.name, node, "d", 0, self_rule))
        node.removed = True


# ---------------------------------------------------------------- import check

class ImportCheck:
    """Keeps test packages that modules outside the test directories import at module level.

    Scope: the importers looked at are the source files of the top-level
    package that contains the test directory (where every known case lives:
    numpy.testing -> numpy/_core/tests, networkx -> networkx.tests,
    django.core.management.commands.test -> django.test). A test directory
    whose parent is not a package (no __init__.py) is not importable as part of
    one and is not checked. A file is only parsed (ast) when a cheap byte search
    finds an import statement that could name the directory.
    """

    def __init__(self, plan, root):
        self.plan = plan
        self.root = root
        self.parsed = {}

    def run(self):
        """Keep the test packages that code outside them imports (IMPORT_CHECKED
        names inside packages): drop their removals, record why."""
        plan = self.plan
        by_top = {}
        for tree in plan.trees:
            for cand in _candidates(tree.node):
                parent = cand.parent
                if cand.name not in IMPORT_CHECKED or parent is None or not parent.has_init:
                    continue
                chain = []
                n = parent
                top = parent
                while n is not None and n.has_init:
                    chain.append(_node_basename(n))
                    top = n
                    n = n.parent
                module = ".".join(reversed(chain)) + "." + cand.name
                by_top.setdefault(id(top), (tree, top, []))[2].append((cand, module))
        for tree, top, cands in by_top.values():
            self._check_package(tree, top, cands)

    def _check_package(self, tree, top, cands):
        pending = {id(c): (c, m) for c, m in cands}
        words = sorted({c.name.encode() for c, _ in cands})
        fd = None
        try:
            fd, st = treewalk.open_top(tree.host)
            if (st.st_dev, st.st_ino) != (tree.node.dev, tree.node.ino):
                return
            cursor = treewalk.DirCursor(fd, tree.node)
            changed = True
            while changed and pending:
                changed = False
                top_module = _module_of(top)
                stack = [(top, top_module)]
                while stack and pending:
                    node, package = stack.pop()
                    if node.candidate and not node.imported:
                        continue  # inside a test directory that still goes
                    for child in node.children:
                        stack.append((child, package + "." + child.name))
                    if not node.py:
                        continue
                    for name in node.py:
                        imports = self._imports(tree, cursor, node, name, package, cands, words)
                        if not imports:
                            continue
                        for key, (cand, module) in list(pending.items()):
                            hit = pyimports.imports_module(imports, module)
                            if hit is not None:
                                cand.imported = True
                                del pending[key]
                                changed = True
                                note = getattr(imports, "note", None)
                                self.plan.kept.append(Kept(
                                    tree.image_path(cand.path()), module,
                                    tree.image_path(node.child_path(name)), hit.lineno, hit.module, note))
            cursor.close()
        except OSError as exc:
            self.plan.warnings.append((tree.image_path(top.path()), "import check: %s" % (exc.strerror or exc)))
        finally:
            if fd is not None:
                os.close(fd)

    def _imports(self, tree, cursor, node, name, package, cands, words):
        key = (id(node), name)
        if key in self.parsed:
            return self.parsed[key]
        result = None
        try:
            cursor.goto(node)
            fd = os.open(name, treewalk.O_READ, dir_fd=cursor.fd)
            try:
                chunks = []
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                data = b"".join(chunks)
            finally:
                os.close(fd)
        except OSError as exc:
            self.plan.warnings.append((tree.image_path(node.child_path(name)),
                                       "not read for the import check: %s" % (exc.strerror or exc)))
            self.parsed[key] = None
            return None
        statements, indented = pyimports.import_statements(data, words)
        if statements or indented:
            result = []
            other = False
            for lineno, text in statements:
                try:
                    result.extend(pyimports.statement_imports(lineno, text, package))
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    other = True  # not a statement on its own after all
                    break
            for lineno, text in indented:
                if other:
                    break
                try:
                    imps = pyimports.statement_imports(lineno, text, package)
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    other = True
                    break
                other = any(pyimports.imports_module(imps, m) is not None for c, m in cands)
            if other:
                # an indented import names a test directory: only the whole file's
                # syntax tree tells whether it runs at import time
                try:
                    result = pyimports.parse_imports(data, package, name)
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    # Not parsable by this Python (maybe newer syntax): it may import
                    # any test package it names, so those stay.
                    result = _Unparsed(pyimports.Import(m, 0) for c, m in cands
                                       if c.name.encode() in data)
        self.parsed[key] = result
        return result


class _Unparsed(list):
    """Stands for the imports of a file this Python cannot parse."""

    note = "importer not parsable by this Python; kept to be safe"


def _node_basename(node):
    return node.name if node.parent is not None else os.path.basename(node.name.rstrip("/")) or "/"


def _module_of(node):
    chain = []
    n = node
    while n is not None and n.has_init:
        chain.append(_node_basename(n))
        n = n.parent
    return ".".join(reversed(chain))


def _candidates(root_node):
    stack = [root_node]
    while stack:
        node = stack.pop()
        if node.candidate:
            yield node
        stack.extend(node.children)


# ---------------------------------------------------------------- apply

def apply_plan(plan, workers=None):
    """Remove what the plan lists; returns (done removals, failures [(path, message)])."""
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    failures = []
    done = []
    by_tree = {}
    for r in plan.removals:
        by_tree.setdefault(id(r.tree), (r.tree, []))[1].append(r)
    for tree, removals in by_tree.values():
        try:
            fd, st = treewalk.open_top(tree.host)
        except OSError as exc:
            failures.append((tree.image, exc.strerror or str(exc)))
            continue
        try:
            if (st.st_dev, st.st_ino) != (tree.node.dev, tree.node.ino):
                failures.append((tree.image, "replaced since it was planned"))
                continue
            ops = [(r.parent, r.name, r.node) for r in removals]

            def on_error(i, exc, removals=removals):
                failures.append((removals[i].path(), exc.strerror or str(exc)))

            for i in treewalk.remove(ops, fd, tree.node, on_error, workers=workers):
                done.append(removals[i])
        finally:
            os.close(fd)
    return done, failures


# ---------------------------------------------------------------- the task

@dataclasses.dataclass
class Outcome:
    """What prune_trees did: the plan, the removals done (on a dry run: planned)
    and the paths that could not be read or removed [(path, message)]."""
    plan: Plan
    done: list
    failures: list
    dry_run: bool
    seconds: float


def prune_trees(*, root, out, paths=None, allow_system_dirs=False, keep_bytecode=False,
                no_tests=False, static_libs=False, docs=False, caches=False, tk=False, keep=(),
                no_import_check=False, dry_run=False):
    """Plan, and unless `dry_run` apply, the pruning of `paths` (default:
    /usr/local) in `root`: an Outcome. `out` gets warnings only; report()
    renders the outcome."""
    start = time.monotonic()
    rules = Rules(tests=not no_tests, bytecode=not keep_bytecode, static_libs=static_libs,
                  docs=docs, caches=caches, tk=tk, keep=keep or (),
                  import_check=not no_import_check)
    paths = paths or ["/usr/local"]
    check_targets(root, paths, allow_system_dirs)
    mounts = MountTable.load()
    if not mounts.available:
        out.warn("cannot read %s: bind mounts inside the tree cannot be detected, "
                 "only mounts of another file system" % "/proc/self/mountinfo")
    plan = make_plan(root, paths, rules, mounts, out)
    if dry_run:
        done, failures = plan.removals, []
    else:
        done, failures = apply_plan(plan)
    return Outcome(plan, done, plan.errors + failures, bool(dry_run), time.monotonic() - start)


def failure(outcome):
    """The PyimgtoolsError the command ends with, or None."""
    if not outcome.failures:
        return None
    return PyimgtoolsError("%s could not be %s (see the warnings above)" % (
        format_count(len(outcome.failures), "path"),
        "read" if outcome.dry_run else "read or removed"))


def exit_code(outcome):
    """The exit status when failure() is None: 0."""
    del outcome
    return 0


def report(outcome, out):
    """The outcome's lines and summary line (the JSON document: document())."""
    _report(out, outcome.plan, outcome.done, outcome.failures, outcome.dry_run,
            outcome.seconds, out.verbose)


def document(outcome):
    """The --json document of the outcome."""
    plan, done, failures = outcome.plan, outcome.done, outcome.failures
    files, dirs, total, by_rule, hard = plan.totals(done)
    failed = [{"path": json_path(p), "error": m} for p, m in failures]
    own = {
        "trees": [t.image for t in plan.trees],
        "rules": plan.rules.names(),
        "import_check": plan.rules.import_check,
        "removed": [{"path": json_path(r.path()), "type": KINDS[r.kind], "rule": r.rule,
                     "bytes": r.size} for r in done],
        "kept": [{"path": json_path(k.path), "module": k.module, "importer": json_path(k.importer),
                  "line": k.lineno, "imports": k.imported, "note": k.note} for k in plan.kept],
        "kept_sourceless": [json_path(p) for p in plan.sourceless],
        "skipped": [{"path": json_path(p), "reason": reason} for p, reason in plan.skipped],
        # by path; the envelope's warnings are their printed lines
        "warnings": [{"path": json_path(p), "message": m} for p, m in plan.warnings],
        "totals": {"files": files, "dirs": dirs, "bytes": total, "by_rule": by_rule,
                   "hard_links": hard, "kept_sourceless": len(plan.sourceless)},
    }
    legacy = {k: v for k, v in own.items() if k != "warnings"}
    # `failed`: the envelope's failures under their old name (deprecated)
    return envelope(NAME, dry_run=outcome.dry_run, seconds=outcome.seconds,
                    counts={"files": files, "dirs": dirs, "bytes": total}, results=own,
                    failures=failed, failed=failed, **legacy)


def _report(out, plan, done, failures, dry, elapsed, verbose):
    files, dirs, total, by_rule, hard = plan.totals(done)
    verb = "would remove" if dry else "removed"
    where = ", ".join(t.image for t in plan.trees if t.cache_job is None) or "caches"
    for k in plan.kept:
        out.line("kept %s: %s imports %s (line %d)%s" % (
            display_path(k.path), display_path(k.importer), k.imported, k.lineno,
            " - " + k.note if k.note else ""))
    for path, reason in plan.skipped:
        out.warn("%s: %s inside a pruned directory, not entered; its parents stay" % (
            display_path(path), reason))
    for path, message in plan.warnings:
        out.warn("%s: %s" % (display_path(path), message))
    for path, message in failures:
        out.warn("%s: %s" % (display_path(path), message))
    if dry or verbose:
        removed_dirs = set(id(r.node) for r in done if r.kind == "d")
        for r in done:
            if id(r.parent) not in removed_dirs:
                out.line("%s %s%s" % (verb, display_path(r.path()), "/" if r.kind == "d" else ""))
    for rule in sorted(by_rule):
        c = by_rule[rule]
        out.line("  %-17s %s, %s, %s" % (rule + ":", format_count(c["files"], "file"),
                                         format_count(c["dirs"], "directory", "directories"),
                                         format_bytes(c["bytes"])))
    if hard["files"]:
        out.line("  hard links: %s with several links, each counted once; %s not freed "
                 "(other links remain)" % (format_count(hard["files"], "file"),
                                           format_bytes(hard["bytes_not_freed"])))
    if plan.sourceless:
        if dry or verbose:
            for path in plan.sourceless:
                out.line("kept %s (sourceless)" % display_path(path))
        out.line("  kept %s (no .py beside them: the importer loads each as the module)"
                 % format_count(len(plan.sourceless), "sourceless .pyc file"))
    if failures:
        out.line("  failed: %s (see the warnings above)" % format_count(len(failures), "path"))
    out.summary("pyimgtools prune: %s %s in %s (%s) from %s in %.2f s" % (
        verb, format_count(files, "file"), format_count(dirs, "directory", "directories"),
        format_bytes(total), where, elapsed))
