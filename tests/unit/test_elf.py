"""pyimgtools.elf: the header/dynamic-segment reader.

Expected values come from hand-built ELF files (tests/harness/elfbuild.py writes
the spec's layout from the System V gABI, independent of the reader) and, for real
files of this machine, from binutils' `readelf`.
"""

import os
import re
import shutil
import struct
import subprocess

import pytest

from pyimgtools import elf
from pyimgtools.elf import ElfError, has_elf_magic, parse_elf_bytes, read_elf
from tests.harness.elfbuild import DT_NEEDED, DT_STRSZ, DT_STRTAB, build_elf
from tests.harness.elfwalk import is_elf_file
from tests.harness.prereq import require


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# --- round trips of hand-built files -------------------------------------

@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("little", [True, False])
def test_reads_every_field(tmp_path, bits, little):
    data = build_elf(bits=bits, little=little, machine=183 if bits == 64 else 40, etype=2,
                     osabi=3, interp="/lib/ld-test.so.1", needed=["liba.so.1", "libb.so.2"],
                     soname="libme.so.7", rpath="/r1:$ORIGIN/../r2", runpath="/u1",
                     flags_1=0x800 | 0x1, e_flags=0x400)
    info = read_elf(write(tmp_path / "f", data))
    assert info.elf_class == bits
    assert info.little_endian is little
    assert info.machine == (183 if bits == 64 else 40)
    assert info.osabi == 3
    assert info.type == 2
    assert info.e_flags == 0x400
    assert info.interp == "/lib/ld-test.so.1"
    assert info.needed == ["liba.so.1", "libb.so.2"]
    assert info.soname == "libme.so.7"
    assert info.rpath == ["/r1", "$ORIGIN/../r2"]
    assert info.runpath == ["/u1"]
    assert info.flags_1 == 0x801
    assert info.nodefaultlib
    assert parse_elf_bytes(data) == info


def test_static_file_has_no_dynamic_facts(tmp_path):
    info = read_elf(write(tmp_path / "s", build_elf(dynamic=False, etype=2)))
    assert (info.interp, info.needed, info.rpath, info.runpath, info.soname, info.flags_1) == \
        (None, [], [], [], None, 0)
    assert not info.nodefaultlib


def test_non_utf8_strings_round_trip(tmp_path):
    name = os.fsdecode(b"lib\xff\xfe.so")
    info = read_elf(write(tmp_path / "n", build_elf(needed=[name])))
    assert os.fsencode(info.needed[0]) == b"lib\xff\xfe.so"


def test_large_string_table_read_in_chunks(tmp_path):
    names = ["lib%05d_%s.so" % (i, "x" * 50) for i in range(400)]   # ~25 KiB of dynstr
    info = read_elf(write(tmp_path / "big", build_elf(needed=names)))
    assert info.needed == names


# --- errors: ElfError with a message naming the problem -------------------

@pytest.mark.parametrize("data, message", [
    (b"", "no ELF magic"),
    (b"\x7fEL", "no ELF magic"),
    (b"#!/bin/sh\n", "no ELF magic"),
    (b"\x7fELF\x02\x01\x01", "truncated ELF identification"),
    (b"\x7fELF\x03\x01\x01\x00" + bytes(60), "invalid ELF class 3"),
    (b"\x7fELF\x02\x07\x01\x00" + bytes(60), "invalid ELF data encoding 7"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(20), "truncated ELF header"),
])
def test_bad_identification(data, message):
    with pytest.raises(ElfError, match=message):
        parse_elf_bytes(data)


def test_truncated_program_headers():
    data = build_elf(needed=["liba.so"])
    with pytest.raises(ElfError, match="program header table .* past the end"):
        parse_elf_bytes(data[:100])


def test_missing_dt_null_reads_to_the_end_of_the_mapping():
    # glibc reads entries up to DT_NULL in memory; here the PT_LOAD ends first
    # (checked against the real ld.so in tests/system/test_loader_malformed.py).
    data = build_elf(needed=["liba.so"], terminate=False)
    assert parse_elf_bytes(data).needed == ["liba.so"]


def test_string_offset_past_table():
    data = build_elf(extra_dyn=[(DT_NEEDED, 10 ** 6)])
    with pytest.raises(ElfError, match="DT_NEEDED string offset 1000000 lies past the string table"):
        parse_elf_bytes(data)


def test_strtab_outside_loads():
    data = build_elf(needed=["liba.so"], vaddr_base=0x400000)
    # Rewrite DT_STRTAB to an address no PT_LOAD maps.
    i = data.find(struct.pack("<qQ", DT_STRTAB, 0x400000 + data.find(b"\0liba.so") ))
    assert i > 0
    bad = data[:i] + struct.pack("<qQ", DT_STRTAB, 0x10) + data[i + 16:]
    with pytest.raises(ElfError, match="DT_STRTAB address 0x10 lies in no PT_LOAD"):
        parse_elf_bytes(bad)


