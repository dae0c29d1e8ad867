"""``/etc/ld.so.cache`` and ``/etc/ld.so.conf``, read inside an image root.

The cache is what glibc's loader consults after RPATH, LD_LIBRARY_PATH and
RUNPATH (glibc ``elf/dl-cache.c``; layout in ``sysdeps/generic/dl-cache.h``):

* new format (glibc >= 2.32 writes only this): header ``glibc-ld.so.cache1.1``,
  entries ``(flags, key, value, osversion, hwcap)``, string offsets relative to
  the start of the header, an optional extension directory naming the
  ``glibc-hwcaps`` subdirectories that entries with bit 62 of ``hwcap`` refer to;
* old format ``ld.so-1.7.0``: entries ``(flags, key, value)``, string offsets
  relative to the end of the entry array; a new-format block may follow it
  ("compat" format), and then the new block is used, as glibc does.

Only entries whose flags match the loading object's class and machine count
(``_dl_cache_check_flags``). The loader never reads ``ld.so.conf``: it is read
here to model what ``ldconfig`` would put in the cache, when an image has no
cache at all or a stale one (``uncached_libraries``: libraries of the
ld.so.conf directories the cache lacks, as after ``make install`` into
/usr/local/lib), and ``run_ldconfig`` rebuilds it.
"""

import glob
import os
import struct
from dataclasses import dataclass
from typing import Optional

from pyimgtools import elf as _elf
from pyimgtools.errors import LdconfigError, LibraryError
from pyimgtools.fs import Canonical

CACHE_PATH = "/etc/ld.so.cache"
CONF_PATH = "/etc/ld.so.conf"

_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_EXT_MAGIC = 0xEAA42174
_EXT_TAG_HWCAPS = 1
HWCAP_EXTENSION = 1 << 62

FLAG_ELF = 0x0001
FLAG_ELF_LIBC6 = 0x0003
FLAG_TYPE_MASK = 0x00FF
FLAG_REQUIRED_MASK = 0xFF00
FLAG_SPARC_LIB64 = 0x0100
FLAG_IA64_LIB64 = 0x0200
FLAG_X8664_LIB64 = 0x0300
FLAG_S390_LIB64 = 0x0400
FLAG_POWERPC_LIB64 = 0x0500
FLAG_X8664_LIBX32 = 0x0800
FLAG_ARM_LIBHF = 0x0900
FLAG_AARCH64_LIB64 = 0x0A00
FLAG_ARM_LIBSF = 0x0B00
FLAG_RISCV_FLOAT_ABI_SOFT = 0x0F00
FLAG_RISCV_FLOAT_ABI_DOUBLE = 0x1000

_MAX_CACHE = 64 << 20


class CacheError(LibraryError):
    """A malformed ld.so.cache; the message names the problem."""


@dataclass
class CacheEntry:
    name: str                 # the key (a soname)
    path: str                 # the value: directory + soname, as the loader opens it
    flags: int
    hwcap: int = 0
    hwcaps_subdir: Optional[str] = None   # e.g. "x86-64-v3" for a glibc-hwcaps entry


def accepted_flags(info):
    """The cache flags glibc's loader for `info`'s class/machine accepts, or None for "any".

    From ``_dl_cache_check_flags`` of each architecture's dl-cache.h.
    """
    m, bits = info.machine, info.elf_class
    if m == _elf.EM_X86_64:
        return (FLAG_X8664_LIB64 | FLAG_ELF_LIBC6,) if bits == 64 else (FLAG_X8664_LIBX32 | FLAG_ELF_LIBC6,)
    if m == _elf.EM_AARCH64 and bits == 64:
        return (FLAG_AARCH64_LIB64 | FLAG_ELF_LIBC6,)
    if m == _elf.EM_PPC64 and bits == 64:
        return (FLAG_POWERPC_LIB64 | FLAG_ELF_LIBC6,)
    if m == _elf.EM_S390 and bits == 64:
        return (FLAG_S390_LIB64 | FLAG_ELF_LIBC6,)
    if m == _elf.EM_SPARCV9 and bits == 64:
        return (FLAG_SPARC_LIB64 | FLAG_ELF_LIBC6,)
    if m == _elf.EM_IA_64:
        return (FLAG_IA64_LIB64 | FLAG_ELF_LIBC6,)
    if m == _elf.EM_ARM:
        hard = bool(info.e_flags & 0x400)  # EF_ARM_ABI_FLOAT_HARD
        return ((FLAG_ARM_LIBHF if hard else FLAG_ARM_LIBSF) | FLAG_ELF_LIBC6, FLAG_ELF, FLAG_ELF_LIBC6)
    if m == _elf.EM_RISCV:
        double = (info.e_flags & 0x6) == 0x4  # EF_RISCV_FLOAT_ABI_DOUBLE
        return ((FLAG_RISCV_FLOAT_ABI_DOUBLE if double else FLAG_RISCV_FLOAT_ABI_SOFT) | FLAG_ELF_LIBC6,)
    if m in (_elf.EM_386, _elf.EM_PPC, _elf.EM_S390, _elf.EM_SPARC) and bits == 32:
        return (FLAG_ELF, FLAG_ELF_LIBC6)  # the generic check
    return None


