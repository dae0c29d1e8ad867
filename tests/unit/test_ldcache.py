"""pyimgtools.ldcache: ld.so.cache (both formats) and ld.so.conf, checked against ldconfig."""

import os
import random
import re
import shutil
import struct
import subprocess

import pytest

from pyimgtools import ldcache
from pyimgtools.elf import ElfInfo, read_elf
from pyimgtools.fs import Root
from tests.harness.ldcachebuild import new_cache
from tests.harness.prereq import require

LDCONFIG = shutil.which("ldconfig") or "/sbin/ldconfig"

_P_LINE = re.compile(r'^\t(.*) \(([^,)]*(?:,[^,)]*?)?)(?:, hwcap: "(.*)")?(?:, OS ABI: [^)]*)?\) => (.*)$')


def ldconfig_p(cache_file):
    """Entries printed by `ldconfig -p`: (name, flags text, hwcap subdir, path), in order."""
    out = subprocess.run([LDCONFIG, "-C", cache_file, "-p"], capture_output=True, check=True,
                         env=dict(os.environ, LC_ALL="C")).stdout.decode("utf-8", "surrogateescape")
    lines = out.splitlines()
    count = int(re.match(r"(\d+) libs found", lines[0]).group(1))
    entries = []
    for line in lines[1:]:
        m = _P_LINE.match(line)
        if m:
            entries.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return count, entries


def test_host_cache_matches_ldconfig_p():
    require(os.path.exists(LDCONFIG) and os.path.exists(ldcache.CACHE_PATH),
            "needs ldconfig and /etc/ld.so.cache")
    cache = ldcache.read_cache(Root("/"))
    count, expected = ldconfig_p(ldcache.CACHE_PATH)
    assert len(cache) == count == len(expected)
    got = [(e.name, ldcache.expected_flags_text(e.flags), e.hwcaps_subdir, e.path)
           for e in cache.entries]
    assert got == expected
    libc = [p for n, _f, _h, p in expected if n == "libc.so.6"]
    x86 = ElfInfo(elf_class=64, little_endian=True, machine=62, osabi=0, type=3)
    assert cache.lookup("libc.so.6", ldcache.accepted_flags(x86)) == libc[0]


def _lib(path, soname):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    src = path + ".c"
    with open(src, "w") as f:
        f.write("int f(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", path, src, "-Wl,-soname," + soname], check=True)
    os.unlink(src)


@pytest.fixture
def image(tmp_path):
    """A small root with libraries in conf dirs (one glibc-hwcaps variant, one include)."""
    require(shutil.which("gcc") is not None, "needs gcc")
    require(os.path.exists(LDCONFIG), "needs ldconfig")
    require(os.geteuid() == 0, "ldconfig -r needs root")
    root = tmp_path / "root"
    _lib(str(root / "opt/a/libH.so.1"), "libH.so.1")
    _lib(str(root / "opt/a/glibc-hwcaps/x86-64-v3/libH.so.1"), "libH.so.1")
    _lib(str(root / "opt/b/libE.so.2"), "libE.so.2")
    _lib(str(root / "usr/local/lib/libE.so.2"), "libE.so.2")
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("include ld.so.conf.d/*.conf\n/opt/a  # comment\n")
    (root / "etc/ld.so.conf.d/x.conf").write_text("/opt/b\n/usr/local/lib\n")
    return root