@pytest.mark.parametrize("strsz", [0, 5])
def test_dt_strsz_does_not_bound_the_strings(strsz):
    data = build_elf(needed=["liba.so"])
    # The string table is "\0liba.so\0" (9 bytes); glibc reads each string to its
    # NUL whatever DT_STRSZ says (0, or 5: cut before the NUL).
    i = data.find(struct.pack("<qQ", DT_STRSZ, 9))
    assert i > 0
    bad = data[:i] + struct.pack("<qQ", DT_STRSZ, strsz) + data[i + 16:]
    assert parse_elf_bytes(bad).needed == ["liba.so"]


def test_unterminated_string():
    # A DT_NEEDED string placed after the dynamic entries, running to the end of
    # the PT_LOAD's file bytes with no zero fill after it.
    data = bytearray(build_elf(extra_dyn=[(DT_NEEDED, 0xDEAD)]))
    strtab = struct.unpack_from("<Q", data, data.find(struct.pack("<q", DT_STRTAB)) + 8)[0] - 0x400000
    struct.pack_into("<Q", data, data.find(struct.pack("<qQ", DT_NEEDED, 0xDEAD)) + 8,
                     len(data) - strtab)
    data += b"y" * 10
    struct.pack_into("<QQ", data, 64 + 32, len(data), len(data))     # PT_LOAD p_filesz, p_memsz
    with pytest.raises(ElfError, match="DT_NEEDED string at offset %d is not NUL-terminated"
                       % (len(data) - 10 - strtab)):
        parse_elf_bytes(bytes(data))
    struct.pack_into("<Q", data, 64 + 40, len(data) + 8)            # zero fill after: terminated
    assert parse_elf_bytes(bytes(data)).needed == ["y" * 10]


def test_string_running_to_end_of_file():
    data = build_elf(needed=["liba.so"])
    i = data.find(struct.pack("<qQ", DT_STRSZ, 9))
    # No DT_STRSZ limit that helps: the table is bounded by the end of the file.
    bad = data[:i] + struct.pack("<qQ", DT_STRSZ, 1 << 40) + data[i + 16:]
    assert parse_elf_bytes(bad).needed == ["liba.so"]
    j = bad.find(b"liba.so")
    with pytest.raises(ElfError, match="past the end|not NUL-terminated"):
        parse_elf_bytes(bad[:j + 3])


def test_absurd_phnum():
    data = bytearray(build_elf(needed=["a"]))
    struct.pack_into("<H", data, 56, 0xFFFE)   # e_phnum
    with pytest.raises(ElfError, match="absurd program header count|past the end"):
        parse_elf_bytes(bytes(data))


def test_dynamic_size_and_offset_are_not_used():
    data = bytearray(build_elf(needed=["a"]))
    # PT_DYNAMIC is the second program header: p_offset at 64 + 56 + 8, p_filesz
    # at + 32. glibc reads the entries at p_vaddr through the PT_LOAD mapping.
    struct.pack_into("<Q", data, 64 + 56 + 32, 1 << 40)
    struct.pack_into("<Q", data, 64 + 56 + 8, 1 << 50)
    assert parse_elf_bytes(bytes(data)).needed == ["a"]
    struct.pack_into("<Q", data, 64 + 56 + 32, 0)   # a PT_DYNAMIC without file size is ignored
    assert parse_elf_bytes(bytes(data)).needed == []


def test_interp_not_terminated():
    data = bytearray(build_elf(interp="/lib/ld.so", needed=["a"]))
    i = data.find(b"/lib/ld.so\0")
    data[i + 10] = ord("x")
    with pytest.raises(ElfError, match="PT_INTERP is not NUL-terminated"):
        parse_elf_bytes(bytes(data))


def test_read_elf_errors_are_oserror_or_elferror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_elf(str(tmp_path / "absent"))
    with pytest.raises(IsADirectoryError):
        read_elf(str(tmp_path))
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(ElfError, match="not a regular file"):
        read_elf(fifo)                     # must not block


def test_has_elf_magic(tmp_path):
    assert has_elf_magic(write(tmp_path / "e", build_elf()))
    assert has_elf_magic(write(tmp_path / "m", b"\x7fELF"))      # magic only: still "starts with"
    assert not has_elf_magic(write(tmp_path / "t", b"\x7fEL"))
    assert not has_elf_magic(write(tmp_path / "s", b"#!/bin/sh\n"))
    assert not has_elf_magic(str(tmp_path / "absent"))
    assert not has_elf_magic(str(tmp_path))
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    assert not has_elf_magic(fifo)         # must not block
    assert has_elf_magic(os.fsencode(str(tmp_path / "e")))


