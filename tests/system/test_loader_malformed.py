"""The loader reads what ld.so reads and stops where ld.so stops (issue 14 items 5, 6).

Malformed copies of a real library of this machine (the running CPython's _ssl
module, else libssl.so.3) are written by the test, and each is compared with
the real `ld.so --list` on it: these files are trusted (made from this
machine's own library by the test), so running the loader on them is safe.

Item 5: copies whose dynamic segment is found the way glibc finds it (PT_DYNAMIC's
address through the PT_LOAD mapping, entries up to DT_NULL, strings to their NUL)
but not the way a section-or-offset reader does: ld.so loads them, and so do we.
Item 6: a candidate earlier on the search path that is not a loadable ELF object
for this machine: ld.so skips another class or machine and stops ("error while
loading shared libraries") at anything else; so do we.
"""

import glob
import os
import shutil
import struct
import sys

import pytest

from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness import keepref
from tests.harness.keepcli import keep_json, keep_packages
from tests.harness.ldd import LEVELS, RTLD, cpu_hwcaps, ld_so_list
from tests.harness.loadview import ldd_view
from tests.harness.prereq import require

pytestmark = pytest.mark.main_only

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRSZ, DT_DEBUG = 0, 1, 10, 21


def sample_library():
    """A real x86-64 ELF shared object of this machine with a DT_NEEDED besides libc."""
    candidates = glob.glob(os.path.join(os.path.dirname(os.__file__), "lib-dynload", "_ssl*.so"))
    candidates += ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.realpath(path)
    return None


class Elf64:
    """The few fields of a little-endian ELF64 file the mutations touch (independent of pyimgtools.elf)."""

    def __init__(self, data):
        self.data = bytearray(data)
        assert self.data[:6] == b"\x7fELF\x02\x01", "needs a little-endian ELF64 sample"
        self.phoff, = struct.unpack_from("<Q", self.data, 32)
        self.phentsize, self.phnum = struct.unpack_from("<HH", self.data, 54)
        self.dyn_ph = None
        for i in range(self.phnum):
            off = self.phoff + i * self.phentsize
            if struct.unpack_from("<I", self.data, off)[0] == PT_DYNAMIC:
                self.dyn_ph = off
        assert self.dyn_ph is not None
        self.dyn_off, = struct.unpack_from("<Q", self.data, self.dyn_ph + 8)
        self.dyn_size, = struct.unpack_from("<Q", self.data, self.dyn_ph + 32)

    def entries(self):
        """[(file offset, tag, value)] of the dynamic entries in PT_DYNAMIC's file bytes."""
        out = []
        for off in range(self.dyn_off, self.dyn_off + self.dyn_size - 15, 16):
            tag, val = struct.unpack_from("<qQ", self.data, off)
            out.append((off, tag, val))
        return out

    def set_entry(self, off, tag, val):
        struct.pack_into("<qQ", self.data, off, tag, val)


def _dyn_offset_wrong(e):
    struct.pack_into("<Q", e.data, e.dyn_ph + 8, 0)             # points at the ELF header


def _dyn_offset_past_eof(e):
    struct.pack_into("<Q", e.data, e.dyn_ph + 8, len(e.data) + 1 << 20)


def _dyn_filesz_short(e):
    struct.pack_into("<Q", e.data, e.dyn_ph + 32, 16)           # one entry: the rest by DT_NULL


def _no_dt_null(e):
    for off, tag, _val in e.entries():
        if tag == DT_NULL:
            e.set_entry(off, DT_DEBUG, 0)                       # every DT_NULL in the segment


def _strsz(value):
    def mutate(e):
        hits = [off for off, tag, _v in e.entries() if tag == DT_STRSZ]
        assert hits
        e.set_entry(hits[0], DT_STRSZ, value)
    return mutate


def _section_headers_garbage(e):
    struct.pack_into("<Q", e.data, 40, 0xFFFFFFFFF0)            # e_shoff
    struct.pack_into("<HHH", e.data, 58, 0x40, 0xFFFF, 0xFFFE)  # e_shentsize, e_shnum, e_shstrndx


