"""How glibc's ld.so searches for one DT_NEEDED name (``elf/dl-load.c``): DST
expansion, the RPATH chain, LD_LIBRARY_PATH, RUNPATH, ``ld.so.cache`` and the
built-in directories, each with its glibc-hwcaps subdirectories, and which
candidates it skips or stops at. pyimgtools.loader builds trees from it; the
rules are described in that module's docstring.
"""

import os

from pyimgtools import elf as _elf
from pyimgtools import ldcache as _ldcache
from pyimgtools.elf import ElfError

# How a dependency was found (Dependency.via).
VIA_RPATH = "rpath"
VIA_LD_LIBRARY_PATH = "ld_library_path"
VIA_RUNPATH = "runpath"
VIA_CACHE = "cache"
VIA_DEFAULT = "default"
VIA_LOADED = "loaded"
VIA_PATH = "path"
VIA_INTERP = "interp"
VIA_PRELOAD = "preload"


class Node:
    """One object of a load tree: its in-image path, ElfInfo, the object that
    loaded it, and its search context (RPATH, RUNPATH, groups), computed once."""
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


class Found:
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


class Stop:
    """A candidate at which ld.so's search stops with an error (not a skip)."""

    __slots__ = ("path", "message")

    def __init__(self, path, message):
        self.path = path
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.path, self.message)


class Search:
    """Searches of one Loader: memoised per search context, through its ImageFiles."""

    def __init__(self, files, after_ldconfig, warn):
        self.files = files
        self.after_ldconfig = after_ldconfig
        self._warn = warn                  # loader-wide warnings (cache, conf)
        self._search_memo = {}
        self._cache_loaded = False
        self._cache = None                 # LdCache or None
        self._conf_dirs = None             # fallback when there is no cache

    def _ldcache(self):
        if not self._cache_loaded:
            self._cache_loaded = True
            if self.after_ldconfig:
                # The caller says so in one line (keep: "ld.so.cache is stale").
                self._conf_dirs = _ldcache.read_conf(self.files.root)
                return None
            try:
                self._cache = _ldcache.read_cache(self.files.root)
            except (_ldcache.CacheError, OSError) as exc:
                self._warn("%s: %s; searching without it" % (_ldcache.CACHE_PATH, exc))
                self._cache = None
                self._conf_dirs = []
                return None
            if self._cache is None:
                self._conf_dirs = _ldcache.read_conf(self.files.root)
                self._warn(
                    "no %s: searching the directories of %s instead, as ldconfig would cache them"
                    % (_ldcache.CACHE_PATH, _ldcache.CONF_PATH))
        return self._cache

    def expand(self, text, origin, arch):
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

    def dirs(self, entries, node, arch, warnings, what):
        """RPATH/RUNPATH/LD_LIBRARY_PATH `entries` as absolute directories, DSTs
        expanded; entries that cannot be expanded or are relative are warned about
        and dropped, as ld.so cannot use them here."""
        dirs = []
        for entry in entries:
            d = self.expand(entry, node.origin, arch)
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
            node._rpath = self.dirs(rp, node, arch, warnings, "RPATH")
        return node._rpath

    def _runpath_of(self, node, arch, warnings):
        if node._runpath is None:
            node._runpath = self.dirs(node.info.runpath, node, arch, warnings, "RUNPATH")
        return node._runpath

    def try_file(self, path, arch, warnings, name):
        """(info, ident) if ld.so loads the candidate `path`; None if its search
        passes over it (missing, unreadable, another class or machine); a Stop
        if ld.so stops there with an error (also added to `warnings`)."""
        try:
            info, ident = self.files.elf(path)
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
        stop = Stop(path, message)
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
                names = self.files.names_in(sd)
                if names is None or name not in names:
                    continue
                cand = sd + "/" + name
                got = self.try_file(cand, arch, warnings, name)
                if got is not None:
                    hits.append((level, cand) + _hit(got))
            names = self.files.names_in(d)
            if names is not None and name in names:
                cand = (d if d != "/" else "") + "/" + name
                got = self.try_file(cand, arch, warnings, name)
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
            got = self.try_file(path, arch, warnings, name)
            # ... and does not try a further cache entry when it cannot be
            # loaded: the search goes on with the built-in directories.
            if got is not None:
                hits.append((level, path) + _hit(got))
        return hits or None

    def search(self, name, node, arch, tree_warnings, ldlp_dirs):
        """Resolve a slash-free name for `node`; returns Found or None (memoised by context).
        `ldlp_dirs`: the tree's LD_LIBRARY_PATH, expanded, or None without one."""
        groups = node._groups
        if groups is None:
            groups = node._groups = self._groups_of(node, arch, tree_warnings, ldlp_dirs)
        key = (name, groups, node.info.nodefaultlib, id(arch))
        found = self._search_memo.get(key, False)
        if found is False:
            found = self._search_uncached(name, groups, node.info.nodefaultlib, arch)
            self._search_memo[key] = found
        if found is not None and found.warnings:
            tree_warnings.extend(w for w in found.warnings if w not in tree_warnings)
        return found

    def _groups_of(self, node, arch, tree_warnings, ldlp_dirs):
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
        if ldlp_dirs is not None:
            groups.append((VIA_LD_LIBRARY_PATH, ldlp_dirs))
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
            return Found(None, via, None, None, alternatives, warnings, error=ident)
        return Found(path, via, info, ident, alternatives, warnings)


def _hit(got):
    """(info, ident) of a loadable candidate; (None, "PATH: why") where ld.so stops."""
    return (None, str(got)) if isinstance(got, Stop) else got


def _not_found(warnings):
    return Found(None, VIA_DEFAULT, None, None, [], warnings)
