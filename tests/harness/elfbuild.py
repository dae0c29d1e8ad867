"""ELF files built from the System V gABI layout, independent of pyimgtools.elf.

`build_elf` writes the bytes a linker would: ELF header, program headers
(one PT_LOAD mapping the whole file, PT_INTERP, PT_DYNAMIC) and a dynamic
section whose DT_STRTAB is a virtual address. It is the independent reference
for the reader (tests/unit/test_elf.py, test_elf_fuzz.py) and the loader tests
that need ELF files without a compiler (test_loader*.py, test_audit.py).
"""

import os
import struct

DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 5, 10, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB


def build_elf(bits=64, little=True, machine=62, etype=3, osabi=0, interp=None, needed=(),
              soname=None, rpath=None, runpath=None, flags_1=None, dynamic=True, e_flags=0,
              extra_dyn=(), terminate=True, vaddr_base=0x400000):
    """Bytes of a minimal ELF file laid out by the gABI.

    One PT_LOAD maps the whole file at `vaddr_base`; PT_INTERP and PT_DYNAMIC
    point into it; the dynamic string table is referenced by DT_STRTAB as a
    virtual address, as linkers write it.
    """
    e = "<" if little else ">"
    ehsize = 64 if bits == 64 else 52
    phentsize = 56 if bits == 64 else 32
    phdrs = [1] + ([3] if interp is not None else []) + ([2] if dynamic else [])
    off = ehsize + phentsize * len(phdrs)
    interp_off = off
    interp_raw = os.fsencode(interp) + b"\0" if interp is not None else b""
    off += len(interp_raw)
    strtab = bytearray(b"\0")

    def add(s):
        pos = len(strtab)
        strtab.extend(os.fsencode(s) + b"\0")
        return pos

    dyn = []
    for name in needed:
        dyn.append((DT_NEEDED, add(name)))
    if soname is not None:
        dyn.append((DT_SONAME, add(soname)))
    if rpath is not None:
        dyn.append((DT_RPATH, add(rpath)))
    if runpath is not None:
        dyn.append((DT_RUNPATH, add(runpath)))
    if flags_1 is not None:
        dyn.append((DT_FLAGS_1, flags_1))
    dyn.extend(extra_dyn)
    str_off = off
    off += len(strtab)
    off = (off + 7) & ~7
    dyn_off = off
    dyn.append((DT_STRTAB, vaddr_base + str_off))
    dyn.append((DT_STRSZ, len(strtab)))
    if terminate:
        dyn.append((0, 0))
    dyn_fmt = e + ("qQ" if bits == 64 else "iI")
    dyn_raw = b"".join(struct.pack(dyn_fmt, t, v) for t, v in dyn) if dynamic else b""
    total = dyn_off + len(dyn_raw)

    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1, osabi]) + bytes(8)
    if bits == 64:
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", etype, machine, 1, 0, ehsize, 0, e_flags,
                                     ehsize, phentsize, len(phdrs), 0, 0, 0)
    else:
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", etype, machine, 1, 0, ehsize, 0, e_flags,
                                     ehsize, phentsize, len(phdrs), 0, 0, 0)
    ph = b""
    for p_type in phdrs:
        if p_type == 1:
            p_off, p_size, p_vaddr = 0, total, vaddr_base
        elif p_type == 3:
            p_off, p_size, p_vaddr = interp_off, len(interp_raw), vaddr_base + interp_off
        else:
            p_off, p_size, p_vaddr = dyn_off, len(dyn_raw), vaddr_base + dyn_off
        if bits == 64:
            ph += struct.pack(e + "IIQQQQQQ", p_type, 4, p_off, p_vaddr, p_vaddr, p_size, p_size, 8)
        else:
            ph += struct.pack(e + "IIIIIIII", p_type, p_off, p_vaddr, p_vaddr, p_size, p_size, 4, 4)
    out = bytearray(header + ph + interp_raw + bytes(strtab))
    out.extend(bytes(dyn_off - len(out)))
    out.extend(dyn_raw)
    return bytes(out)
