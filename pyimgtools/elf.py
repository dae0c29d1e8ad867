"""A small ELF reader: what the dynamic loader needs, never the whole file.

`read_elf(path)` returns the class, byte order, machine, OS ABI, type,
``PT_INTERP``, ``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``, ``DT_SONAME`` and
``DT_FLAGS_1`` of an ELF file. It reads the ELF header and the program headers
(one read of the first bytes of the file), then the dynamic segment and the
part of its string table the entries point into; it never maps, loads or runs
the file. Every offset, size and count is checked against the file's size, so
a truncated or hostile file raises `ElfError` with a message naming the
problem, never another exception.

Strings are decoded with ``surrogateescape`` (any byte sequence is a valid
file name; ``os.fsencode`` gives the bytes back).
"""

import os
import stat as _stat
import struct
from dataclasses import dataclass, field
from typing import List, Optional

ELF_MAGIC = b"\x7fELF"

ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

ET_EXEC = 2
ET_DYN = 3

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3

DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_FLAGS_1 = 0x6FFFFFFB

DF_1_NODEFLIB = 0x800

_WANTED_TAGS = frozenset((DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1))

EM_386 = 3
EM_SPARC = 2
EM_MIPS = 8
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_SPARCV9 = 43
EM_IA_64 = 50
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258

# The first read: ELF header and, in every file a linker writes, the program
# headers. Larger program header tables are read with one more pread.
_HEAD_SIZE = 4096
# Sanity limits ("absurd values"): far above anything a linker produces.
_MAX_PHNUM = 0xFFFF
_MAX_DYNAMIC = 1 << 20          # 64 Ki entries of 16 bytes
_MAX_INTERP = 4096              # PATH_MAX
_MAX_STRING = 1 << 16           # one DT_NEEDED / RPATH string
_STR_CHUNK = 4096               # strings are read in chunks around the offsets used


class ElfError(Exception):
    """A file that is not a usable ELF file; the message names the problem."""


@dataclass
class ElfInfo:
    elf_class: int            # 32 or 64
    little_endian: bool
    machine: int              # e_machine
    osabi: int                # e_ident[EI_OSABI]
    type: int                 # e_type
    interp: Optional[str] = None
    needed: List[str] = field(default_factory=list)
    rpath: List[str] = field(default_factory=list)
    runpath: List[str] = field(default_factory=list)
    soname: Optional[str] = None
    flags_1: int = 0
    e_flags: int = 0          # e_flags (ARM float ABI, RISC-V float ABI)

    @property
    def nodefaultlib(self):
        """Linked with ``-z nodefaultlib`` (DF_1_NODEFLIB)."""
        return bool(self.flags_1 & DF_1_NODEFLIB)

    @property
    def is_dynamic(self):
        """Has a dynamic segment or an interpreter (a static binary has neither)."""
        return bool(self.interp is not None or self.needed or self.soname is not None
                    or self._has_dynamic)

    _has_dynamic = False

    def compatible(self, other):
        """Whether `other` could be loaded into the same process (class, byte order, machine)."""
        return (self.elf_class == other.elf_class and self.little_endian == other.little_endian
                and self.machine == other.machine)


# O_NONBLOCK: opening a FIFO must not hang (regular files ignore the flag).
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_NONBLOCK", 0))


def has_elf_magic(path):
    """True if the file starts with the ELF magic; False if not or unreadable.

    Meant for regular files found by a directory scan (it opens `path`
    without checking its type first; a FIFO does not block it).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        return os.pread(fd, 4, 0) == ELF_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _decode(raw):
    return raw.decode("utf-8", "surrogateescape")


class _Reader:
    """pread-based access to a file of known size with a cached head."""

    __slots__ = ("fd", "size", "head")

    def __init__(self, fd, size, head):
        self.fd = fd
        self.size = size
        self.head = head

    def read(self, offset, length, what):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfError("%s (%d bytes at offset %d) lies past the end of the file (%d bytes)"
                           % (what, length, offset, self.size))
        if offset + length <= len(self.head):
            return self.head[offset:offset + length]
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise ElfError("%s: short read (file truncated while reading?)" % what)
        return data


def read_elf(path):
    """Read the loader-relevant facts of the ELF file at host path `path`.

    Raises ElfError for anything malformed, OSError when the file cannot be
    opened or read (a directory raises IsADirectoryError).
    """
    return read_elf_stat(path)[0]


def read_elf_stat(path):
    """(ElfInfo, os.stat_result of the opened file): read_elf plus the file's identity."""
    # Only regular files are opened: opening a device can have side effects.
    st = os.stat(path)
    if not _stat.S_ISREG(st.st_mode):
        if _stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", path)
        raise ElfError("not a regular file")
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise ElfError("not a regular file")
        head = os.pread(fd, _HEAD_SIZE, 0)
        return _parse(_Reader(fd, max(st.st_size, len(head)), head)), st
    finally:
        os.close(fd)


