"""pyimgtools.loader against the real glibc loader, one rule at a time.

Each test compiles a few tiny libraries and an executable with gcc, then
compares `Loader.load_tree` with what glibc's ld.so does on those trusted test
binaries: the binary is run with LD_TRACE_LOADED_OBJECTS=1 (the kernel starts
the interpreter on the real executable, exactly as at run time; ld.so prints
each object it maps and exits before running any code of the program).
Skipped without gcc or on a machine that is not x86-64 glibc.
"""

import os
import re
import shutil
import subprocess

import pytest

from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.elfbuild import build_elf
from tests.harness.ldd import LEVELS, RTLD, cpu_hwcaps, ldd, real_loader
from tests.harness.loadview import ldd_view
from tests.harness.prereq import require


@pytest.fixture(scope="module", autouse=True)
def _toolchain():
    require(shutil.which("gcc") is not None, "needs gcc (compiles the test binaries)")
    require(os.path.exists(RTLD) and os.uname().machine == "x86_64", "needs x86-64 glibc")


class Build:
    """Compiles test objects under one directory."""

    def __init__(self, base):
        self.base = str(base)
        self.n = 0

    def path(self, rel):
        p = os.path.join(self.base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def _src(self, text):
        self.n += 1
        src = os.path.join(self.base, "src%d.c" % self.n)
        with open(src, "w") as f:
            f.write(text)
        return src

    def lib(self, rel, soname=None, needs=(), rpath=None, runpath=None, flags=()):
        """A shared library at REL (relative to base) with DT_NEEDED on the library files `needs`."""
        out = self.path(rel)
        soname = soname or os.path.basename(rel)
        src = self._src("int f%d(void) { return %d; }\n" % (self.n + 1, self.n + 1))
        args = ["gcc", "-shared", "-fPIC", "-o", out, src, "-Wl,-soname," + soname]
        args += self._link_args(needs, rpath, runpath, flags)
        subprocess.run(args, check=True, capture_output=True)
        return out

    def exe(self, rel, needs=(), rpath=None, runpath=None, flags=()):
        out = self.path(rel)
        src = self._src("int main(void) { return 0; }\n")
        args = ["gcc", "-o", out, src] + self._link_args(needs, rpath, runpath, flags)
        subprocess.run(args, check=True, capture_output=True)
        return out

    @staticmethod
    def _link_args(needs, rpath, runpath, flags):
        args = ["-Wl,--no-as-needed"] + [os.path.abspath(n) for n in needs]
        args += ["-Wl,--allow-shlib-undefined"]
        dirs = sorted({os.path.dirname(os.path.abspath(n)) for n in needs})
        args += ["-Wl,-rpath-link," + d for d in dirs]
        if rpath is not None:
            args += ["-Wl,--disable-new-dtags", "-Wl,-rpath," + rpath]
        if runpath is not None:
            args += ["-Wl,--enable-new-dtags", "-Wl,-rpath," + runpath]
        if rpath is None and runpath is None:
            args += ["-Wl,--disable-new-dtags"]
        return args + list(flags)


@pytest.fixture
def build(tmp_path):
    return Build(tmp_path)


def deps_by_name(tree):
    return {(os.path.basename(d.needer), d.name): d for d in tree.dependencies}


def load(path, ld_library_path=None):
    return Loader(Root("/"), ld_library_path=ld_library_path).load_tree(path)


# --- the rules --------------------------------------------------------------

def test_rpath_of_parents_parent(build):
    libc_ = build.lib("c/libC.so")
    libb = build.lib("b/libB.so", needs=[libc_])                # no RPATH of its own
    liba = build.lib("a/libA.so", needs=[libb], rpath=build.path("b"))
    exe = build.exe("bin/prog", needs=[liba], rpath=build.path("a") + ":" + build.path("c"))
    tree = load(exe)
    expected = real_loader(exe)
    assert expected["libC.so"] == libc_                          # the real loader finds it ...
    assert ldd_view(tree) == expected                                # ... and so do we
    dep = deps_by_name(tree)[("libB.so", "libC.so")]
    assert (dep.path, dep.via) == (libc_, "rpath")


def _three_dirs(build):
    for d in ("r", "l", "u"):
        build.lib(d + "/libX.so")
    return build.path("r"), build.path("l"), build.path("u")


def test_rpath_before_ld_library_path(build):
    r, l, _u = _three_dirs(build)
    exe = build.exe("bin/prog", needs=[os.path.join(r, "libX.so")], rpath=r)
    expected = real_loader(exe, {"LD_LIBRARY_PATH": l})
    assert expected["libX.so"] == os.path.join(r, "libX.so")
    tree = load(exe, ld_library_path=[l])
    assert ldd_view(tree) == expected
    assert deps_by_name(tree)[("prog", "libX.so")].via == "rpath"


def test_ld_library_path_before_runpath(build):
    _r, l, u = _three_dirs(build)
    exe = build.exe("bin/prog", needs=[os.path.join(u, "libX.so")], runpath=u)
    expected = real_loader(exe, {"LD_LIBRARY_PATH": l})
    assert expected["libX.so"] == os.path.join(l, "libX.so")
    tree = load(exe, ld_library_path=[l])
    assert ldd_view(tree) == expected
    assert deps_by_name(tree)[("prog", "libX.so")].via == "ld_library_path"
    # Without LD_LIBRARY_PATH the RUNPATH is used.
    expected = real_loader(exe)
    assert expected["libX.so"] == os.path.join(u, "libX.so")
    tree = load(exe)
    assert ldd_view(tree) == expected
    assert deps_by_name(tree)[("prog", "libX.so")].via == "runpath"


def test_object_with_runpath_ignores_rpath_chain(build):
    # exe (RPATH r) -> libA (RUNPATH u) -> libX: the chain's RPATH is not used.
    r, l, u = _three_dirs(build)
    liba = build.lib("a/libA.so", needs=[os.path.join(u, "libX.so")], runpath=u)
    exe = build.exe("bin/prog", needs=[liba], rpath=r + ":" + build.path("a"))
    expected = real_loader(exe, {"LD_LIBRARY_PATH": l})
    tree = load(exe, ld_library_path=[l])
    assert ldd_view(tree) == expected
    # libX: via LD_LIBRARY_PATH (l), not the executable's RPATH (r) nor libA's RUNPATH (u).
    assert expected["libX.so"] == os.path.join(l, "libX.so")
    assert deps_by_name(tree)[("libA.so", "libX.so")].via == "ld_library_path"


def test_runpath_not_inherited(build):
    libb = build.lib("a/libB.so")
    liba = build.lib("a/libA.so", needs=[libb])                  # no RUNPATH/RPATH
    exe = build.exe("bin/prog", needs=[liba], runpath=build.path("a"))
    expected = real_loader(exe)
    assert expected["libA.so"] == liba
    assert expected["libB.so"] is None                           # not inherited
    tree = load(exe)
    assert ldd_view(tree) == expected
    assert [d.name for d in tree.missing] == ["libB.so"]
    # Control: the same as RPATH is inherited.
    exe2 = build.exe("bin/prog2", needs=[liba], rpath=build.path("a"))
    expected = real_loader(exe2)
    assert expected["libB.so"] == libb
    assert ldd_view(load(exe2)) == expected


def test_origin_is_the_symlinks_directory(build):
    # real/libA.so has RUNPATH $ORIGIN and needs libB.so, which exists only
    # next to the symlink link/libA.so -> ../real/libA.so.
    libb = build.lib("link/libB.so")
    liba = build.lib("real/libA.so", needs=[libb], runpath="$ORIGIN")
    os.symlink("../real/libA.so", build.path("link/libA.so"))
    exe = build.exe("bin/prog", needs=[liba], runpath=build.path("link"))
    expected = real_loader(exe)
    assert expected["libA.so"] == build.path("link/libA.so")
    assert expected["libB.so"] == build.path("link/libB.so")
    tree = load(exe)
    assert ldd_view(tree) == expected
    assert build.path("link/libA.so") in tree.objects


def test_origin_of_the_executable_is_its_real_directory(build):
    # The kernel gives ld.so the resolved executable, so $ORIGIN of a program
    # started through a symlink is the target's directory. ldd runs ld.so on
    # the path as given: glibc 2.36 (bookworm) and 2.41 (trixie) then take the
    # link's directory and disagree, a documented difference; 2.43 (sid) agrees
    # with the kernel. 2.42 was not observed.
    lib = build.lib("app/lib/libP.so")
    exe = build.exe("app/bin/prog", needs=[lib], rpath="$ORIGIN/../lib")
    os.makedirs(build.path("usrbin"), exist_ok=True)
    link = build.path("usrbin/prog")
    os.symlink(exe, link)
    expected = real_loader(link)
    assert expected["libP.so"] == build.path("app/bin/../lib/libP.so")
    assert ldd_view(load(link)) == expected
    glibc = tuple(int(n) for n in os.confstr("CS_GNU_LIBC_VERSION").split()[1].split(".")[:2])
    if glibc <= (2, 41):
        assert ldd(link)["libP.so"] is None
    elif glibc >= (2, 43):
        assert ldd(link)["libP.so"] == expected["libP.so"]


def test_nodefaultlib(build):
    # -z nodefaultlib: no built-in directories and no cache entries under
    # them for the flagged object's own needs; libA (not flagged) still uses them.
    liba = build.lib("a/libA.so", needs=[], flags=["-lz"])
    exe = build.exe("bin/prog", needs=[liba], runpath=build.path("a"),
                    flags=["-Wl,-z,nodefaultlib"])
    expected = real_loader(exe)
    assert expected["libc.so.6"] is None
    assert expected["libz.so.1"] is not None
    tree = load(exe)
    assert tree.objects[exe].nodefaultlib
    assert ldd_view(tree) == expected


# A CPU without x86-64-v4, whatever CPU runs the test: glibc's tunable masks
# AVX512F, which every v4 CPU has and v4 requires.
WITHOUT_V4 = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"}


def test_hwcaps_subdirectory(build):
    # A variant in every level: this CPU's ld.so takes its highest one, which
    # the loader told this CPU's levels takes too; told nothing, it takes v4
    # and lists what every less capable CPU loads.
    cpu = cpu_hwcaps()
    base = build.lib("h/libH.so")
    variant = {level: build.lib("h/glibc-hwcaps/%s/libH.so" % level) for level in LEVELS}
    exe = build.exe("bin/prog", needs=[base], runpath=build.path("h"))
    on_this_cpu = [variant[level] for level in cpu] + [base]   # by priority
    expected = real_loader(exe)
    assert expected["libH.so"] == on_this_cpu[0]
    tree = Loader(Root("/"), hwcaps=cpu).load_tree(exe)
    assert ldd_view(tree) == expected
    dep = deps_by_name(tree)[("prog", "libH.so")]
    assert dep.alternatives == on_this_cpu[1:]
    any_cpu = deps_by_name(load(exe))[("prog", "libH.so")]
    assert any_cpu.path == variant["x86-64-v4"]
    assert any_cpu.alternatives == [variant["x86-64-v3"], variant["x86-64-v2"], base]


def test_hwcaps_level_the_cpu_lacks(build):
    # Only a v4 variant, on a CPU without v4: ld.so takes the plain library;
    # so does the loader told that CPU's levels. Told nothing (any CPU), it
    # takes the v4 variant and lists the plain one as the alternative.
    cpu = cpu_hwcaps(WITHOUT_V4)
    assert "x86-64-v4" not in cpu
    base = build.lib("h/libH.so")
    v4 = build.lib("h/glibc-hwcaps/x86-64-v4/libH.so")
    exe = build.exe("bin/prog", needs=[base], runpath=build.path("h"))
    expected = real_loader(exe, env=WITHOUT_V4)
    assert expected["libH.so"] == base
    tree = Loader(Root("/"), hwcaps=cpu).load_tree(exe)
    assert ldd_view(tree) == expected
    assert deps_by_name(tree)[("prog", "libH.so")].alternatives == []
    dep = deps_by_name(load(exe))[("prog", "libH.so")]
    assert dep.path == v4
    assert dep.alternatives == [base]


@pytest.mark.parametrize("bits, machine", [(32, 3), (64, 183)], ids=["elfclass32", "aarch64"])
def test_wrong_class_or_machine_candidate_skipped(build, bits, machine):
    good = build.lib("good/libW.so")
    os.makedirs(build.path("bad"), exist_ok=True)
    with open(build.path("bad/libW.so"), "wb") as f:
        f.write(build_elf(bits=bits, machine=machine, soname="libW.so"))
    exe = build.exe("bin/prog", needs=[good], runpath=build.path("bad") + ":" + build.path("good"))
    expected = real_loader(exe)
    assert expected["libW.so"] == good
    tree = load(exe)
    assert ldd_view(tree) == expected
    assert not tree.warnings


def test_loaded_soname_satisfies_later_need(build):
    # auditwheel's layout: libA has no RUNPATH and needs libQ, which only the
    # executable's RUNPATH finds; the executable loaded libQ first.
    libq = build.lib("a/libQ.so")
    liba = build.lib("a/libA.so", needs=[libq])
    exe = build.exe("bin/prog", needs=[liba, libq], runpath=build.path("a"))
    expected = real_loader(exe)
    assert expected["libQ.so"] == libq
    tree = load(exe)
    assert ldd_view(tree) == expected
    dep = deps_by_name(tree)[("libA.so", "libQ.so")]
    assert (dep.path, dep.via) == (libq, "loaded")
    # Alone, libA cannot find libQ: ldd says so and so do we (context matters).
    assert ldd(liba)["libQ.so"] is None
    assert [d.name for d in load(liba).missing] == ["libQ.so"]


def test_match_by_soname_not_file_name(build):
    # The executable loads a/libQalias.so (DT_NEEDED libQalias.so) whose
    # DT_SONAME is libQ.so.1; libA's DT_NEEDED libQ.so.1 matches that soname,
    # although no file of that name exists anywhere.
    build.lib("stub/libQalias.so")                               # link-time stand-in
    libq = build.lib("stub/libQ.so.1", soname="libQ.so.1")
    liba = build.lib("a/libA.so", needs=[libq])
    exe = build.exe("bin/prog", needs=[build.path("stub/libQalias.so"), liba],
                    runpath=build.path("a"))
    shutil.copy(libq, build.path("a/libQalias.so"))              # real SONAME libQ.so.1
    shutil.rmtree(build.path("stub"))
    expected = real_loader(exe)
    # libc: the cache's spelling (/lib/... on bookworm, /usr/lib/... on sid)
    assert set(expected) == {"libQalias.so", "libA.so", "libc.so.6"}
    assert (expected["libQalias.so"], expected["libA.so"]) == (build.path("a/libQalias.so"), liba)
    tree = load(exe)
    assert ldd_view(tree) == expected
    dep = deps_by_name(tree)[("libA.so", "libQ.so.1")]
    assert (dep.path, dep.via) == (build.path("a/libQalias.so"), "loaded")


def test_name_with_slash_is_a_path(build):
    # A library without DT_SONAME linked by absolute path: DT_NEEDED is the path.
    src = build._src("int p(void) { return 1; }\n")
    libp = build.path("p/libP.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", libp, src], check=True)
    exe = build.exe("bin/prog", needs=[libp])
    tree = load(exe)
    assert tree.objects[exe].needed[0] == libp
    expected = real_loader(exe)
    assert expected[libp] == libp
    assert ldd_view(tree) == expected
    assert deps_by_name(tree)[("prog", libp)].via == "path"