@pytest.mark.parametrize("fmt", ["new", "old", "compat"])
def test_cache_formats_match_ldconfig(image, fmt):
    subprocess.run([LDCONFIG, "-r", str(image), "-c", fmt, "-X"], capture_output=True, check=True)
    cache_file = str(image / "etc/ld.so.cache")
    with open(cache_file, "rb") as f:
        head = f.read(20)
    assert head.startswith(b"glibc-ld.so.cache" if fmt == "new" else b"ld.so-1.7.0")
    cache = ldcache.read_cache(Root(str(image)))
    assert cache.format == fmt
    count, expected = ldconfig_p(cache_file)
    assert len(cache) == count
    got = [(e.name, ldcache.expected_flags_text(e.flags), e.path) for e in cache.entries]
    assert got == [(n, f, p) for n, f, _h, p in expected]
    if fmt == "new":   # ldconfig 2.36 -p prints garbage hwcap names for compat caches
        assert [e.hwcaps_subdir for e in cache.entries] == [h for _n, _f, h, _p in expected]
    flags = (0x303,)
    if fmt == "old":
        # No hwcap field: the loader takes the first entry, in ldconfig's order.
        first = [p for n, _f, _h, p in expected if n == "libH.so.1"][0]
        assert cache.lookup("libH.so.1", flags) == first
    else:
        assert cache.lookup("libH.so.1", flags) == "/opt/a/libH.so.1"
    assert cache.lookup("libE.so.2", flags) == "/opt/b/libE.so.2"   # conf order
    assert cache.lookup("libE.so.2", (0x803,)) is None                # x32 flags: no match
    if fmt != "old":
        hw = [e for e in cache.lookup_all("libH.so.1", flags) if e.hwcaps_subdir]
        assert [(e.hwcaps_subdir, e.path) for e in hw] == \
            [("x86-64-v3", "/opt/a/glibc-hwcaps/x86-64-v3/libH.so.1")]


def test_conf_order_matches_ldconfig(image):
    out = subprocess.run([LDCONFIG, "-r", str(image), "-v", "-N", "-X"], capture_output=True,
                         env=dict(os.environ, LC_ALL="C")).stdout.decode()
    expected = [m.group(1) for m in re.finditer(r"^(/\S*): \(from (?!<builtin>)", out, re.M)]
    assert expected == ["/opt/b", "/usr/local/lib", "/opt/a"]
    assert ldcache.read_conf(Root(str(image))) == expected


def test_conf_parsing(tmp_path):
    root = tmp_path
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/other").mkdir()
    (root / "etc/ld.so.conf").write_text(
        "# comment\n\n/usr/local/lib\ninclude /etc/ld.so.conf.d/*.conf\n"
        "hwcap 0 nosegneg\n/opt/x/ , /opt/y:/opt/z\ninclude /etc/missing/*.conf\n"
        "include other/extra.conf\n/usr/local/lib\n/libc5=libc5\nrelative/dir\n")
    (root / "etc/ld.so.conf.d/b.conf").write_text("/b\n")
    (root / "etc/ld.so.conf.d/a.conf").write_text("/a\t# tab comment\n")
    (root / "etc/ld.so.conf.d/ignored.txt").write_text("/ignored\n")
    (root / "etc/other/extra.conf").write_text("/extra\n")
    assert ldcache.read_conf(Root(str(root))) == [
        "/usr/local/lib", "/a", "/b", "/opt/x", "/opt/y", "/opt/z", "/extra", "/libc5"]


def test_conf_includes_resolve_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "srv/conf.d").mkdir(parents=True)
    (root / "srv/conf.d/x.conf").write_text("/inside\n")
    # An absolute symlink: must resolve to ROOT/srv/conf.d, not the host's /srv.
    os.symlink("/srv/conf.d", str(root / "etc/ld.so.conf.d"))
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    assert ldcache.read_conf(Root(str(root))) == ["/inside"]


