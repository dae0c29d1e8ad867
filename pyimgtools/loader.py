"""Shared-library resolution the way glibc's ld.so does it, without running anything.

`Loader(root).load_tree(path)` computes the closure of an ELF file: every
object the dynamic loader would map for it, breadth first as ld.so loads them
(glibc ``elf/dl-deps.c``), each ``DT_NEEDED`` resolved by the rules of
``elf/dl-load.c`` (ld.so(8)):

1. a name containing a slash is a path (after ``$ORIGIN``/``$LIB``/``$PLATFORM``
   expansion); no search;
2. an object already loaded in this tree satisfies the name when the name equals
   its ``DT_SONAME`` or a name it was loaded by (``via="loaded"``);
3. if the loading object has no ``DT_RUNPATH``: its ``DT_RPATH``, then the
   RPATHs of the objects that loaded it, up to the root (``via="rpath"``);
   an object with a RUNPATH has its RPATH ignored, also as an ancestor;
4. ``LD_LIBRARY_PATH``, only when given (``via="ld_library_path"``);
5. the loading object's own ``DT_RUNPATH`` -- not inherited (``via="runpath"``);
6. ``/etc/ld.so.cache`` entries whose flags match the class and machine; with
   ``-z nodefaultlib`` entries under the built-in directories are not used
   (``via="cache"``); an image without a cache falls back to the directories of
   ``ld.so.conf`` and its includes, i.e. what ``ldconfig`` would have cached;
7. the built-in directories, unless the loading object has ``-z nodefaultlib``
   (``via="default"``).

Libraries listed in the image's ``/etc/ld.so.preload`` are mapped into every
process: they are dependencies of every root (``via="preload"``), searched as
its own ``DT_NEEDED``; one that cannot be found is a warning, not a missing
library (glibc ignores it). ``LD_PRELOAD`` and ``DT_FILTER``/``DT_AUXILIARY``
filtees are not modelled.

Under every search directory the ``glibc-hwcaps`` subdirectories come first
(``x86-64-v4``, ``v3``, ``v2`` on x86-64). The CPU the image will run on is
unknown, so by default the dependency resolves to what the most capable CPU
loads (the highest level present); what less capable CPUs load instead is
listed in ``Dependency.alternatives`` and is part of the closure too.
``Loader(root, hwcaps=LEVELS)`` models one CPU instead: only the levels it
supports are searched, as ld.so does on that CPU (tests compare with the real
ld.so this way on any CPU). Legacy hwcaps
subdirectories (``tls``, ``x86_64``; removed in glibc 2.37) are not modelled.

A candidate of another class or machine is skipped and the search goes on, as
glibc does (``open_verify`` in ``elf/dl-load.c``). Any other candidate that is
not a loadable ELF object -- a text linker script ``libfoo.so``, a truncated
file, another byte order, a directory -- stops the search there, as it stops
ld.so ("error while loading shared libraries: ...: invalid ELF header"): the
dependency is unresolved, its ``error`` says why, and a tree warning names it.

``$ORIGIN`` is the directory of the object as found (a symlink's own
directory, not its target's), except for the root object, whose ``$ORIGIN`` is
the directory of its real path: the kernel gives ld.so the resolved
executable (``/proc/self/exe``). ``ldd PATH`` instead uses PATH as given; the
two differ only when PATH goes through a symlink.

An object without ``PT_INTERP`` that needs libraries (a shared library, e.g. a
Python extension module) is assumed to be loaded by a process whose
interpreter is the architecture's standard glibc loader
(``/lib64/ld-linux-x86-64.so.2`` on x86-64): it is added as the ``interp``
dependency, as ``ldd`` on a library shows it.

Everything is read inside the `pyimgtools.fs.Root`; symlinks resolve inside it.
Results are cached per Loader (ELF headers per file, directory listings,
searches per context), so one Loader should serve a whole scan.

The jobs live in their own modules: reading the image (loader_files), the
architecture facts (loader_arch), the search for one name (loader_search);
this module builds the trees (one _TreeBuild per tree) and is the interface.
"""