LOADED = {
    "dyn-offset-wrong": _dyn_offset_wrong,
    "dyn-offset-past-eof": _dyn_offset_past_eof,
    "dyn-filesz-short": _dyn_filesz_short,
    "no-dt-null": _no_dt_null,
    "strsz-zero": _strsz(0),
    "strsz-huge": _strsz(1 << 40),
    "section-headers-garbage": _section_headers_garbage,
}


@pytest.fixture(scope="module")
def sample():
    require(os.path.exists(RTLD) and sys.platform.startswith("linux"), "needs x86-64 glibc")
    path = sample_library()
    require(path is not None, "needs CPython's _ssl module or libssl.so.3")
    rc, deps, err = ld_so_list(path)
    assert rc == 0, err
    return path, deps


@pytest.mark.parametrize("mutation", sorted(LOADED))
def test_malformed_copies_that_ld_so_loads_are_read(tmp_path, sample, mutation):
    path, original = sample
    with open(path, "rb") as f:
        e = Elf64(f.read())
    LOADED[mutation](e)
    copy = str(tmp_path / os.path.basename(path))
    with open(copy, "wb") as f:
        f.write(e.data)
    rc, expected, err = ld_so_list(copy)
    assert rc == 0, "ld.so no longer loads the %s copy: %s" % (mutation, err)
    assert expected == original     # the mutation changed nothing ld.so sees
    tree = Loader(Root("/")).load_tree(copy)
    assert ldd_view(tree) == expected
    assert not tree.missing


def test_keep_keeps_the_packages_of_what_ld_so_loads_for_every_copy(tmp_path, sample):
    # The symptom: keep gave a warning, no libssl3, exit 0.
    require(shutil.which("dpkg-query") is not None, "needs dpkg-query")
    path, _original = sample
    wrong = {}
    for mutation in sorted(LOADED):
        with open(path, "rb") as f:
            e = Elf64(f.read())
        LOADED[mutation](e)
        os.makedirs(str(tmp_path / mutation))
        copy = str(tmp_path / mutation / os.path.basename(path))
        with open(copy, "wb") as f:
            f.write(e.data)
        rc, deps, err = ld_so_list(copy)
        assert rc == 0, err
        owners = keepref.host_owners(sorted(p for p in deps.values() if p))
        expected = set().union(*owners.values())
        assert len(expected) >= 2, owners     # libc6 and the library's own (libssl3)
        doc, proc = keep_json(str(tmp_path / mutation))
        if proc.returncode != 0 or keep_packages(doc) != expected:
            wrong[mutation] = (proc.returncode, sorted(keep_packages(doc)), sorted(expected))
    assert not wrong


def _shadowed(sample):
    """(DT_NEEDED name of the sample other than libc, the host path ld.so maps for it)."""
    path, deps = sample
    for name, target in deps.items():
        if target and not name.startswith(("libc.so", "linux-vdso", "ld-linux")):
            return name, target
    pytest.fail("%s needs nothing but libc" % path)


def _header_edit(offset, fmt, value):
    def make(real):
        data = bytearray(real)
        struct.pack_into(fmt, data, offset, value)
        return bytes(data)
    return make


TEXT_SCRIPT = (b"/* GNU ld script\n   Use the shared library, but some functions are only in\n"
               b"   the static library.  */\nGROUP ( libfoo.so.1 AS_NEEDED ( libfoo_nonshared.a ) )\n")

# (name, how to make the first candidate from the real library's bytes, ld.so stops?)
CANDIDATES = [
    ("text-linker-script", lambda real: TEXT_SCRIPT, True),
    ("truncated-header", lambda real: real[:40], True),
    ("other-byte-order", _header_edit(5, "B", 2), True),
    ("ident-version", _header_edit(6, "B", 0), True),
    ("osabi-freebsd", _header_edit(7, "B", 9), True),
    ("nonzero-padding", _header_edit(12, "B", 1), True),
    ("e-version", _header_edit(20, "<I", 7), True),
    ("relocatable", _header_edit(16, "<H", 1), True),
    ("executable", _header_edit(16, "<H", 2), True),
    ("phentsize", _header_edit(54, "<H", 64), True),
    ("directory", None, True),
    ("other-class", _header_edit(4, "B", 1), False),
    ("other-machine", _header_edit(18, "<H", 183), False),
]