def test_include_loop_terminates(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.conf").write_text("/x\ninclude /etc/ld.so.conf\n")
    assert ldcache.read_conf(Root(str(tmp_path))) == ["/x"]


def test_missing_cache_is_none(tmp_path):
    assert ldcache.read_cache(Root(str(tmp_path))) is None


# --- hand-made caches --------------------------------------------------------

def test_hand_made_new_cache_both_byte_orders():
    entries = [("libq.so.1", "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v2/libq.so.1", 0x303,
                (1 << 62) | 0),
               ("libq.so.1", "/usr/lib/x86_64-linux-gnu/libq.so.1", 0x303, 0),
               ("libq.so.1", "/usr/lib/i386-linux-gnu/libq.so.1", 0x3, 0)]
    for endian in "<>":
        cache = ldcache.parse_cache(new_cache(entries, endian, hwcaps=["x86-64-v2"]))
        assert [(e.name, e.path, e.flags, e.hwcaps_subdir) for e in cache.entries] == \
            [(n, p, f, "x86-64-v2" if h else None) for n, p, f, h in entries]
        assert cache.lookup("libq.so.1", (0x303,)) == "/usr/lib/x86_64-linux-gnu/libq.so.1"
        assert cache.lookup("libq.so.1", (1, 3)) == "/usr/lib/i386-linux-gnu/libq.so.1"
        assert cache.lookup("libnone.so", (0x303,)) is None


def test_old_format_hand_made():
    strings = b"liba.so.1\0/lib/liba.so.1\0"
    data = b"ld.so-1.7.0\0" + struct.pack("<I", 1) + struct.pack("<iII", 0x303, 0, 10) + strings
    cache = ldcache.parse_cache(data)
    assert cache.format == "old"
    assert [(e.name, e.path) for e in cache.entries] == [("liba.so.1", "/lib/liba.so.1")]


@pytest.mark.parametrize("data, message", [
    (b"", "unknown magic"),
    (b"glibc-ld.so.cache1.1", "truncated new-format header"),
    (b"ld.so-1.7.0\0", "truncated old-format header"),
    (b"ld.so-1.7.0\0" + struct.pack("<I", 1000), "entry count 1000 exceeds"),
    (b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI12x", 10 ** 6, 0, 2, 0), "entry count"),
    (b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI12x", 1, 0, 2, 0)
     + struct.pack("<iIIIQ", 0x303, 9999, 9999, 0, 0), "offset 9999 lies past the end"),
    (b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI12x", 1, 3, 2, 0)
     + struct.pack("<iIIIQ", 0x303, 72, 72, 0, 0) + b"abc", "not NUL-terminated"),
])
def test_malformed_caches(data, message):
    with pytest.raises(ldcache.CacheError, match=message):
        ldcache.parse_cache(data)


def test_fuzzed_caches_raise_only_cache_error():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, HealthCheck, strategies as st
    base = new_cache([("liba.so.1", "/lib/liba.so.1", 0x303, 0),
                      ("libb.so.1", "/lib/glibc-hwcaps/x86-64-v3/libb.so.1", 0x303, 1 << 62)],
                     hwcaps=["x86-64-v3"])

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, (1 << 32) - 1))
    def check(seed):
        rnd = random.Random(seed)
        for _ in range(20):     # 20 mutants per example: 6,000 caches
            data = bytearray(base)
            for _ in range(rnd.randrange(1, 5)):
                pos = rnd.randrange(len(data))
                chunk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 5)))
                data[pos:pos + len(chunk)] = chunk
            del data[rnd.randrange(len(data) + 1):]
            try:
                ldcache.parse_cache(bytes(data))
            except ldcache.CacheError:
                pass

    assert hypothesis
    check()


def test_accepted_flags_per_architecture():
    def info(machine, bits=64, e_flags=0):
        return ElfInfo(elf_class=bits, little_endian=True, machine=machine, osabi=0, type=3,
                       e_flags=e_flags)
    assert ldcache.accepted_flags(info(62)) == (0x303,)
    assert ldcache.accepted_flags(info(62, 32)) == (0x803,)
    assert ldcache.accepted_flags(info(183)) == (0xA03,)
    assert set(ldcache.accepted_flags(info(3, 32))) == {1, 3}
    assert ldcache.accepted_flags(info(40, 32, 0x400))[0] == 0x903
    assert ldcache.accepted_flags(info(40, 32, 0))[0] == 0xB03
    assert ldcache.accepted_flags(info(243, 64, 0x4)) == (0x1003,)
    assert ldcache.accepted_flags(info(9999)) is None


# --- a stale cache: what ldconfig would add -------------------------------------