class LdCache:
    """The parsed entries of an ld.so.cache, in file order (glibc's search order)."""

    def __init__(self, entries, fmt):
        self.entries = entries          # CacheEntry list
        self.format = fmt               # "new", "old" or "compat"
        self._by_name = {}              # name -> CacheEntry list
        for entry in entries:
            self._by_name.setdefault(entry.name, []).append(entry)

    def __len__(self):
        return len(self.entries)

    def lookup_all(self, name, flags=None):
        """Every entry for `name` whose flags are in `flags` (None: any), in cache order."""
        found = self._by_name.get(name, ())
        if flags is None:
            return list(found)
        return [e for e in found if e.flags in flags]

    def lookup(self, name, flags=None):
        """The path glibc picks for `name` on a baseline CPU (no glibc-hwcaps entry), or None."""
        for entry in self.lookup_all(name, flags):
            if not entry.hwcap:
                return entry.path
        return None


def parse_cache(data):
    """Parse the bytes of an ld.so.cache (either format, host byte order or either)."""
    data = bytes(data)
    if data.startswith(_NEW_MAGIC):
        return LdCache(_parse_new(data, 0), "new")
    if data.startswith(_OLD_MAGIC):
        return _parse_old(data)
    raise CacheError("not an ld.so.cache (unknown magic %r)" % data[:20])


def _parse_old(data):
    if len(data) < 16:
        raise CacheError("truncated old-format header")
    e = "<"
    (nlibs,) = struct.unpack_from(e + "I", data, 12)
    if 16 + 12 * nlibs > len(data):
        (nlibs_be,) = struct.unpack_from(">I", data, 12)
        if 16 + 12 * nlibs_be <= len(data):
            e, nlibs = ">", nlibs_be
        else:
            raise CacheError("old-format entry count %d exceeds the file" % nlibs)
    entries_end = 16 + 12 * nlibs
    new_off = (entries_end + 7) & ~7
    if data[new_off:new_off + len(_NEW_MAGIC)] == _NEW_MAGIC:
        return LdCache(_parse_new(data, new_off), "compat")
    entries = []
    for i in range(nlibs):
        flags, key, value = struct.unpack_from(e + "iII", data, 16 + 12 * i)
        entries.append(CacheEntry(_cstr(data, entries_end, key, "key"),
                                  _cstr(data, entries_end, value, "value"), flags))
    return LdCache(entries, "old")


def _header_endian(data, base):
    # Byte order: the flags byte says it in caches from glibc >= 2.33
    # (2 little, 3 big); otherwise the one whose counts fit the file.
    flag = data[base + 28] if len(data) > base + 28 else 0
    if flag == 2:
        return "<"
    if flag == 3:
        return ">"
    for e in ("<", ">"):
        nlibs, len_strings = struct.unpack_from(e + "II", data, base + 20)
        if base + 48 + 24 * nlibs + len_strings <= len(data) + 4096:
            return e
    raise CacheError("new-format entry count exceeds the file")


def _parse_new(data, base):
    if len(data) < base + 48:
        raise CacheError("truncated new-format header")
    e = _header_endian(data, base)
    nlibs, _len_strings, _flags, ext_off = struct.unpack_from(e + "IIB3xI", data, base + 20)
    if base + 48 + 24 * nlibs > len(data):
        raise CacheError("new-format entry count %d exceeds the file" % nlibs)
    subdirs = _hwcaps_subdirs(data, base, e, ext_off)
    entries = []
    fmt = e + "iIIIQ"
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = struct.unpack_from(fmt, data, base + 48 + 24 * i)
        sub = None
        if hwcap & HWCAP_EXTENSION:
            index = hwcap & 0xFFFFFFFF
            sub = subdirs[index] if index < len(subdirs) else None
        path = _cstr(data, base, value, "value")
        if hwcap & HWCAP_EXTENSION and sub is None:
            # No readable extension: the subdirectory is in the path.
            parts = path.split("/")
            sub = parts[-2] if len(parts) > 3 and parts[-3] == "glibc-hwcaps" else "?"
        entries.append(CacheEntry(_cstr(data, base, key, "key"), path, flags, hwcap, sub))
    return entries


