"""Fuzzing pyimgtools.elf with hypothesis: only ElfError ever escapes the reader.

Inputs are valid files from the gABI builder of tests/harness/elfbuild.py, then attacked:
header fields, program headers and dynamic entries set to arbitrary values
(offsets past the end, huge counts and sizes, DT_STRTAB anywhere, missing
DT_NULL, string offsets anywhere), bytes overwritten, and the file truncated.
Every generated case is parsed from memory; a share also goes through
read_elf on a real file. At least 20,000 cases per run (counted).
"""

import os
import random
import struct

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pyimgtools.elf import ElfError, ElfInfo, parse_elf_bytes, read_elf  # noqa: E402
from tests.harness.elfbuild import build_elf  # noqa: E402

EXAMPLES = 500
MUTANTS = 40
COUNT = {"cases": 0}

names = st.text(alphabet="abcz.-_/$:0123456789{}", min_size=0, max_size=12)


def _attack(rnd, bits, little, data):
    """Apply 0-4 random attacks to a valid file (header, phdrs, dynamic, bytes) and maybe cut it."""
    data = bytearray(data)
    e = "<" if little else ">"
    word = "Q" if bits == 64 else "I"
    wmax = (1 << bits) - 1
    ehsize = 64 if bits == 64 else 52
    phent = 56 if bits == 64 else 32
    dsize = 16 if bits == 64 else 8
    dfmt = e + ("qQ" if bits == 64 else "iI")

    def value(limit):
        return rnd.choice([0, 1, 7, 0xFFFF, 0xFFFFFFFF, (1 << 63) - 1, wmax,
                           rnd.randrange(0, 0x200), rnd.randrange(0, len(data) + 64),
                           rnd.randrange(0, 1 << 32), rnd.getrandbits(64)]) & limit

    for _ in range(rnd.randrange(0, 5)):
        kind = rnd.randrange(5)
        if kind == 0:   # header: e_phoff, e_shoff, e_phentsize, e_phnum
            off, fmt = rnd.choice([((32, 40)[bits == 64], word), ((28, 32)[bits == 64], word),
                                   ((42, 54)[bits == 64], "H"), ((44, 56)[bits == 64], "H")])
            struct.pack_into(e + fmt, data, off, value((1 << (8 * struct.calcsize(fmt))) - 1))
        elif kind == 1:  # a program header's type, offset, vaddr or size
            base = ehsize + rnd.randrange(3) * phent
            slot = rnd.choice([(0, "I"), (8, "Q"), (16, "Q"), (32, "Q")] if bits == 64
                              else [(0, "I"), (4, "I"), (8, "I"), (16, "I")])
            if base + slot[0] + struct.calcsize(slot[1]) <= len(data):
                struct.pack_into(e + slot[1], data, base + slot[0],
                                 value((1 << (8 * struct.calcsize(slot[1]))) - 1))
        elif kind == 2:  # a dynamic entry: any tag, any value
            pos = len(data) - dsize * rnd.randrange(1, 8)
            if pos >= ehsize:
                tag = rnd.choice([0, 1, 5, 10, 14, 15, 29, 0x6FFFFFFB, rnd.randrange(-(1 << 31), 1 << 31)])
                struct.pack_into(dfmt, data, pos, tag, value(wmax))
        elif kind == 3:  # raw bytes anywhere (NULs removed from strings, etc.)
            if data:
                pos = rnd.randrange(len(data))
                chunk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 9)))
                data[pos:pos + len(chunk)] = chunk
        else:            # all NULs of the string area replaced
            lo = ehsize + phent
            data[lo:] = bytes(b if b else 0x41 for b in data[lo:])
    if rnd.random() < 0.4:
        del data[rnd.randrange(len(data) + 1):]
    return bytes(data)