def test_breadth_first_order(build):
    # prog needs [libA, libX]; libA (RUNPATH d1) needs libX too. Breadth
    # first, prog's own libX (RUNPATH d2) is loaded before libA's needs are
    # searched, so libA gets d2's copy; depth first would give d1's.
    build.lib("d1/libX.so")
    x2 = build.lib("d2/libX.so")
    liba = build.lib("a/libA.so", needs=[x2], runpath=build.path("d1"))
    exe = build.exe("bin/prog", needs=[liba, x2], runpath=build.path("a") + ":" + build.path("d2"))
    expected = real_loader(exe)
    assert expected["libX.so"] == x2
    tree = load(exe)
    assert ldd_view(tree) == expected
    assert deps_by_name(tree)[("libA.so", "libX.so")].path == x2
    assert list(tree.objects)[:4] == [exe, RTLD, liba, x2]


def test_interpreter_is_part_of_the_closure(build):
    exe = build.exe("bin/prog")
    tree = load(exe)
    interp = [d for d in tree.dependencies if d.via == "interp"]
    assert [(d.name, d.path) for d in interp] == [(RTLD, RTLD)]
    assert RTLD in tree.objects
    # ld.so's soname satisfies libc's DT_NEEDED, as in the real process.
    libc_dep = deps_by_name(tree)[("libc.so.6", "ld-linux-x86-64.so.2")]
    assert (libc_dep.path, libc_dep.via) == (RTLD, "loaded")
    out = subprocess.run([exe], env={"LD_TRACE_LOADED_OBJECTS": "1"}, capture_output=True,
                         text=True).stdout
    assert re.search(r"^\s*%s \(0x" % re.escape(RTLD), out, re.M)


def test_cache_and_default_dirs_agree_with_ldd(build):
    exe = build.exe("bin/prog", flags=["-lz", "-lm"])
    expected = real_loader(exe)
    tree = load(exe)
    assert ldd_view(tree) == expected
    assert {d.via for d in tree.dependencies if d.name in ("libz.so.1", "libm.so.6")} == {"cache"}