@pytest.fixture
def stale_image(tmp_path):
    """Debian's ld.so.conf layout, usrmerged, with libraries ldconfig has not seen:

    /usr/local/lib/libnew.so.1.2 (soname libnew.so.1) and its link libnew.so.1,
    /usr/local/lib/libnosoname.so (no DT_SONAME: ldconfig keys it by file name),
    /usr/local/lib/notalib.so (not lib*: ldconfig ignores it),
    /usr/lib/x86_64-linux-gnu/libsys.so.1 and libsys.so, libc.so (a linker script).
    """
    require(shutil.which("gcc") is not None, "needs gcc")
    root = tmp_path / "root"
    lib = root / "usr/lib/x86_64-linux-gnu"
    _lib(str(lib / "libsys.so.1"), "libsys.so.1")
    os.symlink("libsys.so.1", str(lib / "libsys.so"))
    (lib / "libc.so").write_text("GROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n")
    os.symlink("usr/lib", str(root / "lib"))
    local = root / "usr/local/lib"
    _lib(str(local / "libnew.so.1.2"), "libnew.so.1")
    os.symlink("libnew.so.1.2", str(local / "libnew.so.1"))
    _lib(str(local / "libnosoname.so"), "")
    _lib(str(local / "notalib.so"), "notalib.so")
    (local / "python3.13").mkdir()
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d/libc.conf").write_text("/usr/local/lib\n")
    (root / "etc/ld.so.conf.d/x86_64-linux-gnu.conf").write_text(
        "/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n")
    return root


def test_uncached_libraries_of_a_stale_cache(stale_image):
    # The cache spells the directory as ldconfig does on Debian (/lib/...).
    (stale_image / "etc/ld.so.cache").write_bytes(
        new_cache([("libsys.so.1", "/lib/x86_64-linux-gnu/libsys.so.1", 0x303, 0)]))
    root = Root(str(stale_image))
    assert ldcache.uncached_libraries(root, ldcache.read_cache(root)) == [
        "/usr/local/lib/libnew.so.1", "/usr/local/lib/libnosoname.so"]
    # named by the soname, not by the first file that has it (the dev link libsys.so)
    assert ldcache.uncached_libraries(root, None)[-1] == "/usr/lib/x86_64-linux-gnu/libsys.so.1"
    # a soname cached in another directory only is missing in this one
    (stale_image / "etc/ld.so.cache").write_bytes(new_cache([
        ("libsys.so.1", "/lib/x86_64-linux-gnu/libsys.so.1", 0x303, 0),
        ("libnew.so.1", "/opt/elsewhere/libnew.so.1", 0x303, 0),
        ("libnosoname.so", "/usr/local/lib/libnosoname.so", 0x303, 0)]))
    assert ldcache.uncached_libraries(root, ldcache.read_cache(root)) == ["/usr/local/lib/libnew.so.1"]


def test_uncached_libraries_are_what_ldconfig_adds(stale_image):
    """Without a cache every library is missing; the (directory, soname) pairs are
    exactly the entries `ldconfig -r` then writes, and then none is missing."""
    require(os.path.exists(LDCONFIG), "needs ldconfig")
    require(os.geteuid() == 0, "ldconfig -r needs root")
    root = Root(str(stale_image))
    missing = ldcache.uncached_libraries(root, None)
    subprocess.run([LDCONFIG, "-r", str(stale_image)], capture_output=True, check=True)
    _count, entries = ldconfig_p(str(stale_image / "etc/ld.so.cache"))

    def realdir(path):
        return root.realpath(os.path.dirname(path))
    def soname(path):
        return read_elf(root.host(root.realpath(path))).soname or os.path.basename(path)
    ours = {(realdir(p), soname(p)) for p in missing}
    # ldconfig also caches a dev link to a soname link under the link's name
    # (libsys.so): no DT_NEEDED names those, so they are left out here.
    theirs = {(realdir(p), name) for name, _f, _h, p in entries if name == soname(p)}
    assert ours == theirs
    assert len(ours) == 3          # libnew.so.1, libnosoname.so, libsys.so.1
    assert ldcache.uncached_libraries(root, ldcache.read_cache(root)) == []
