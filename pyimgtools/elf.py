"""A small ELF reader: what the dynamic loader needs, never the whole file.

`read_elf(path)` returns the class, byte order, machine, OS ABI, type,
``PT_INTERP``, ``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``, ``DT_SONAME`` and
``DT_FLAGS_1`` of an ELF file. It reads the ELF header and the program headers
(one read of the first bytes of the file), then the dynamic segment and the
part of its string table the entries point into, both the way glibc's ld.so
finds them: by address, through the PT_LOAD mapping (PT_DYNAMIC's p_offset and
p_filesz, DT_STRSZ and the section headers are not used); it never maps, loads
or runs the file. `loader_verdict` says whether ld.so would load a candidate,
skip it, or stop with an error. Every offset, size and count is checked against the file's size, so
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

from pyimgtools.errors import LibraryError

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


class ElfError(LibraryError):
    """A file that is not a usable ELF file; the message names the problem."""


@dataclass
class ElfInfo:
    """What pyimgtools reads of an ELF file: its identity (class, byte order,
    machine, ABI, type) and the dynamic-loading facts ld.so acts on."""
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
    # What glibc's open_verify and _dl_map_object_from_fd check (loader_verdict):
    ehdr: bytes = field(default=b"", repr=False, compare=False)   # the ELF header's bytes
    has_load: bool = False    # at least one PT_LOAD

    @property
    def nodefaultlib(self):
        """Linked with ``-z nodefaultlib`` (DF_1_NODEFLIB)."""
        return bool(self.flags_1 & DF_1_NODEFLIB)

    _has_dynamic = False        # set by the parser when there is a PT_DYNAMIC segment


# glibc's judgement of a candidate file (elf/dl-load.c: open_verify, then
# _dl_map_object_from_fd), in its order. Only a file of another class or
# machine is skipped (the search goes on); anything else that is wrong stops
# the whole load with an error ("error while loading shared libraries").
SKIP = "skip"
_LIBC_ABI_MAX = 4       # ELFOSABI_GNU ABI versions glibc accepts (sysdeps/generic/ldsodefs.h)
ELFOSABI_SYSV = 0
ELFOSABI_GNU = 3


def loader_verdict(head, elf_class, little_endian, machine, info=None):
    """None if glibc's ld.so (of that class, byte order and machine) maps the file
    whose first bytes are `head`; SKIP if its search passes over it; else the
    error with which ld.so stops (glibc's own message). `info` (the ElfInfo, when
    the file parsed) adds the checks made after the header."""
    if len(head) < (64 if elf_class == 64 else 52):
        return "file too short"
    if head[:4] != ELF_MAGIC:
        return "invalid ELF header"
    if head[4] != (ELFCLASS64 if elf_class == 64 else ELFCLASS32):
        return SKIP
    if head[5] != (ELFDATA2LSB if little_endian else ELFDATA2MSB):
        return "ELF file data encoding not %s-endian" % ("little" if little_endian else "big")
    if head[6] != 1:
        return "ELF file version ident does not match current one"
    osabi, abiversion = head[7], head[8]
    if osabi not in (ELFOSABI_SYSV, ELFOSABI_GNU):
        return "ELF file OS ABI invalid"
    if abiversion != 0 and not (osabi == ELFOSABI_GNU and abiversion < _LIBC_ABI_MAX):
        return "ELF file ABI version invalid"
    if any(head[9:16]):
        return "nonzero padding in e_ident"
    e = "<" if little_endian else ">"
    e_type, e_machine, e_version = struct.unpack_from(e + "HHI", head, 16)
    if e_version != 1:
        return "ELF file version does not match current one"
    if e_machine != machine:
        return SKIP
    if e_type not in (ET_DYN, ET_EXEC):
        return "only ET_DYN and ET_EXEC can be loaded"
    if e_type == ET_EXEC:
        return "cannot dynamically load executable"
    phentsize = struct.unpack_from(e + "H", head, 54 if elf_class == 64 else 42)[0]
    if phentsize != (56 if elf_class == 64 else 32):
        return "ELF file's phentsize not the expected size"
    if info is not None:
        if not info.has_load:
            return "object file has no loadable segments"
        if not info._has_dynamic:
            return "object file has no dynamic section"
    return None


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
        try:
            return _parse(_Reader(fd, max(st.st_size, len(head)), head)), st
        except ElfError as exc:
            exc.head = head[:64]    # what loader_verdict needs to judge the file as glibc does
            raise
    finally:
        os.close(fd)


def parse_elf_bytes(data):
    """Like read_elf, for the bytes of a whole file (tests, fuzzing)."""
    data = bytes(data)
    try:
        return _parse(_BytesReader(data))
    except ElfError as exc:
        exc.head = data[:64]
        raise


def loader_ranges(pread, size):
    """The byte ranges [(offset, length)] that read_elf reads of a regular file
    of `size` bytes whose bytes pread(length, offset) returns.

    A file of the same size holding only these bytes (zeros elsewhere) reads
    the same to read_elf, ElfInfo or ElfError alike: the parser is a function
    of the bytes it reads. The image view keeps an ELF file so
    (pyimgtools/image/view.py)."""
    head = pread(min(_HEAD_SIZE, size), 0)
    r = _RecordingReader(pread, size, head)
    try:
        _parse(r)
    except ElfError:
        pass        # it fails on the same bytes again
    return [(0, len(head))] + r.ranges


class _RecordingReader(_Reader):
    """_Reader over a pread callable that notes each range read past the head."""

    __slots__ = ("pread", "ranges")

    def __init__(self, pread, size, head):
        _Reader.__init__(self, -1, size, head)
        self.pread = pread
        self.ranges = []

    def read(self, offset, length, what):
        if offset < 0 or length < 0 or offset + length > self.size:
            return _Reader.read(self, offset, length, what)     # its ElfError
        if offset + length <= len(self.head):
            return self.head[offset:offset + length]
        data = self.pread(length, offset)
        self.ranges.append((offset, len(data)))
        if len(data) != length:
            raise ElfError("%s: short read (file truncated while reading?)" % what)
        return data


class _BytesReader(_Reader):
    __slots__ = ()

    def __init__(self, data):
        _Reader.__init__(self, -1, len(data), data)


class _Layout:
    """The struct layouts of one (ELF class, byte order), chosen once per file
    (as packaging's _elffile does): the ELF header after e_ident, a program
    header, a dynamic entry and section header 0."""

    __slots__ = ("bits", "ehdr_size", "ehdr", "phdr", "ph_size", "ph_fields", "dyn_order",
                 "dyn_entry", "dyn_size", "shdr")

    def __init__(self, bits, order):
        wide = bits == 64
        self.bits = bits
        self.ehdr_size = 64 if wide else 52
        # e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize
        # e_phentsize e_phnum e_shentsize e_shnum e_shstrndx
        self.ehdr = struct.Struct(order + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"))
        # Elf64_Phdr puts p_flags second, Elf32_Phdr seventh: ph_fields picks
        # p_type, p_offset, p_vaddr, p_filesz, p_memsz out of either.
        self.phdr = struct.Struct(order + ("IIQQQQQQ" if wide else "IIIIIIII"))
        self.ph_size = self.phdr.size
        self.ph_fields = (0, 2, 3, 5, 6) if wide else (0, 1, 2, 4, 5)
        self.dyn_order = order
        self.dyn_entry = "qQ" if wide else "iI"     # d_tag (signed), d_val
        self.dyn_size = struct.calcsize(order + self.dyn_entry)
        self.shdr = struct.Struct(order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII"))

    def dynamic_words(self, data, count):
        """d_tag, d_val, d_tag, ... of `count` dynamic entries."""
        return struct.unpack(self.dyn_order + self.dyn_entry * count, data)


_CLASSES = {ELFCLASS32: 32, ELFCLASS64: 64}
_ORDERS = {ELFDATA2LSB: "<", ELFDATA2MSB: ">"}
_LAYOUTS = {(c, d): _Layout(bits, order) for c, bits in _CLASSES.items() for d, order in _ORDERS.items()}


def _parse(r):
    layout, info, e_phoff, e_phnum, e_phentsize, e_shoff = _header(r)
    if e_phnum == 0:
        return info  # e.g. a relocatable object: nothing for the loader
    if e_phnum == 0xFFFF:  # PN_XNUM: the real count is in section header 0's sh_info
        e_phnum = _xnum_phnum(r, layout, e_shoff)
    if e_phentsize < layout.ph_size:
        raise ElfError("program header entry size %d is smaller than %d" % (e_phentsize, layout.ph_size))
    if e_phnum > _MAX_PHNUM:
        raise ElfError("absurd program header count %d" % e_phnum)
    loads, dynamic, interp = _segments(r, layout, e_phoff, e_phnum, e_phentsize)
    if interp is not None:
        info.interp = _interp(r, *interp)
    info.has_load = bool(loads)
    if dynamic is None:
        return info
    info._has_dynamic = True
    _dynamic(r, layout, loads, dynamic, info)
    return info


def _header(r):
    """Check e_ident and read the ELF header: (layout, ElfInfo, e_phoff, e_phnum,
    e_phentsize, e_shoff)."""
    head = r.head
    if len(head) < 16 or head[:4] != ELF_MAGIC:
        raise ElfError("not an ELF file (no ELF magic)" if head[:4] != ELF_MAGIC or len(head) < 4
                       else "truncated ELF identification")
    ei_class, ei_data, ei_version, osabi = head[4], head[5], head[6], head[7]
    if ei_class not in _CLASSES:
        raise ElfError("invalid ELF class %d" % ei_class)
    if ei_data not in _ORDERS:
        raise ElfError("invalid ELF data encoding %d" % ei_data)
    layout = _LAYOUTS[(ei_class, ei_data)]
    if ei_version != 1:
        raise ElfError("invalid ELF identification version %d" % ei_version)
    if len(head) < layout.ehdr_size:
        raise ElfError("truncated ELF header (%d of %d bytes)" % (len(head), layout.ehdr_size))
    (e_type, e_machine, _e_version, _entry, e_phoff, e_shoff, e_flags, _ehsize,
     e_phentsize, e_phnum, _shentsize, _shnum, _shstrndx) = layout.ehdr.unpack_from(head, 16)
    info = ElfInfo(elf_class=layout.bits, little_endian=(ei_data == ELFDATA2LSB), machine=e_machine,
                   osabi=osabi, type=e_type, e_flags=e_flags, ehdr=bytes(head[:64]))
    return layout, info, e_phoff, e_phnum, e_phentsize, e_shoff


def _segments(r, layout, e_phoff, e_phnum, e_phentsize):
    """The program headers the loader uses: (PT_LOADs as (p_vaddr, p_filesz,
    p_offset, p_memsz), PT_DYNAMIC's address or None, PT_INTERP's (p_offset,
    p_filesz) or None)."""
    phdata = r.read(e_phoff, e_phnum * e_phentsize, "program header table")
    unpack = layout.phdr.unpack_from
    t, o, v, f, m = layout.ph_fields
    loads = []
    dynamic = None
    interp = None
    for i in range(e_phnum):
        ph = unpack(phdata, i * e_phentsize)
        p_type = ph[t]
        if p_type == PT_LOAD:
            loads.append((ph[v], ph[f], ph[o], ph[m]))
        elif p_type == PT_DYNAMIC:
            # glibc (_dl_map_object_from_fd) takes the last one with a file size
            # and uses only its address: p_offset and p_filesz are not read.
            if ph[f]:
                dynamic = ph[v]
        elif p_type == PT_INTERP:
            if interp is None:
                interp = (ph[o], ph[f])
    return loads, dynamic, interp


def _interp(r, off, size):
    """The PT_INTERP string (p_filesz bytes at p_offset, up to the NUL)."""
    if size == 0 or size > _MAX_INTERP:
        raise ElfError("absurd PT_INTERP size %d" % size)
    raw = r.read(off, size, "PT_INTERP")
    end = raw.find(b"\0")
    if end < 0:
        raise ElfError("PT_INTERP is not NUL-terminated")
    if end == 0:
        raise ElfError("PT_INTERP is empty")
    return _decode(raw[:end])


def _dynamic(r, layout, loads, dynamic, info):
    """Fill info's DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME and DT_FLAGS_1 from
    the dynamic entries at address `dynamic`."""
    dyn_size = layout.dyn_size
    data = _dynamic_entries(r, loads, dynamic, dyn_size)
    count = len(data) // dyn_size
    needed, rpath, runpath = [], [], []
    soname = None
    strtab = None
    flags_1 = 0
    words = layout.dynamic_words(data, count)
    tags = words[0::2]
    try:
        end = tags.index(DT_NULL)
    except ValueError:
        end = count     # ran to the end of the mapping: what glibc reads next is unknown
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
            pass    # glibc never bounds a string by DT_STRSZ: it reads to the NUL
        elif tag == DT_SONAME:
            soname = val
        elif tag == DT_RPATH:
            rpath.append(val)
        elif tag == DT_RUNPATH:
            runpath.append(val)
        else:
            flags_1 = val
    info.flags_1 = flags_1
    if not (needed or rpath or runpath or soname is not None):
        return
    if strtab is None:
        raise ElfError("dynamic segment has strings but no DT_STRTAB")
    if _load_of(loads, strtab) is None:
        raise ElfError("DT_STRTAB address %#x lies in no PT_LOAD segment" % strtab)
    strings = _StringTable(r, loads, strtab)
    info.needed = [strings.get(v, "DT_NEEDED") for v in needed]
    for v in rpath:
        info.rpath.extend(strings.get(v, "DT_RPATH").split(":"))
    for v in runpath:
        info.runpath.extend(strings.get(v, "DT_RUNPATH").split(":"))
    if soname is not None:
        info.soname = strings.get(soname, "DT_SONAME")


def _xnum_phnum(r, layout, e_shoff):
    """e_phnum when it is PN_XNUM: sh_info of section header 0."""
    if e_shoff == 0:
        raise ElfError("e_phnum is PN_XNUM but there is no section header")
    raw = r.read(e_shoff, layout.shdr.size, "section header 0")
    return layout.shdr.unpack_from(raw)[7]


# ld.so reads the dynamic segment and its strings in the mapped file, by
# address: a PT_LOAD maps p_filesz bytes of the file from p_offset at p_vaddr
# and zero-fills up to p_memsz. These helpers read that memory image.

def _load_of(loads, vaddr):
    """The PT_LOAD (p_vaddr, p_filesz, p_offset, p_memsz) whose memory holds `vaddr`, or None."""
    for load in loads:
        p_vaddr, p_filesz, _p_offset, p_memsz = load
        if p_vaddr <= vaddr < p_vaddr + max(p_memsz, p_filesz):
            return load
    return None


def _dynamic_entries(r, loads, vaddr, dyn_size):
    """The bytes of the dynamic entries at `vaddr`, up to DT_NULL or the end of their PT_LOAD.

    As glibc's elf_get_dynamic_info: from PT_DYNAMIC's address until a DT_NULL
    tag, whatever p_offset/p_filesz say; the zero fill after a segment's file
    bytes reads as DT_NULL.
    """
    load = _load_of(loads, vaddr)
    if load is None:
        raise ElfError("PT_DYNAMIC address %#x lies in no PT_LOAD segment" % vaddr)
    p_vaddr, p_filesz, p_offset, p_memsz = load
    start = vaddr - p_vaddr
    in_file = max(0, min(p_filesz - start, _MAX_DYNAMIC))
    in_file -= in_file % dyn_size
    data = r.read(p_offset + start, in_file, "dynamic segment") if in_file else b""
    if start + in_file < max(p_memsz, p_filesz) and len(data) < _MAX_DYNAMIC:
        data += bytes(dyn_size)     # the zero fill: a DT_NULL entry
    return data


class _StringTable:
    """Reads NUL-terminated strings at DT_STRTAB + offset in the mapped file, in chunks.

    glibc reads each string at its address up to the NUL, without DT_STRSZ;
    a string that runs into the zero fill after a segment's file bytes ends there.
    """

    __slots__ = ("r", "loads", "strtab", "chunks")

    def __init__(self, r, loads, strtab):
        self.r = r
        self.loads = loads
        self.strtab = strtab
        self.chunks = {}

    def get(self, offset, what):
        load = _load_of(self.loads, self.strtab + offset)
        if load is None:
            raise ElfError("%s string offset %d lies past the string table's PT_LOAD segment"
                           % (what, offset))
        p_vaddr, p_filesz, p_offset, p_memsz = load
        pos = p_offset + self.strtab + offset - p_vaddr     # file offset of the string
        limit = p_offset + p_filesz                         # end of the segment's file bytes
        parts = []
        total = 0
        while True:
            if pos >= limit:
                if p_memsz > p_filesz:
                    break   # the zero fill terminates it
                raise ElfError("%s string at offset %d is not NUL-terminated" % (what, offset))
            start = pos - pos % _STR_CHUNK
            chunk = self.chunks.get(start)
            if chunk is None:
                length = min(_STR_CHUNK, limit - start, self.r.size - start)
                if length <= 0:
                    raise ElfError("%s string at offset %d runs past the end of the file"
                                   % (what, offset))
                chunk = self.r.read(start, length, "string table")
                self.chunks[start] = chunk
            end = chunk.find(b"\0", pos - start)
            if end >= 0:
                parts.append(chunk[pos - start:end])
                break
            parts.append(chunk[pos - start:])
            total += len(chunk) - (pos - start)
            pos = start + len(chunk)
            if total > _MAX_STRING:
                raise ElfError("%s string at offset %d is absurdly long" % (what, offset))
        return _decode(b"".join(parts))