@pytest.mark.parametrize("kind, make, stops", CANDIDATES, ids=[c[0] for c in CANDIDATES])
def test_a_bad_candidate_earlier_on_the_path(tmp_path, sample, kind, make, stops):
    path, _deps = sample
    name, target = _shadowed(sample)
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    os.makedirs(first)
    os.makedirs(second)
    shutil.copyfile(target, os.path.join(second, name))
    bad = os.path.join(first, name)
    if make is None:
        os.makedirs(bad)
    else:
        with open(target, "rb") as f:
            real = f.read()
        with open(bad, "wb") as f:
            f.write(make(real))
    rc, expected, err = ld_so_list(path, [first, second])
    tree = Loader(Root("/"), ld_library_path=[first, second]).load_tree(path)
    dep = [d for d in tree.dependencies if d.name == name][0]
    if not stops:
        assert rc == 0, err
        assert expected[name] == os.path.join(second, name)
        assert ldd_view(tree) == expected
        assert dep.error is None
        return
    # ld.so names the candidate's path, or (errors found after the header, while
    # mapping) the name being loaded
    heads = ["error while loading shared libraries: %s: " % n for n in (bad, name)]
    assert rc != 0 and any(h in err for h in heads), err
    why = [err.split(h, 1)[1].strip() for h in heads if h in err][0]
    assert dep.path is None, "resolved %s past %s, where ld.so stops (%s)" % (dep.path, bad, why)
    assert dep.error.startswith(bad + ": ")
    # ld.so's words (it prints "Error 21" where we print strerror's text)
    ours = dep.error[len(bad) + 2:]
    assert ours.split(":")[0] == why.split(":")[0], (ours, why)
    assert any(bad in w for w in tree.warnings)


def test_a_bad_glibc_hwcaps_candidate_stops_the_cpus_that_search_it(tmp_path, sample):
    # A text file in every x86-64 glibc-hwcaps level, the real library beside them:
    # ld.so on this CPU stops at its highest level if it has one, else loads the
    # plain library; the loader told this CPU's levels does the same. Told nothing
    # (any CPU), the dependency is unresolved and the plain library is what CPUs
    # without those levels load.
    path, _deps = sample
    name, target = _shadowed(sample)
    top = str(tmp_path / "h")
    for level in LEVELS:
        os.makedirs(os.path.join(top, "glibc-hwcaps", level))
        with open(os.path.join(top, "glibc-hwcaps", level, name), "wb") as f:
            f.write(TEXT_SCRIPT)
    shutil.copyfile(target, os.path.join(top, name))
    cpu = cpu_hwcaps()
    rc, expected, err = ld_so_list(path, [top])
    tree = Loader(Root("/"), ld_library_path=[top], hwcaps=cpu).load_tree(path)
    dep = [d for d in tree.dependencies if d.name == name][0]
    if cpu:
        bad = os.path.join(top, "glibc-hwcaps", cpu[0], name)
        assert rc != 0 and "%s: invalid ELF header" % bad in err, err
        assert dep.path is None and dep.error == bad + ": invalid ELF header"
    else:
        assert rc == 0 and expected[name] == os.path.join(top, name), err
        assert ldd_view(tree) == expected
    any_cpu = [d for d in Loader(Root("/"), ld_library_path=[top]).load_tree(path).dependencies
               if d.name == name][0]
    assert any_cpu.path is None and any_cpu.error.startswith(
        os.path.join(top, "glibc-hwcaps", "x86-64-v4", name) + ": ")
    assert any_cpu.alternatives == [os.path.join(top, name)]