@st.composite
def base_files(draw):
    bits = draw(st.sampled_from([32, 64]))
    little = draw(st.booleans())
    data = build_elf(
        bits=bits, little=little, machine=draw(st.sampled_from([3, 62, 183, 40])),
        interp=draw(st.one_of(st.none(), names)),
        needed=draw(st.lists(names, max_size=4)),
        soname=draw(st.one_of(st.none(), names)),
        rpath=draw(st.one_of(st.none(), names)),
        runpath=draw(st.one_of(st.none(), names)),
        flags_1=draw(st.one_of(st.none(), st.integers(0, 0xFFFFFFFF))),
        dynamic=draw(st.sampled_from([True, True, True, False])),
        extra_dyn=draw(st.lists(st.tuples(st.sampled_from([1, 5, 10, 14, 15, 29]),
                                          st.integers(0, 0xFFFFFFFF)), max_size=3)),
        terminate=draw(st.booleans()),
        vaddr_base=draw(st.sampled_from([0, 0x400000, 0xFFFFF000])))
    return bits, little, data


@st.composite
def elf_cases(draw):
    bits, little, data = draw(base_files())
    rnd = random.Random(draw(st.integers(0, (1 << 32) - 1)))
    return _attack(rnd, bits, little, data)


def _parse(data):
    COUNT["cases"] += 1
    try:
        info = parse_elf_bytes(data)
    except ElfError as exc:
        assert str(exc)       # the message names the problem
        return None
    assert isinstance(info, ElfInfo)
    assert all(isinstance(n, str) for n in info.needed)
    return info


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(base_files(), st.integers(0, (1 << 32) - 1))
def test_only_elferror_escapes(base, seed):
    """Each example: one generated file, MUTANTS attacked variants of it (seeded)."""
    bits, little, data = base
    rnd = random.Random(seed)
    _parse(data)
    for _ in range(MUTANTS):
        _parse(_attack(rnd, bits, little, data))


@settings(max_examples=1000, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200).map(lambda b: b"\x7fELF" + b))
def test_random_bytes_after_magic(data):
    _parse(data)


@pytest.mark.main_only
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(elf_cases())
def test_read_elf_on_files(tmp_path_factory, case):
    if "dir" not in COUNT:
        COUNT["dir"] = str(tmp_path_factory.mktemp("fuzz"))
    path = os.path.join(COUNT["dir"], "f")
    for blob in (case, case[:len(case) // 2]):
        with open(path, "wb") as f:
            f.write(blob)
        COUNT["cases"] += 1
        try:
            mem = parse_elf_bytes(blob)
        except ElfError:
            mem = "error"
        try:
            got = read_elf(path)
        except ElfError:
            got = "error"
        assert got == mem     # the file reader and the memory reader agree


def test_case_count():
    """Runs after the property tests of this module (pytest keeps file order)."""
    expected = EXAMPLES * (1 + MUTANTS) + 1000 + 2 * 200
    if COUNT["cases"] < 20000:
        pytest.skip("fuzz tests were deselected (%d cases ran)" % COUNT["cases"])
    assert COUNT["cases"] >= 20000
    assert COUNT["cases"] <= expected + 1000


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(base_files(), st.integers(0, (1 << 32) - 1))
def test_a_copy_of_only_the_loader_ranges_reads_the_same(base, seed):
    """elf.loader_ranges (what the image view keeps of an ELF file): zeros
    everywhere else change neither the facts nor the error."""
    from pyimgtools import elf
    bits, little, data = base
    rnd = random.Random(seed)
    for case in [data] + [_attack(rnd, bits, little, data) for _ in range(MUTANTS // 4)]:
        kept = bytearray(len(case))
        # these files fit in read_elf's first read: a head of the ELF header's
        # size makes every later read a recorded range
        head_size, elf._HEAD_SIZE = elf._HEAD_SIZE, 64
        try:
            ranges = elf.loader_ranges(lambda n, off: case[off:off + n], len(case))
        finally:
            elf._HEAD_SIZE = head_size
        for offset, length in ranges:
            kept[offset:offset + length] = case[offset:offset + length]
        outcomes = []
        for variant in (case, bytes(kept)):
            try:
                outcomes.append(parse_elf_bytes(variant))
            except ElfError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