def parse_elf_bytes(data):
    """Like read_elf, for the bytes of a whole file (tests, fuzzing)."""
    return _parse(_BytesReader(bytes(data)))


class _BytesReader(_Reader):
    __slots__ = ()

    def __init__(self, data):
        _Reader.__init__(self, -1, len(data), data)


def _parse(r):
    head = r.head
    if len(head) < 16 or head[:4] != ELF_MAGIC:
        raise ElfError("not an ELF file (no ELF magic)" if head[:4] != ELF_MAGIC or len(head) < 4
                       else "truncated ELF identification")
    ei_class, ei_data, ei_version, osabi = head[4], head[5], head[6], head[7]
    if ei_class == ELFCLASS64:
        bits, ehdr_size = 64, 64
    elif ei_class == ELFCLASS32:
        bits, ehdr_size = 32, 52
    else:
        raise ElfError("invalid ELF class %d" % ei_class)
    if ei_data == ELFDATA2LSB:
        e = "<"
    elif ei_data == ELFDATA2MSB:
        e = ">"
    else:
        raise ElfError("invalid ELF data encoding %d" % ei_data)
    if ei_version != 1:
        raise ElfError("invalid ELF identification version %d" % ei_version)
    if len(head) < ehdr_size:
        raise ElfError("truncated ELF header (%d of %d bytes)" % (len(head), ehdr_size))
    if bits == 64:
        (e_type, e_machine, _e_version, _entry, e_phoff, e_shoff, e_flags, _ehsize,
         e_phentsize, e_phnum, _shentsize, _shnum, _shstrndx) = struct.unpack_from(
            e + "HHIQQQIHHHHHH", head, 16)
        ph_fmt, ph_size = e + "IIQQQQQQ", 56
        dyn_fmt, dyn_size = e + "qQ", 16
    else:
        (e_type, e_machine, _e_version, _entry, e_phoff, e_shoff, e_flags, _ehsize,
         e_phentsize, e_phnum, _shentsize, _shnum, _shstrndx) = struct.unpack_from(
            e + "HHIIIIIHHHHHH", head, 16)
        ph_fmt, ph_size = e + "IIIIIIII", 32
        dyn_fmt, dyn_size = e + "iI", 8
    info = ElfInfo(elf_class=bits, little_endian=(e == "<"), machine=e_machine, osabi=osabi,
                   type=e_type, e_flags=e_flags)
    if e_phnum == 0:
        return info  # e.g. a relocatable object: nothing for the loader
    if e_phnum == 0xFFFF:  # PN_XNUM: the real count is in section header 0's sh_info
        e_phnum = _xnum_phnum(r, e, bits, e_shoff)
    if e_phentsize < ph_size:
        raise ElfError("program header entry size %d is smaller than %d" % (e_phentsize, ph_size))
    if e_phnum > _MAX_PHNUM:
        raise ElfError("absurd program header count %d" % e_phnum)
    phdata = r.read(e_phoff, e_phnum * e_phentsize, "program header table")
    loads = []
    dynamic = None
    interp = None
    for i in range(e_phnum):
        if bits == 64:
            p_type, _p_flags, p_offset, p_vaddr, _p_paddr, p_filesz, p_memsz, _al = \
                struct.unpack_from(ph_fmt, phdata, i * e_phentsize)
        else:
            p_type, p_offset, p_vaddr, _p_paddr, p_filesz, p_memsz, _p_flags, _al = \
                struct.unpack_from(ph_fmt, phdata, i * e_phentsize)
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == PT_DYNAMIC:
            if dynamic is None:
                dynamic = (p_offset, p_filesz)
        elif p_type == PT_INTERP:
            if interp is None:
                interp = (p_offset, p_filesz)
    if interp is not None:
        off, size = interp
        if size == 0 or size > _MAX_INTERP:
            raise ElfError("absurd PT_INTERP size %d" % size)
        raw = r.read(off, size, "PT_INTERP")
        end = raw.find(b"\0")
        if end < 0:
            raise ElfError("PT_INTERP is not NUL-terminated")
        if end == 0:
            raise ElfError("PT_INTERP is empty")
        info.interp = _decode(raw[:end])
    if dynamic is None:
        return info
    info._has_dynamic = True
    off, size = dynamic
    if size > _MAX_DYNAMIC:
        raise ElfError("absurd dynamic segment size %d" % size)
    count = size // dyn_size
    data = r.read(off, count * dyn_size, "dynamic segment")
    needed, rpath, runpath = [], [], []
    soname = None
    strtab = strsz = None
    flags_1 = 0
    words = struct.unpack(dyn_fmt[0] + dyn_fmt[1:] * count, data)
    tags = words[0::2]
    try:
        end = tags.index(DT_NULL)
        terminated = True
    except ValueError:
        end = count
        terminated = False
    values = words[1::2]
    # Only a handful of the entries matter: pick them out in one pass.
    for i in [i for i in range(end) if tags[i] in _WANTED_TAGS]:
        tag = tags[i]
        val = values[i]
        if tag == DT_NEEDED:
            needed.append(val)
        elif tag == DT_STRTAB:
            strtab = val
        elif tag == DT_STRSZ:
            strsz = val
        elif tag == DT_SONAME:
            soname = val
        elif tag == DT_RPATH:
            rpath.append(val)
        elif tag == DT_RUNPATH:
            runpath.append(val)
        else:
            flags_1 = val
    if not terminated:
        raise ElfError("dynamic segment has no DT_NULL terminator")
    info.flags_1 = flags_1
    if not (needed or rpath or runpath or soname is not None):
        return info
    if strtab is None:
        raise ElfError("dynamic segment has strings but no DT_STRTAB")
    str_off = _vaddr_to_offset(loads, strtab)
    if str_off is None:
        raise ElfError("DT_STRTAB address %#x lies in no PT_LOAD segment" % strtab)
    limit = r.size - str_off
    if strsz is not None:
        limit = min(limit, strsz)
    if limit <= 0:
        raise ElfError("string table lies past the end of the file")
    strings = _StringTable(r, str_off, limit)
    info.needed = [strings.get(v, "DT_NEEDED") for v in needed]
    for v in rpath:
        info.rpath.extend(strings.get(v, "DT_RPATH").split(":"))
    for v in runpath:
        info.runpath.extend(strings.get(v, "DT_RUNPATH").split(":"))
    if soname is not None:
        info.soname = strings.get(soname, "DT_SONAME")
    return info