import errno
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pyimgtools import elf as _elf
from pyimgtools.elf import ElfError, ElfInfo
from pyimgtools.loader_arch import Arch
from pyimgtools.loader_files import ImageFiles
# The VIA_* values are part of this module's interface (Dependency.via).
from pyimgtools.loader_search import (VIA_CACHE, VIA_DEFAULT, VIA_INTERP,  # noqa: F401
                                      VIA_LD_LIBRARY_PATH, VIA_LOADED, VIA_PATH, VIA_PRELOAD,
                                      VIA_RPATH, VIA_RUNPATH, Found, Node, Search, Stop)

PRELOAD_PATH = "/etc/ld.so.preload"


@dataclass
class Dependency:
    needer: str                 # in-image path of the object whose DT_NEEDED (or PT_INTERP) this is
    name: str                   # the DT_NEEDED string (or the PT_INTERP path)
    path: Optional[str]         # in-image path as the loader opens it; None if missing
    via: str                    # rpath, ld_library_path, runpath, cache, default, loaded, path, interp
    alternatives: List[str] = field(default_factory=list)  # what less capable CPUs load instead (hwcaps)
    error: Optional[str] = None  # path unresolved because ld.so stops at this candidate: "PATH: why"


@dataclass
class LoadTree:
    root: str                                   # in-image path of the ELF file the tree is for
    objects: Dict[str, ElfInfo] = field(default_factory=dict)   # closure, keyed by in-image path, load order
    dependencies: List[Dependency] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def missing(self):
        """Dependencies that resolve to nothing."""
        return [d for d in self.dependencies if d.path is None]


class Loader:
    """Resolves load trees inside one image root; caches everything it reads.

    Its jobs are in their own modules: file access (loader_files.ImageFiles),
    architecture facts (loader_arch.Arch), the search for one name
    (loader_search.Search); a tree is built by a _TreeBuild of its own."""

    def __init__(self, root, ld_library_path=None, hwcaps=None, after_ldconfig=False):
        """`hwcaps`: the glibc-hwcaps levels of the CPU to model (e.g.
        ``("x86-64-v3", "x86-64-v2")``); None models every CPU at once.
        `after_ldconfig`: resolve as if ``ldconfig`` had just rebuilt the
        cache (a stale cache is ignored and the directories of ld.so.conf
        are searched instead, as for an image without a cache)."""
        self.root = root
        self.after_ldconfig = after_ldconfig
        self.cpu_hwcaps = None if hwcaps is None else frozenset(hwcaps)
        if isinstance(ld_library_path, (str, bytes)):
            # An LD_LIBRARY_PATH value: glibc splits it on ':' and ';'.
            ld_library_path = os.fsdecode(ld_library_path).replace(";", ":").split(":")
        self.ld_library_path = list(ld_library_path) if ld_library_path else []
        self.warnings = []                 # loader-wide: cache, conf (str list)
        self._undelivered = []             # loader-wide warnings no tree has carried yet
        self.files = ImageFiles(root)
        self.search = Search(self.files, after_ldconfig, self._warn)
        self._archs = {}
        self._preload_names = None         # entries of /etc/ld.so.preload

    def read_elf(self, path):
        """ElfInfo of an in-image path, through the loader's cache."""
        return self.files.elf(path)[0]

    def _root_origin(self, path):
        """$ORIGIN of a tree's root: the directory of its real path (see the module doc)."""
        try:
            return os.path.dirname(self.files.real_file(path)) or "/"
        except OSError:
            return os.path.dirname(path) or "/"

    def _warn(self, text):
        """A loader-wide warning: kept in self.warnings, and carried by the next tree
        returned (once), so that a command printing its trees' warnings prints it."""
        self.warnings.append(text)
        self._undelivered.append(text)

    def default_dirs(self, info):
        """The built-in library directories ld.so searches for an object like `info` here."""
        return self._arch(info).default_dirs

    def _arch(self, info):
        key = (info.elf_class, info.little_endian, info.machine, info.e_flags if info.machine in (
            _elf.EM_ARM, _elf.EM_RISCV) else 0)
        arch = self._archs.get(key)
        if arch is None:
            arch = self._archs[key] = Arch(self.files, info, self.cpu_hwcaps)
        return arch

    def _preloads(self):
        if self._preload_names is None:
            text = self.files.read_text(PRELOAD_PATH, 1 << 20)
            self._preload_names = text.replace(":", " ").split()
        return self._preload_names

    def load_tree(self, path):
        """The load tree of the ELF file at in-image `path`.

        Raises ElfError/OSError when `path` itself cannot be read.
        """
        info, ident = self.files.elf(path)
        build = _TreeBuild(self, path, info, ident)
        build.map_interpreter()
        # /etc/ld.so.preload: mapped into every process after the program,
        # searched as its own DT_NEEDED; glibc ignores (with a message) one
        # it cannot load.
        for name in self._preloads():
            build.resolve_preload(name)
        build.resolve_breadth_first()
        tree = build.tree
        if self._undelivered:
            tree.warnings[:0] = [w for w in self._undelivered if w not in tree.warnings]
            self._undelivered = []
        return tree