def _hwcaps_subdirs(data, base, e, ext_off):
    """Names of the glibc-hwcaps subdirectories from the cache's extension directory.

    The extension (and its section offsets) is relative to the new-format
    header; ldconfig's "compat" format writes them relative to the file start
    instead (glibc 2.36), so both are tried. Subdirectory name offsets are
    relative to the new-format header either way.
    """
    if not ext_off:
        return []
    for ext_base in (base, 0) if base else (base,):
        pos = ext_base + ext_off
        if pos + 8 > len(data):
            continue
        magic, count = struct.unpack_from(e + "II", data, pos)
        if magic != _EXT_MAGIC or pos + 8 + 16 * count > len(data):
            continue
        for i in range(count):
            tag, _flags, off, size = struct.unpack_from(e + "IIII", data, pos + 8 + 16 * i)
            if tag == _EXT_TAG_HWCAPS:
                start = ext_base + off
                if start + size > len(data) or size % 4:
                    raise CacheError("glibc-hwcaps extension section lies past the end of the file")
                return [_cstr(data, base, v, "hwcaps subdirectory")
                        for v in struct.unpack_from(e + "%dI" % (size // 4), data, start)]
        return []
    return []


def _cstr(data, base, off, what):
    start = base + off
    if start >= len(data):
        raise CacheError("%s string offset %d lies past the end of the cache" % (what, off))
    end = data.find(b"\0", start)
    if end < 0:
        raise CacheError("%s string at offset %d is not NUL-terminated" % (what, off))
    return data[start:end].decode("utf-8", "surrogateescape")


def read_cache(root, path=CACHE_PATH):
    """The image's ld.so.cache, or None when it has none.

    Raises CacheError for a malformed cache and OSError for an unreadable one.
    """
    try:
        with root.open(path) as f:
            data = f.read(_MAX_CACHE + 1)
    except FileNotFoundError:
        return None
    if len(data) > _MAX_CACHE:
        raise CacheError("%s is absurdly large" % path)
    return parse_cache(data)


def read_conf(root, path=CONF_PATH, _depth=0, _seen=None):
    """Directories listed in ld.so.conf and its ``include`` files, in order.

    ``include`` patterns are globbed inside the root (relative ones against the
    including file's directory, as ldconfig does); ``hwcap`` lines and comments
    are ignored; a directory is listed once. Missing files give no directories.
    """
    if _seen is None:
        _seen = []
    if _depth > 16:
        return _seen
    try:
        with root.open(path) as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return _seen
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "include" and len(words) > 1:
            for pattern in words[1:]:
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(path), pattern)
                for included in _glob_in_root(root, pattern):
                    read_conf(root, included, _depth + 1, _seen)
            continue
        if words[0] == "hwcap":
            continue
        for word in line.replace(",", " ").replace(":", " ").split():
            # "dir=type" (libc5 era) names a type after the directory.
            d = word.split("=", 1)[0].rstrip("/") or "/"
            if d.startswith("/") and d not in _seen:
                _seen.append(d)
    return _seen


def _glob_in_root(root, pattern):
    """In-image paths matching an absolute in-image glob pattern (directory part literal)."""
    head, tail = os.path.split(pattern)
    if any(c in head for c in "*?["):
        # Rare: a pattern in the directory part; glob on the host below the root.
        base = root.host("/") if not root.is_host else ""
        hits = glob.glob(glob.escape(base.rstrip("/")) + pattern)
        return sorted(root.image(h) for h in hits)
    try:
        real = root.realpath(head or "/")
    except OSError:
        return []
    hits = glob.glob(os.path.join(glob.escape(root.host(real)), tail))
    return sorted(real.rstrip("/") + "/" + os.path.basename(h) for h in hits)


def _is_dso_name(name):
    # ldconfig looks only at names starting with "lib" or "ld-" that contain ".so".
    return name.startswith(("lib", "ld-")) and ".so" in name


def _named_as_cached(name, known):
    """`name` is in `known` or extends one of them by ".N" parts (libfoo.so.1.2 of libfoo.so.1)."""
    head = name
    while True:
        if head in known:
            return True
        if "." not in head:
            return False
        head = head.rpartition(".")[0]


def uncached_libraries(root, cache):
    """In-image paths of libraries in the ld.so.conf directories that `cache` lacks.

    What ``ldconfig`` would add: for every shared object named ``lib*.so*`` or
    ``ld-*.so*`` directly in a directory of ld.so.conf (and its includes),
    an entry for its soname (DT_SONAME, else the file name) in that
    directory. A library counts as missing when the cache has no entry for
    its soname in its (canonical) directory: after ``make install`` into
    /usr/local/lib without ``ldconfig``, libpython is missing. `cache` None
    (no cache at all) makes every such library missing. One path per
    (directory, soname), in ld.so.conf order. glibc-hwcaps subdirectories
    are not looked at. A file named as a soname cached in its directory, or
    a versioned name of one, counts as cached without being opened (0.4 s
    -> 0.04 s on a Debian host's 1,100 libraries).
    """
    realdir = Canonical(root).try_dir      # None: unresolvable (a symlink loop)

    cached = set()
    names_in = {}             # directory -> cached names (for the quick test below)
    for entry in (cache.entries if cache is not None else ()):
        d = realdir(entry.path.rpartition("/")[0] or "/")
        if d is not None:
            cached.add((d, entry.name))
            names_in.setdefault(d, set()).add(entry.name)
    missing = []
    dirs, seen = set(), set()
    for directory in read_conf(root):
        real = realdir(directory)
        if real is None or real in dirs:
            continue
        dirs.add(real)
        try:
            names = sorted(n for n in os.listdir(root.host(real)) if _is_dso_name(n))
        except OSError:
            continue
        prefix = real.rstrip("/") + "/"
        known = names_in.get(real, ())
        for name in names:
            # Not opened: a file named as a soname cached here, or a versioned
            # file of one (libfoo.so.1.2.3 of libfoo.so.1), which is nearly
            # every file of a fresh cache's directories.
            if _named_as_cached(name, known):
                continue
            try:
                info = _elf.read_elf(root.host(root.realpath(prefix + name)))
            except (_elf.ElfError, OSError, ValueError):
                continue        # not ELF (a linker script such as libc.so), dangling, a directory
            if info.type != _elf.ET_DYN:
                continue
            soname = info.soname or name
            key = (real, soname)
            if key not in cached and key not in seen:
                seen.add(key)
                # Named by its soname when that file is there (not the dev link libfoo.so).
                named = soname if "/" not in soname and os.path.lexists(
                    root.host(real) + "/" + soname) else name
                missing.append(prefix + named)
    return missing


def ldconfig_argv(root):
    """The command that rebuilds the image's cache: ``ldconfig`` (``ldconfig -r ROOT`` for a root)."""
    import shutil
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/sbin"
    exe = shutil.which("ldconfig", path=path) or "ldconfig"
    return [exe] if root.is_host else [exe, "-r", root.path]


def run_ldconfig(argv):
    """Run `argv` (from ldconfig_argv); raises LdconfigError when it fails."""
    import subprocess
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    except OSError as exc:
        raise LdconfigError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LdconfigError("%s exited %d%s" % (" ".join(argv), proc.returncode,
                                                ": " + err[-1] if err else ""))


def expected_flags_text(flags):
    """ldconfig -p's description of an entry's flags, e.g. 'libc6,x86-64'."""
    kind = {0: "libc4", 1: "ELF", 2: "libc5", 3: "libc6"}.get(flags & FLAG_TYPE_MASK, "unknown")
    req = {FLAG_SPARC_LIB64: ",64bit", FLAG_IA64_LIB64: ",IA-64", FLAG_X8664_LIB64: ",x86-64",
           FLAG_S390_LIB64: ",64bit", FLAG_POWERPC_LIB64: ",64bit", FLAG_X8664_LIBX32: ",x32",
           FLAG_ARM_LIBHF: ",hard-float", FLAG_AARCH64_LIB64: ",AArch64", FLAG_ARM_LIBSF: ",soft-float",
           FLAG_RISCV_FLOAT_ABI_SOFT: ",soft-float", FLAG_RISCV_FLOAT_ABI_DOUBLE: ",double-float",
           0: ""}.get(flags & FLAG_REQUIRED_MASK, ",unknown")
    return kind + req


__all__ = ["CacheError", "CacheEntry", "LdCache", "parse_cache", "read_cache", "read_conf",
           "uncached_libraries", "ldconfig_argv", "run_ldconfig",
           "accepted_flags", "CACHE_PATH", "CONF_PATH"]