def test_reads_only_the_head_of_a_large_file(tmp_path):
    # A 64 MiB sparse file with a valid ELF head: read_elf must not read it all.
    data = build_elf(needed=["liba.so.1"])
    path = write(tmp_path / "huge", data)
    with open(path, "r+b") as f:
        f.truncate(64 << 20)
    import tracemalloc
    tracemalloc.start()
    info = read_elf(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert info.needed == ["liba.so.1"]
    assert peak < 1 << 20


# --- real files, checked against binutils' readelf ------------------------

def _readelf(path):
    out = subprocess.run(["readelf", "-W", "-h", "-l", "-d", path], capture_output=True,
                         text=True, errors="surrogateescape", env=dict(os.environ, LC_ALL="C"))
    text = out.stdout
    facts = {"needed": re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", text),
             "soname": (re.findall(r"\(SONAME\)\s+Library soname: \[(.*)\]", text) or [None])[0],
             "rpath": re.findall(r"\(RPATH\)\s+Library rpath: \[(.*)\]", text),
             "runpath": re.findall(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", text),
             "interp": (re.findall(r"\[Requesting program interpreter: (.*)\]", text) or [None])[0],
             "machine": re.search(r"Machine:\s+(.*)", text).group(1).strip(),
             "class": re.search(r"Class:\s+ELF(\d+)", text).group(1)}
    flags = re.findall(r"\(FLAGS_1\)\s+Flags: (.*)", text)
    facts["nodeflib"] = bool(flags and "NODEFLIB" in flags[0].split())
    return facts


def _sample_files():
    out = []
    for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/root/.pyenv/versions/3.11.7/lib/python3.11/"
              "site-packages/scipy.libs", "/root/.pyenv/versions/3.11.7/bin"):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names[::7]:
            p = os.path.join(d, n)
            if is_elf_file(p):
                out.append(p)
    return out[:150]


def test_matches_readelf_on_this_machine():
    require(shutil.which("readelf") is not None, "needs readelf (binutils)")
    files = _sample_files()
    require(len(files) > 20, "needs ELF files under /usr/bin and /usr/lib/x86_64-linux-gnu")
    machines = {"Advanced Micro Devices X86-64": 62, "Intel 80386": 3, "AArch64": 183}
    for path in files:
        expected = _readelf(path)
        info = read_elf(path)
        assert info.needed == expected["needed"], path
        assert info.soname == expected["soname"], path
        assert ":".join(info.rpath) == ":".join(expected["rpath"]), path
        assert ":".join(info.runpath) == ":".join(expected["runpath"]), path
        assert info.interp == expected["interp"], path
        assert info.nodefaultlib == expected["nodeflib"], path
        assert str(info.elf_class) == expected["class"], path
        if expected["machine"] in machines:
            assert info.machine == machines[expected["machine"]], path


def test_module_constants():
    assert elf.ELF_MAGIC == b"\x7fELF"
    assert elf.DF_1_NODEFLIB == 0x800


def _trimmed(data, ranges):
    """A copy of `data` holding only `ranges`: zeros elsewhere (the image view's sparse file)."""
    out = bytearray(len(data))
    for offset, length in ranges:
        out[offset:offset + length] = data[offset:offset + length]
    return bytes(out)


def _outcome(data):
    try:
        return elf.parse_elf_bytes(data)
    except elf.ElfError as exc:
        return "ElfError: %s" % exc


def test_loader_ranges_are_all_read_elf_reads_of_this_machines_files():
    files = _sample_files()
    require(len(files) > 20, "needs ELF files under /usr/bin and /usr/lib/x86_64-linux-gnu")
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        ranges = elf.loader_ranges(lambda n, off: data[off:off + n], len(data))
        assert ranges[0] == (0, min(4096, len(data)))
        trimmed = _trimmed(data, ranges)
        assert _outcome(trimmed) == _outcome(data) == read_elf(path), path
        kept = sum(n for _off, n in ranges)
        # the loader's bytes are kilobytes: the header page, the dynamic
        # segment and a few pages of strings, whatever the library's size
        assert kept <= 4096 + 64 * 1024 or kept < len(data) // 4, (path, kept)


def test_loader_ranges_of_a_file_read_elf_refuses():
    data = build_elf(bits=64, little=True, needed=["libc.so.6"])
    cut = data[:len(data) - 8]          # the string table runs off the end
    for broken in (cut, data[:40], b"\x7fELF" + bytes(100)):
        ranges = elf.loader_ranges(lambda n, off: broken[off:off + n], len(broken))
        assert _outcome(_trimmed(broken, ranges)) == _outcome(broken)