class _TreeBuild:
    """The state of one load tree while it is built: its nodes in load order
    and the names and files (dev, ino) already mapped, as ld.so keeps them."""

    def __init__(self, loader, path, info, ident):
        self.loader = loader
        self.search = loader.search
        self.tree = LoadTree(root=path)
        self.tree.objects[path] = info
        self.arch = loader._arch(info)
        self.root_node = Node(path, info, None, loader._root_origin(path))
        self.nodes = [self.root_node]
        self.by_name = {path: self.root_node}
        self.by_ident = {ident: self.root_node}
        if info.soname is not None:
            self.by_name.setdefault(info.soname, self.root_node)
        self.ldlp_dirs = None
        if loader.ld_library_path:
            self.ldlp_dirs = self.search.dirs(loader.ld_library_path, self.root_node, self.arch,
                                              self.tree.warnings, "LD_LIBRARY_PATH")

    def add(self, node_path, node_info, node_ident, parent, load_name):
        node = Node(node_path, node_info, parent)
        self.nodes.append(node)
        self.tree.objects[node_path] = node_info
        self.by_ident[node_ident] = node
        self.by_name.setdefault(node_path, node)
        self.by_name.setdefault(load_name, node)
        if node_info.soname is not None:
            self.by_name.setdefault(node_info.soname, node)
        return node

    def map_interpreter(self):
        """The interpreter is mapped before any dependency."""
        tree, path, info = self.tree, self.root_node.path, self.root_node.info
        interp = info.interp
        if interp is None and info.needed and self.arch.interp is not None:
            interp = self.arch.interp
        if interp is None:
            return
        dep = Dependency(path, interp, None, VIA_INTERP)
        tree.dependencies.append(dep)
        try:
            if not interp.startswith("/"):
                raise OSError(errno.EINVAL, "a relative interpreter path depends on the "
                              "working directory", interp)
            iinfo, iident = self.loader.files.elf(interp)
        except ElfError as exc:
            tree.warnings.append("%s: interpreter %s is malformed (%s)" % (path, interp, exc))
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                tree.warnings.append("%s: interpreter %s: %s" % (path, interp, exc.strerror or exc))
        else:
            existing = self.by_ident.get(iident)
            if existing is not None:
                dep.path = existing.path
            else:
                dep.path = interp
                self.add(interp, iinfo, iident, None, interp)

    def resolve_breadth_first(self):
        i = 0
        while i < len(self.nodes):
            node = self.nodes[i]
            i += 1
            for name in node.info.needed:
                self.resolve(node, name)

    def resolve_preload(self, name):
        """An /etc/ld.so.preload entry, searched as the root's own DT_NEEDED."""
        tree, node = self.tree, self.root_node
        before = len(tree.dependencies)
        self.resolve(node, name)
        for dep in tree.dependencies[before:]:
            if dep.path is None:
                tree.dependencies.remove(dep)
                tree.warnings.append("%s: %s from %s cannot be found; the loader ignores it"
                                     % (node.path, name, PRELOAD_PATH))
            else:
                dep.via = VIA_PRELOAD

    def resolve(self, node, name):
        """Resolve `node`'s DT_NEEDED `name`: add its Dependency, map what it loads."""
        tree, arch, by_name = self.tree, self.arch, self.by_name
        existing = by_name.get(name)
        if existing is not None:
            tree.dependencies.append(Dependency(node.path, name, existing.path, VIA_LOADED))
            return
        if not name:
            tree.warnings.append("%s: empty DT_NEEDED entry" % node.path)
            tree.dependencies.append(Dependency(node.path, name, None, VIA_PATH))
            return
        if "/" in name:
            found = self._open_path(node, name)
            if found is None:
                return
        else:
            found = self.search.search(name, node, arch, tree.warnings, self.ldlp_dirs)
            if found is None or (found.path is None and not found.alternatives):
                tree.dependencies.append(Dependency(
                    node.path, name, None, found.via if found is not None else VIA_DEFAULT,
                    error=found.error if found is not None else None))
                return
        self._map(node, name, found)

    def _open_path(self, node, name):
        """A name with a slash is a path: Found, or None once its Dependency is added."""
        tree = self.tree
        expanded = self.search.expand(name, node.origin, self.arch)
        if expanded is None or not expanded.startswith("/"):
            tree.warnings.append("%s: DT_NEEDED %r is relative to the working directory; "
                                 "cannot resolve it" % (node.path, name))
            tree.dependencies.append(Dependency(node.path, name, None, VIA_PATH))
            return None
        existing = self.by_name.get(expanded)
        if existing is not None:
            tree.dependencies.append(Dependency(node.path, name, existing.path, VIA_LOADED))
            return None
        got = self.search.try_file(expanded, self.arch, tree.warnings, name)
        if got is None or isinstance(got, Stop):
            tree.dependencies.append(Dependency(node.path, name, None, VIA_PATH,
                                                error=str(got) if got is not None else None))
            return None
        return Found(expanded, VIA_PATH, got[0], got[1], [], [])

    def _map(self, node, name, found):
        """Add the Dependency of `found` and map its file and hwcaps alternatives."""
        by_ident = self.by_ident
        same = by_ident.get(found.ident) if found.path is not None else None
        if found.path is None:
            # ld.so stops on the most capable CPUs; less capable ones load an alternative.
            dep = Dependency(node.path, name, None, found.via, error=found.error)
        elif same is not None:
            # The same file under another name: glibc reuses the loaded object.
            self.by_name.setdefault(name, same)
            dep = Dependency(node.path, name, same.path, found.via)
        else:
            dep = Dependency(node.path, name, found.path, found.via)
            self.add(found.path, found.info, found.ident, node, name)
        for apath, ainfo, aident in found.alternatives:
            loaded = by_ident.get(aident)
            if loaded is None:
                self.add(apath, ainfo, aident, node, name)
                dep.alternatives.append(apath)
            elif loaded.path != dep.path and loaded.path not in dep.alternatives:
                dep.alternatives.append(loaded.path)
        self.tree.dependencies.append(dep)


def load_tree(root, path, ld_library_path=None):
    """Convenience: one tree with a fresh Loader (use a shared Loader for many files)."""
    return Loader(root, ld_library_path).load_tree(path)


__all__ = ["Dependency", "LoadTree", "Loader", "load_tree", "ElfError", "ElfInfo", "PRELOAD_PATH",
           "VIA_RPATH", "VIA_LD_LIBRARY_PATH", "VIA_RUNPATH", "VIA_CACHE", "VIA_DEFAULT", "VIA_LOADED",
           "VIA_PATH", "VIA_INTERP", "VIA_PRELOAD"]
