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
"""

import errno
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pyimgtools import elf as _elf
from pyimgtools import fs as _fs
from pyimgtools import ldcache as _ldcache
from pyimgtools.elf import ElfError, ElfInfo

VIA_RPATH = "rpath"
VIA_LD_LIBRARY_PATH = "ld_library_path"
VIA_RUNPATH = "runpath"
VIA_CACHE = "cache"
VIA_DEFAULT = "default"
VIA_LOADED = "loaded"
VIA_PATH = "path"
VIA_INTERP = "interp"
VIA_PRELOAD = "preload"

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


# ---------------------------------------------------------------------------
# Architecture facts (per class/machine of the tree's root)

_TRIPLETS = {
    (_elf.EM_X86_64, 64): "x86_64-linux-gnu",
    (_elf.EM_X86_64, 32): "x86_64-linux-gnux32",
    (_elf.EM_386, 32): "i386-linux-gnu",
    (_elf.EM_AARCH64, 64): "aarch64-linux-gnu",
    (_elf.EM_PPC, 32): "powerpc-linux-gnu",
    (_elf.EM_S390, 64): "s390x-linux-gnu",
    (_elf.EM_RISCV, 64): "riscv64-linux-gnu",
    (_elf.EM_LOONGARCH, 64): "loongarch64-linux-gnu",
    (_elf.EM_SPARCV9, 64): "sparc64-linux-gnu",
    (_elf.EM_IA_64, 64): "ia64-linux-gnu",
}

# glibc's standard interpreter paths (the ABI's PT_INTERP).
_INTERPS = {
    (_elf.EM_X86_64, 64): "/lib64/ld-linux-x86-64.so.2",
    (_elf.EM_X86_64, 32): "/libx32/ld-linux-x32.so.2",
    (_elf.EM_386, 32): "/lib/ld-linux.so.2",
    (_elf.EM_AARCH64, 64): "/lib/ld-linux-aarch64.so.1",
    (_elf.EM_PPC64, 64): "/lib64/ld64.so.2",
    (_elf.EM_S390, 64): "/lib/ld64.so.1",
    (_elf.EM_RISCV, 64): "/lib/ld-linux-riscv64-lp64d.so.1",
    (_elf.EM_LOONGARCH, 64): "/lib64/ld-linux-loongarch-lp64d.so.1",
}

# glibc-hwcaps subdirectories, highest priority first (glibc's
# sysdeps/*/dl-hwcaps-subdirs.c).
_HWCAPS = {
    (_elf.EM_X86_64, 64): ("x86-64-v4", "x86-64-v3", "x86-64-v2"),
    (_elf.EM_PPC64, 64): ("power11", "power10", "power9"),
    (_elf.EM_S390, 64): ("z17", "z16", "z15", "z14", "z13"),
}

# AT_PLATFORM as the kernel sets it ($PLATFORM).
_PLATFORMS = {
    (_elf.EM_X86_64, 64): "x86_64",
    (_elf.EM_X86_64, 32): "x86_64",
    (_elf.EM_386, 32): "i686",
    (_elf.EM_AARCH64, 64): "aarch64",
}


class _Arch:
    """The loader's view of one class/machine inside one root."""

    def __init__(self, root, info, cpu_hwcaps=None):
        key = (info.machine, info.elf_class)
        if info.machine == _elf.EM_PPC64 and info.little_endian:
            triplet = "powerpc64le-linux-gnu"
        elif info.machine == _elf.EM_PPC64:
            triplet = "powerpc64-linux-gnu"
        elif info.machine == _elf.EM_ARM:
            triplet = "arm-linux-gnueabihf" if info.e_flags & 0x400 else "arm-linux-gnueabi"
        else:
            triplet = _TRIPLETS.get(key)
        self.elf_class = info.elf_class
        self.little_endian = info.little_endian
        self.machine = info.machine
        self.cache_flags = _ldcache.accepted_flags(info)
        self.interp = _INTERPS.get(key)
        self.platform = _PLATFORMS.get(key)
        self.hwcaps = tuple(level for level in _HWCAPS.get(key, ())
                            if cpu_hwcaps is None or level in cpu_hwcaps)
        # Built-in directories: Debian/Ubuntu's multiarch layout when the
        # image has it, else the lib64 layout of 64-bit distributions, else /lib.
        if triplet and (root.isdir("/usr/lib/" + triplet) or root.isdir("/lib/" + triplet)):
            self.lib = "lib/" + triplet
            self.default_dirs = ("/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib")
        elif info.elf_class == 64 and (root.isdir("/usr/lib64") or root.isdir("/lib64")) \
                and info.machine not in (_elf.EM_AARCH64,):
            self.lib = "lib64"
            self.default_dirs = ("/lib64", "/usr/lib64")
        else:
            self.lib = "lib"
            self.default_dirs = ("/lib", "/usr/lib")
        # Prefixes glibc compares cache values with under -z nodefaultlib.
        self.default_prefixes = tuple(d.rstrip("/") + "/" for d in self.default_dirs)

    def matches(self, info):
        return (info.elf_class == self.elf_class and info.little_endian == self.little_endian
                and info.machine == self.machine)