def _xnum_phnum(r, e, bits, e_shoff):
    if e_shoff == 0:
        raise ElfError("e_phnum is PN_XNUM but there is no section header")
    if bits == 64:
        raw = r.read(e_shoff, 64, "section header 0")
        sh_info = struct.unpack_from(e + "IIQQQQIIQQ", raw)[7]
    else:
        raw = r.read(e_shoff, 40, "section header 0")
        sh_info = struct.unpack_from(e + "IIIIIIIIII", raw)[7]
    return sh_info


def _vaddr_to_offset(loads, vaddr):
    for p_vaddr, p_filesz, p_offset in loads:
        if p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    return None


class _StringTable:
    """Reads NUL-terminated strings of a string table lazily, in chunks."""

    __slots__ = ("r", "base", "limit", "chunks")

    def __init__(self, r, base, limit):
        self.r = r
        self.base = base
        self.limit = limit
        self.chunks = {}

    def get(self, offset, what):
        if offset >= self.limit:
            raise ElfError("%s string offset %d lies past the string table (%d bytes)"
                           % (what, offset, self.limit))
        parts = []
        total = 0
        pos = offset
        while True:
            start = pos - pos % _STR_CHUNK
            chunk = self.chunks.get(start)
            if chunk is None:
                length = min(_STR_CHUNK, self.limit - start)
                chunk = self.r.read(self.base + start, length, "string table")
                self.chunks[start] = chunk
            end = chunk.find(b"\0", pos - start)
            if end >= 0:
                parts.append(chunk[pos - start:end])
                break
            parts.append(chunk[pos - start:])
            total += len(chunk) - (pos - start)
            pos = start + len(chunk)
            if pos >= self.limit:
                raise ElfError("%s string at offset %d is not NUL-terminated" % (what, offset))
            if total > _MAX_STRING:
                raise ElfError("%s string at offset %d is absurdly long" % (what, offset))
        return _decode(b"".join(parts))