# ---------------------------------------------------------------------------

class _Node:
    __slots__ = ("path", "info", "parent", "_origin", "_rpath", "_runpath", "_groups")

    def __init__(self, path, info, parent, origin=None):
        self.path = path
        self.info = info
        self.parent = parent
        self._origin = origin       # computed when a DST needs it
        self._rpath = None
        self._runpath = None
        self._groups = None         # the search context of this object's DT_NEEDED

    @property
    def origin(self):
        if self._origin is None:
            self._origin = os.path.dirname(self.path) or "/"
        return self._origin


class _Found:
    """One search result: primary path plus hwcaps alternatives, with their ElfInfo."""

    __slots__ = ("path", "via", "info", "ident", "alternatives", "warnings", "error")

    def __init__(self, path, via, info, ident, alternatives, warnings, error=None):
        self.path = path
        self.via = via
        self.info = info
        self.ident = ident
        self.alternatives = alternatives     # list of (path, info, ident)
        self.warnings = warnings
        self.error = error                   # "PATH: why" when ld.so stops at a candidate


class _Stop:
    """A candidate at which ld.so's search stops with an error (not a skip)."""

    __slots__ = ("path", "message")

    def __init__(self, path, message):
        self.path = path
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.path, self.message)


class Loader:
    """Resolves load trees inside one image root; caches everything it reads."""

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
        self._elf = {}                     # host path -> (ElfInfo, ident) or exception
        self._listing = {}                 # in-image dir -> frozenset of names, or None
        self._canon = _fs.Canonical(root)  # in-image path -> real path (cached)
        self._search_memo = {}
        self._archs = {}
        self._cache_loaded = False
        self._cache = None                 # LdCache or None
        self._conf_dirs = None             # fallback when there is no cache
        self._ldlp_dirs = ()               # LD_LIBRARY_PATH of the current tree, expanded
        self._preload_names = None         # entries of /etc/ld.so.preload

    # -- cached file access ------------------------------------------------

    def _host(self, path):
        """Host path to open for an in-image path (symlinks resolved inside the root).

        A symlink loop raises OSError (cached): never fall back to the
        unresolved path, whose absolute links the host kernel would follow
        out of the root."""
        if self.root.is_host:
            return path
        return self.root.host(self._canon.file(path))

    def _read(self, path):
        """(ElfInfo, ident) for an in-image path; raises ElfError/OSError (cached)."""
        try:
            host = self._host(path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from None
        hit = self._elf.get(host)
        if hit is None:
            try:
                info, st = _elf.read_elf_stat(host)
                hit = (info, (st.st_dev, st.st_ino))
            except (ElfError, OSError) as exc:
                hit = exc
            self._elf[host] = hit
        if isinstance(hit, Exception):
            raise hit
        return hit

    def read_elf(self, path):
        """ElfInfo of an in-image path, through the loader's cache."""
        return self._read(path)[0]

    def _names_in(self, directory):
        names = self._listing.get(directory, False)
        if names is False:
            try:
                names = frozenset(os.listdir(self._host(directory)))  # OSError: None
            except OSError:
                names = None
            self._listing[directory] = names
        return names

    def _root_origin(self, path):
        """$ORIGIN of a tree's root: the directory of its real path (see the module doc)."""
        try:
            return os.path.dirname(self._canon.file(path)) or "/"
        except OSError:
            return os.path.dirname(path) or "/"

    def _ldcache(self):
        if not self._cache_loaded:
            self._cache_loaded = True
            if self.after_ldconfig:
                # The caller says so in one line (keep: "ld.so.cache is stale").
                self._conf_dirs = _ldcache.read_conf(self.root)
                return None
            try:
                self._cache = _ldcache.read_cache(self.root)
            except (_ldcache.CacheError, OSError) as exc:
                self._warn("%s: %s; searching without it" % (_ldcache.CACHE_PATH, exc))
                self._cache = None
                self._conf_dirs = []
                return None
            if self._cache is None:
                self._conf_dirs = _ldcache.read_conf(self.root)
                self._warn(
                    "no %s: searching the directories of %s instead, as ldconfig would cache them"
                    % (_ldcache.CACHE_PATH, _ldcache.CONF_PATH))
        return self._cache

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
            arch = self._archs[key] = _Arch(self.root, info, self.cpu_hwcaps)
        return arch

    # -- DST expansion -------------------------------------------------------

    def _expand(self, text, origin, arch):
        """Expand $ORIGIN/$LIB/$PLATFORM (and ${...}); None if it cannot be expanded."""
        if "$" not in text:
            return text
        out = []
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            rest = text[i + 1:]
            value = None
            for token in ("ORIGIN", "LIB", "PLATFORM"):
                if rest.startswith("{" + token + "}"):
                    value, length = token, len(token) + 2
                    break
                if rest.startswith(token) and (len(rest) == len(token) or not (
                        rest[len(token)].isalnum() or rest[len(token)] == "_")):
                    value, length = token, len(token)
                    break
            if value is None:
                out.append(c)
                i += 1
                continue
            if value == "ORIGIN":
                repl = origin
            elif value == "LIB":
                repl = arch.lib
            else:
                repl = arch.platform
            if repl is None:
                return None
            out.append(repl)
            i += 1 + length
        return "".join(out)

    def _dirs(self, entries, node, arch, warnings, what):
        dirs = []
        for entry in entries:
            d = self._expand(entry, node.origin, arch)
            if d is None:
                warnings.append("%s: %s entry %r cannot be expanded; ignored" % (node.path, what, entry))
                continue
            if not d.startswith("/"):
                # Relative (or empty) entries are relative to the process's
                # working directory, unknown here.
                warnings.append("%s: %s entry %r is relative to the working directory; ignored"
                                % (node.path, what, entry))
                continue
            d = d.rstrip("/") or "/"
            if d not in dirs:
                dirs.append(d)
        return tuple(dirs)

    # -- the search ---------------------------------------------------------

    def _rpath_of(self, node, arch, warnings):
        if node._rpath is None:
            rp = node.info.rpath if not node.info.runpath else []
            node._rpath = self._dirs(rp, node, arch, warnings, "RPATH")
        return node._rpath

    def _runpath_of(self, node, arch, warnings):
        if node._runpath is None:
            node._runpath = self._dirs(node.info.runpath, node, arch, warnings, "RUNPATH")
        return node._runpath

    def _try_file(self, path, arch, warnings, name):
        """(info, ident) if ld.so loads the candidate `path`; None if its search
        passes over it (missing, unreadable, another class or machine); a _Stop
        if ld.so stops there with an error (also added to `warnings`)."""
        try:
            info, ident = self._read(path)
        except ElfError as exc:
            head = getattr(exc, "head", None)
            verdict = None if head is None else _elf.loader_verdict(
                head, arch.elf_class, arch.little_endian, arch.machine)
            if verdict == _elf.SKIP:
                return None
            return self._stop(path, verdict or str(exc), warnings, name)
        except IsADirectoryError:
            # open(2) succeeds on a directory; ld.so's read of the header fails.
            return self._stop(path, "cannot read file data: Is a directory", warnings, name)
        except OSError:
            return None
        verdict = _elf.loader_verdict(info.ehdr, arch.elf_class, arch.little_endian,
                                      arch.machine, info)
        if verdict == _elf.SKIP or (verdict is None and not arch.matches(info)):
            return None
        if verdict is not None:
            return self._stop(path, verdict, warnings, name)
        return info, ident

    @staticmethod
    def _stop(path, message, warnings, name):
        stop = _Stop(path, message)
        line = "%s: %s; ld.so stops there and cannot load %s" % (path, message, name)
        if line not in warnings:
            warnings.append(line)
        return stop

    def _search_dirs(self, name, dirs, arch, warnings):
        """Search `dirs` (with glibc-hwcaps subdirs) for `name`.

        Returns None or a list of (level, path, info, ident) hits in priority
        order: level is the index into arch.hwcaps, len(arch.hwcaps) for the
        plain directory. The first hit per CPU level is what that CPU loads.
        """
        hits = []
        base_level = len(arch.hwcaps)
        for d in dirs:
            for level, sub in enumerate(arch.hwcaps):
                if any(h[0] >= level for h in hits):
                    continue    # every CPU that could use this level already found one
                sd = d + "/glibc-hwcaps/" + sub
                names = self._names_in(sd)
                if names is None or name not in names:
                    continue
                cand = sd + "/" + name
                got = self._try_file(cand, arch, warnings, name)
                if got is not None:
                    hits.append((level, cand) + _hit(got))
            names = self._names_in(d)
            if names is not None and name in names:
                cand = (d if d != "/" else "") + "/" + name
                got = self._try_file(cand, arch, warnings, name)
                if got is not None:
                    hits.append((base_level, cand) + _hit(got))
                    return hits
        return hits or None

    def _search_cache(self, name, arch, nodeflib, warnings):
        cache = self._ldcache()
        if cache is None:
            dirs = tuple(d for d in self._conf_dirs or ()
                         if not (nodeflib and (d + "/").startswith(arch.default_prefixes)))
            return self._search_dirs(name, dirs, arch, warnings) if dirs else None
        entries = cache.lookup_all(name, arch.cache_flags)
        if not entries:
            return None
        base_level = len(arch.hwcaps)
        ranked = []
        for entry in entries:
            if nodeflib and entry.path.startswith(arch.default_prefixes):
                continue
            if entry.hwcaps_subdir is not None:
                if entry.hwcaps_subdir not in arch.hwcaps:
                    continue
                level = arch.hwcaps.index(entry.hwcaps_subdir)
            elif entry.hwcap:
                continue            # legacy hwcaps entry (glibc < 2.37), not modelled
            else:
                level = base_level
            ranked.append((level, entry.path))
        ranked.sort(key=lambda t: t[0])  # stable: cache order within a level
        hits = []
        tried = set()
        for level, path in ranked:
            if level in tried:
                continue        # glibc takes the first entry per level ...
            tried.add(level)
            got = self._try_file(path, arch, warnings, name)
            # ... and does not try a further cache entry when it cannot be
            # loaded: the search goes on with the built-in directories.
            if got is not None:
                hits.append((level, path) + _hit(got))
        return hits or None

    def _search(self, name, node, arch, tree_warnings):
        """Resolve a slash-free name for `node`; returns _Found or None (memoised by context)."""
        groups = node._groups
        if groups is None:
            groups = node._groups = self._groups_of(node, arch, tree_warnings)
        key = (name, groups, node.info.nodefaultlib, id(arch))
        found = self._search_memo.get(key, False)
        if found is False:
            found = self._search_uncached(name, groups, node.info.nodefaultlib, arch)
            self._search_memo[key] = found
        if found is not None and found.warnings:
            tree_warnings.extend(w for w in found.warnings if w not in tree_warnings)
        return found

    def _groups_of(self, node, arch, tree_warnings):
        """(via, dirs) steps before the cache for `node`'s needs: RPATH chain, LD_LIBRARY_PATH, RUNPATH."""
        warnings = []
        groups = []
        if not node.info.runpath:
            chain = []
            n = node
            while n is not None:
                rp = self._rpath_of(n, arch, warnings)
                if rp:
                    chain.extend(d for d in rp if d not in chain)
                n = n.parent
            if chain:
                groups.append((VIA_RPATH, tuple(chain)))
        if self.ld_library_path:
            groups.append((VIA_LD_LIBRARY_PATH, self._ldlp_dirs))
        runpath = self._runpath_of(node, arch, warnings)
        if runpath:
            groups.append((VIA_RUNPATH, runpath))
        tree_warnings.extend(w for w in warnings if w not in tree_warnings)
        return tuple(groups)

    def _search_uncached(self, name, groups, nodeflib, arch):
        warnings = []
        base_level = len(arch.hwcaps)
        # Per CPU level, the first hit of the whole search order wins; the
        # search stops once the baseline CPU has found its library.
        collected = []
        steps = list(groups)
        steps.append((VIA_CACHE, None))
        if not nodeflib:
            steps.append((VIA_DEFAULT, arch.default_dirs))
        for step_via, dirs in steps:
            if step_via == VIA_CACHE:
                hits = self._search_cache(name, arch, nodeflib, warnings)
            else:
                hits = self._search_dirs(name, dirs, arch, warnings)
            if not hits:
                continue
            for hit in hits:
                # A hit matters only if some CPU would load it: no earlier hit
                # is usable by every CPU that can use this one.
                if not any(c[1][0] >= hit[0] for c in collected):
                    collected.append((step_via, hit))
            if any(c[1][0] == base_level for c in collected):
                break
        if not collected:
            return _not_found(warnings)
        # In search order the levels are now increasing: the first is what the
        # most capable CPU loads, the others what less capable ones load. A
        # hit without info is a candidate where ld.so stops on that CPU.
        via, (level, path, info, ident) = collected[0]
        alternatives = [(h[1], h[2], h[3]) for _v, h in collected[1:] if h[2] is not None]
        if info is None:
            return _Found(None, via, None, None, alternatives, warnings, error=ident)
        return _Found(path, via, info, ident, alternatives, warnings)

    # -- the tree -------------------------------------------------------------

    def load_tree(self, path):
        """The load tree of the ELF file at in-image `path`.

        Raises ElfError/OSError when `path` itself cannot be read.
        """
        info, ident = self._read(path)
        tree = LoadTree(root=path)
        tree.objects[path] = info
        arch = self._arch(info)
        root_node = _Node(path, info, None, self._root_origin(path))
        nodes = [root_node]
        by_name = {path: root_node}
        by_ident = {ident: root_node}
        if info.soname is not None:
            by_name.setdefault(info.soname, root_node)
        if self.ld_library_path:
            self._ldlp_dirs = self._dirs(self.ld_library_path, root_node, arch, tree.warnings,
                                         "LD_LIBRARY_PATH")

        def add(node_path, node_info, node_ident, parent, load_name):
            node = _Node(node_path, node_info, parent)
            nodes.append(node)
            tree.objects[node_path] = node_info
            by_ident[node_ident] = node
            by_name.setdefault(node_path, node)
            by_name.setdefault(load_name, node)
            if node_info.soname is not None:
                by_name.setdefault(node_info.soname, node)
            return node

        # The interpreter is mapped before any dependency.
        interp = info.interp
        if interp is None and info.needed and arch.interp is not None:
            interp = arch.interp
        if interp is not None:
            dep = Dependency(path, interp, None, VIA_INTERP)
            tree.dependencies.append(dep)
            try:
                if not interp.startswith("/"):
                    raise OSError(errno.EINVAL, "a relative interpreter path depends on the "
                                  "working directory", interp)
                iinfo, iident = self._read(interp)
            except ElfError as exc:
                tree.warnings.append("%s: interpreter %s is malformed (%s)" % (path, interp, exc))
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):
                    tree.warnings.append("%s: interpreter %s: %s" % (path, interp, exc.strerror or exc))
            else:
                existing = by_ident.get(iident)
                if existing is not None:
                    dep.path = existing.path
                else:
                    dep.path = interp
                    add(interp, iinfo, iident, None, interp)

        # /etc/ld.so.preload: mapped into every process after the program,
        # searched as its own DT_NEEDED; glibc ignores (with a message) one
        # it cannot load.
        for name in self._preloads():
            self._resolve_one(tree, root_node, name, arch, nodes, by_name, by_ident, add,
                              preload=True)

        i = 0
        while i < len(nodes):
            node = nodes[i]
            i += 1
            for name in node.info.needed:
                self._resolve_one(tree, node, name, arch, nodes, by_name, by_ident, add)
        if self._undelivered:
            tree.warnings[:0] = [w for w in self._undelivered if w not in tree.warnings]
            self._undelivered = []
        return tree

    def _preloads(self):
        if self._preload_names is None:
            try:
                with self.root.open(PRELOAD_PATH) as f:
                    text = os.fsdecode(f.read(1 << 20))
            except OSError:
                text = ""
            self._preload_names = text.replace(":", " ").split()
        return self._preload_names

    def _resolve_one(self, tree, node, name, arch, nodes, by_name, by_ident, add, preload=False):
        if preload:
            before = len(tree.dependencies)
            self._resolve_one(tree, node, name, arch, nodes, by_name, by_ident, add)
            for dep in tree.dependencies[before:]:
                if dep.path is None:
                    tree.dependencies.remove(dep)
                    tree.warnings.append("%s: %s from %s cannot be found; the loader ignores it"
                                         % (node.path, name, PRELOAD_PATH))
                else:
                    dep.via = VIA_PRELOAD
            return
        existing = by_name.get(name)
        if existing is not None:
            tree.dependencies.append(Dependency(node.path, name, existing.path, VIA_LOADED))
            return
        if not name:
            tree.warnings.append("%s: empty DT_NEEDED entry" % node.path)
            tree.dependencies.append(Dependency(node.path, name, None, VIA_PATH))
            return
        if "/" in name:
            expanded = self._expand(name, node.origin, arch)
            if expanded is None or not expanded.startswith("/"):
                tree.warnings.append("%s: DT_NEEDED %r is relative to the working directory; "
                                     "cannot resolve it" % (node.path, name))
                tree.dependencies.append(Dependency(node.path, name, None, VIA_PATH))
                return
            existing = by_name.get(expanded)
            if existing is not None:
                tree.dependencies.append(Dependency(node.path, name, existing.path, VIA_LOADED))
                return
            got = self._try_file(expanded, arch, tree.warnings, name)
            if got is None or isinstance(got, _Stop):
                tree.dependencies.append(Dependency(node.path, name, None, VIA_PATH,
                                                    error=str(got) if got is not None else None))
                return
            found = _Found(expanded, VIA_PATH, got[0], got[1], [], [])
        else:
            found = self._search(name, node, arch, tree.warnings)
            if found is None or (found.path is None and not found.alternatives):
                tree.dependencies.append(Dependency(
                    node.path, name, None, found.via if found is not None else VIA_DEFAULT,
                    error=found.error if found is not None else None))
                return
        same = by_ident.get(found.ident) if found.path is not None else None
        if found.path is None:
            # ld.so stops on the most capable CPUs; less capable ones load an alternative.
            dep = Dependency(node.path, name, None, found.via, error=found.error)
        elif same is not None:
            # The same file under another name: glibc reuses the loaded object.
            by_name.setdefault(name, same)
            dep = Dependency(node.path, name, same.path, found.via)
        else:
            dep = Dependency(node.path, name, found.path, found.via)
            add(found.path, found.info, found.ident, node, name)
        for apath, ainfo, aident in found.alternatives:
            loaded = by_ident.get(aident)
            if loaded is None:
                add(apath, ainfo, aident, node, name)
                dep.alternatives.append(apath)
            elif loaded.path != dep.path and loaded.path not in dep.alternatives:
                dep.alternatives.append(loaded.path)
        tree.dependencies.append(dep)


def _hit(got):
    """(info, ident) of a loadable candidate; (None, "PATH: why") where ld.so stops."""
    return (None, str(got)) if isinstance(got, _Stop) else got


def _not_found(warnings):
    return _Found(None, VIA_DEFAULT, None, None, [], warnings)


def load_tree(root, path, ld_library_path=None):
    """Convenience: one tree with a fresh Loader (use a shared Loader for many files)."""
    return Loader(root, ld_library_path).load_tree(path)


__all__ = ["Dependency", "LoadTree", "Loader", "load_tree", "ElfError", "ElfInfo"]
