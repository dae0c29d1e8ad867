"""pyimgtools.loader on hand-made image roots (no compiler, no host files).

The image roots are tests/harness/loaderimage.py's: ELF files from the gABI
builder of tests/harness/elfbuild.py, the ld.so.cache from the dl-cache.h
builder of tests/harness/ldcachebuild.py; each expected resolution is worked
out by hand from glibc's rules (elf/dl-load.c, ld.so(8)). The rules are also
checked against the real loader in test_loader_rules.py (needs gcc).
"""

import os

import pytest

from pyimgtools.elf import ElfError
from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.elfbuild import build_elf
from tests.harness.loaderimage import LDSO, X86, Image


@pytest.fixture
def img(tmp_path):
    return Image(tmp_path / "root")


def resolved(tree):
    return {(os.path.basename(d.needer), d.name): (d.path, d.via) for d in tree.dependencies}


def test_basic_tree_inside_the_root(img):
    exe = img.exe("/usr/bin/prog")
    tree = img.tree(exe)
    assert resolved(tree) == {
        ("prog", LDSO): (LDSO, "interp"),
        ("prog", "libc.so.6"): (X86 + "/libc.so.6", "cache"),
        ("libc.so.6", "ld-linux-x86-64.so.2"): (LDSO, "loaded"),   # ld.so's soname
    }
    assert list(tree.objects) == [exe, LDSO, X86 + "/libc.so.6"]
    assert tree.missing == [] and tree.warnings == []


def test_absolute_symlinks_stay_inside_the_root(img, tmp_path):
    # /usr/local/lib/libz.so.1 -> /opt/z/libz.so.1 must mean ROOT/opt/z, not the host's /opt/z.
    img.put("/opt/z/libz.so.1", soname="libz.so.1")
    img.link("/usr/local/lib/libz.so.1", "/opt/z/libz.so.1")
    exe = img.exe("/usr/local/bin/prog", needed=["libz.so.1"], runpath="/usr/local/lib")
    tree = img.tree(exe)
    assert resolved(tree)[("prog", "libz.so.1")] == ("/usr/local/lib/libz.so.1", "runpath")
    assert tree.objects["/usr/local/lib/libz.so.1"].soname == "libz.so.1"


def test_missing_library_is_reported(img):
    exe = img.exe("/usr/bin/prog", needed=["libnope.so.1"])
    tree = img.tree(exe)
    assert [(d.needer, d.name, d.path) for d in tree.missing] == [(exe, "libnope.so.1", None)]


def test_default_dirs_when_not_in_cache(img):
    img.put("/usr/lib/libold.so.1", soname="libold.so.1")       # /usr/lib: last built-in dir
    exe = img.exe("/usr/bin/prog", needed=["libold.so.1"])
    assert resolved(img.tree(exe))[("prog", "libold.so.1")] == ("/lib/libold.so.1", "default")


def test_usr_local_lib_without_ldconfig_is_missing(img):
    # make install into /usr/local/lib without ldconfig: not in the cache, not a built-in dir.
    img.put("/usr/local/lib/libpython3.99.so.1.0", soname="libpython3.99.so.1.0")
    exe = img.exe("/usr/local/bin/python3.99", needed=["libpython3.99.so.1.0"])
    assert img.tree(exe).missing[0].name == "libpython3.99.so.1.0"
    img.write_cache(extra=[("libpython3.99.so.1.0", "/usr/local/lib/libpython3.99.so.1.0", 0x303, 0)])
    assert resolved(img.tree(exe))[("python3.99", "libpython3.99.so.1.0")] == \
        ("/usr/local/lib/libpython3.99.so.1.0", "cache")


def test_cache_entry_with_wrong_flags_ignored(img):
    img.put("/usr/lib/i386-linux-gnu/libx.so.1", soname="libx.so.1", bits=32, machine=3)
    img.put("/usr/lib/x86_64-linux-gnu/libx.so.1", soname="libx.so.1")
    img.write_cache(extra=[("libx.so.1", "/lib/i386-linux-gnu/libx.so.1", 0x3, 0),
                           ("libx.so.1", X86 + "/libx.so.1", 0x303, 0)])
    exe = img.exe("/usr/bin/prog", needed=["libx.so.1"])
    assert resolved(img.tree(exe))[("prog", "libx.so.1")] == (X86 + "/libx.so.1", "cache")


def test_unloadable_cache_entry_falls_through_to_default_dirs(img):
    # The cache's entry is the wrong machine on disk: glibc skips it and
    # goes on with the built-in directories, not with further cache entries.
    img.put("/usr/lib/x86_64-linux-gnu/liby.so.1", soname="liby.so.1", machine=183)
    img.put("/usr/lib/liby.so.1", soname="liby.so.1")
    img.write_cache(extra=[("liby.so.1", X86 + "/liby.so.1", 0x303, 0)])
    exe = img.exe("/usr/bin/prog", needed=["liby.so.1"])
    assert resolved(img.tree(exe))[("prog", "liby.so.1")] == ("/lib/liby.so.1", "default")


def test_nodefaultlib_cache_entries_outside_default_dirs_still_count(img):
    img.put("/opt/lib/libo.so.1", soname="libo.so.1")
    img.write_cache(extra=[("libo.so.1", "/opt/lib/libo.so.1", 0x303, 0)])
    exe = img.exe("/usr/bin/prog", needed=["libo.so.1"], flags_1=0x800)
    r = resolved(img.tree(exe))
    assert r[("prog", "libo.so.1")] == ("/opt/lib/libo.so.1", "cache")
    assert r[("prog", "libc.so.6")] == (None, "default")        # its cache entry is under /lib/


def test_no_cache_falls_back_to_ld_so_conf(tmp_path):
    img = Image(tmp_path / "root", cache=False)
    img.put("/opt/app/lib/libapp.so.1", soname="libapp.so.1")
    with open(img.host("/etc/ld.so.conf"), "w") as f:
        f.write("include /etc/ld.so.conf.d/*.conf\n")
    os.makedirs(img.host("/etc/ld.so.conf.d"))
    with open(img.host("/etc/ld.so.conf.d/app.conf"), "w") as f:
        f.write("/opt/app/lib\n")
    exe = img.exe("/usr/bin/prog", needed=["libapp.so.1"])
    r = resolved(img.tree(exe))
    assert r[("prog", "libapp.so.1")] == ("/opt/app/lib/libapp.so.1", "cache")
    assert r[("prog", "libc.so.6")] == (X86 + "/libc.so.6", "default")


def test_malformed_cache_warns_and_searches_without_it(img):
    with open(img.host("/etc/ld.so.cache"), "wb") as f:
        f.write(b"glibc-ld.so.cache1.1 truncated")
    loader = Loader(Root(img.base))
    tree = loader.load_tree(img.exe("/usr/bin/prog"))
    assert resolved(tree)[("prog", "libc.so.6")] == (X86 + "/libc.so.6", "default")
    assert any("ld.so.cache" in w for w in loader.warnings)


def test_cache_hwcaps_entries_give_alternatives(img):
    v3 = X86 + "/glibc-hwcaps/x86-64-v3/libh.so.1"
    img.put(v3, soname="libh.so.1", needed=["libv3only.so.1"])
    img.put(X86 + "/libh.so.1", soname="libh.so.1")
    img.put(X86 + "/libv3only.so.1", soname="libv3only.so.1")
    img.write_cache(extra=[("libh.so.1", v3, 0x303, (1 << 62) | 0),
                           ("libh.so.1", X86 + "/libh.so.1", 0x303, 0),
                           ("libv3only.so.1", X86 + "/libv3only.so.1", 0x303, 0)],
                    hwcaps=["x86-64-v3"])
    exe = img.exe("/usr/bin/prog", needed=["libh.so.1"])
    tree = img.tree(exe)
    dep = [d for d in tree.dependencies if d.name == "libh.so.1"][0]
    assert (dep.path, dep.via, dep.alternatives) == (v3, "cache", [X86 + "/libh.so.1"])
    # Both variants and the v3 variant's own needs are in the closure.
    assert {v3, X86 + "/libh.so.1", X86 + "/libv3only.so.1"} <= set(tree.objects)


def test_hwcaps_variant_in_a_later_directory_is_irrelevant(img):
    # RUNPATH dir has the baseline; a later (built-in) dir has a v4 variant:
    # every CPU stops at the RUNPATH copy.
    img.put("/opt/r/libk.so.1", soname="libk.so.1")
    img.put("/usr/lib/glibc-hwcaps/x86-64-v4/libk.so.1", soname="libk.so.1")
    exe = img.exe("/usr/bin/prog", needed=["libk.so.1"], runpath="/opt/r")
    dep = [d for d in img.tree(exe).dependencies if d.name == "libk.so.1"][0]
    assert (dep.path, dep.alternatives) == ("/opt/r/libk.so.1", [])


def test_hwcaps_levels_within_and_across_directories(img):
    # v2 variant in the RUNPATH dir, baseline only in a built-in dir: a v2+
    # CPU loads the variant, an older one the baseline further down the path.
    img.put("/opt/r/glibc-hwcaps/x86-64-v2/libk.so.1", soname="libk.so.1")
    img.put("/usr/lib/libk.so.1", soname="libk.so.1")
    exe = img.exe("/usr/bin/prog", needed=["libk.so.1"], runpath="/opt/r")
    dep = [d for d in img.tree(exe).dependencies if d.name == "libk.so.1"][0]
    assert (dep.path, dep.via) == ("/opt/r/glibc-hwcaps/x86-64-v2/libk.so.1", "runpath")
    assert dep.alternatives == ["/lib/libk.so.1"]


def test_dst_expansion(img):
    img.put("/opt/app/lib/x86_64-linux-gnu/liblib.so", soname="liblib.so")
    img.put("/opt/app/x86_64/libplat.so", soname="libplat.so")
    img.put("/opt/app/bin/../share/libbrace.so", soname="libbrace.so")
    exe = img.exe("/opt/app/bin/prog", needed=["liblib.so", "libplat.so", "libbrace.so"],
                  runpath="$ORIGIN/../$LIB:/opt/app/$PLATFORM:${ORIGIN}/../share")
    r = resolved(img.tree(exe))
    assert r[("prog", "liblib.so")] == ("/opt/app/bin/../lib/x86_64-linux-gnu/liblib.so", "runpath")
    assert r[("prog", "libplat.so")] == ("/opt/app/x86_64/libplat.so", "runpath")
    assert r[("prog", "libbrace.so")] == ("/opt/app/bin/../share/libbrace.so", "runpath")


def test_needed_with_origin_is_a_path(img):
    img.put("/opt/app/plugins/libplug.so", soname="libplug.so")
    exe = img.exe("/opt/app/bin/prog", needed=["$ORIGIN/../plugins/libplug.so"])
    r = resolved(img.tree(exe))
    assert r[("prog", "$ORIGIN/../plugins/libplug.so")] == \
        ("/opt/app/bin/../plugins/libplug.so", "path")


def test_relative_paths_warn(img):
    exe = img.exe("/usr/bin/prog", needed=["./libcwd.so"], runpath="relative/dir")
    tree = img.tree(exe)
    assert tree.missing[0].name == "./libcwd.so"
    assert any("working directory" in w and "relative/dir" in w for w in tree.warnings)
    assert any("working directory" in w and "./libcwd.so" in w for w in tree.warnings)


def test_malformed_candidate_stops_the_search(img):
    # ld.so: "error while loading shared libraries: /opt/a/libm1.so.1: file too
    # short"; it does not go on to /opt/b (tests/system/test_loader_malformed.py).
    os.makedirs(img.host("/opt/a"))
    with open(img.host("/opt/a/libm1.so.1"), "wb") as f:
        f.write(b"\x7fELF\x02\x01\x01\x00garbage")
    img.put("/opt/b/libm1.so.1", soname="libm1.so.1")
    exe = img.exe("/usr/bin/prog", needed=["libm1.so.1"], runpath="/opt/a:/opt/b")
    tree = img.tree(exe)
    assert resolved(tree)[("prog", "libm1.so.1")] == (None, "runpath")
    dep = [d for d in tree.dependencies if d.name == "libm1.so.1"][0]
    assert dep.error == "/opt/a/libm1.so.1: file too short"
    assert any("/opt/a/libm1.so.1: file too short" in w for w in tree.warnings)


def test_a_directory_stops_the_search_a_dangling_link_does_not(img):
    # ld.so opens the directory and fails to read it: "cannot read file data".
    os.makedirs(img.host("/opt/a/libd.so.1"))
    img.link("/opt/a/libd2.so.1", "/nowhere")
    img.put("/opt/b/libd.so.1", soname="libd.so.1")
    img.put("/opt/b/libd2.so.1", soname="libd2.so.1")
    exe = img.exe("/usr/bin/prog", needed=["libd.so.1", "libd2.so.1"], runpath="/opt/a:/opt/b")
    r = resolved(img.tree(exe))
    assert r[("prog", "libd.so.1")][0] is None
    assert r[("prog", "libd2.so.1")][0] == "/opt/b/libd2.so.1"


def test_same_file_under_two_names_is_one_object(img):
    # usrmerge: /lib/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu are the same directory.
    img.put(X86 + "/libq.so.1", soname="libq.so.1")
    exe = img.exe("/usr/bin/prog", needed=["libq.so.1"], runpath="/usr/lib/x86_64-linux-gnu")
    lib = img.put("/opt/l/liba.so", soname="liba.so", needed=["libq-other.so"],
                  runpath="/lib/x86_64-linux-gnu")
    img.link(X86 + "/libq-other.so", "libq.so.1")
    exe2 = img.exe("/usr/bin/prog2", needed=["libq.so.1", "liba.so"],
                   runpath="/usr/lib/x86_64-linux-gnu:/opt/l")
    assert resolved(img.tree(exe))[("prog", "libq.so.1")][0] == "/usr/lib/x86_64-linux-gnu/libq.so.1"
    tree = img.tree(exe2)
    r = resolved(tree)
    # liba's libq-other.so is the already loaded libq.so.1 (same inode): one object.
    assert r[("liba.so", "libq-other.so")] == ("/usr/lib/x86_64-linux-gnu/libq.so.1", "runpath")
    assert "/lib/x86_64-linux-gnu/libq-other.so" not in tree.objects
    assert lib in tree.objects


def test_shared_library_root_gets_the_standard_interpreter(img):
    lib = img.put("/usr/local/lib/python3.99/ext.so", needed=["libc.so.6"])
    tree = img.tree(lib)
    assert resolved(tree)[("ext.so", LDSO)] == (LDSO, "interp")


def test_static_root_has_no_dependencies(img):
    exe = img.put("/usr/bin/static", etype=2, dynamic=False)
    tree = img.tree(exe)
    assert tree.dependencies == [] and list(tree.objects) == [exe]


def test_missing_interpreter(img):
    exe = img.put("/usr/bin/prog", interp="/lib/ld-musl-x86_64.so.1", needed=["libc.musl.so"])
    tree = img.tree(exe)
    assert [(d.name, d.via) for d in tree.missing] == [("/lib/ld-musl-x86_64.so.1", "interp"),
                                                      ("libc.musl.so", "default")]


def test_root_file_errors_raise(img):
    with pytest.raises(FileNotFoundError):
        img.tree("/usr/bin/absent")
    with open(img.host("/usr/bin/script"), "w") as f:
        f.write("#!/bin/sh\n")
    with pytest.raises(ElfError):
        img.tree("/usr/bin/script")


def test_ld_library_path_with_origin_of_the_root(img):
    img.put("/opt/app/libs/libe.so.1", soname="libe.so.1")
    exe = img.exe("/opt/app/bin/prog", needed=["libe.so.1"])
    r = resolved(img.tree(exe, ld_library_path=["$ORIGIN/../libs"]))
    assert r[("prog", "libe.so.1")] == ("/opt/app/bin/../libs/libe.so.1", "ld_library_path")


def test_cycles_terminate(img):
    img.put("/opt/c/liba.so", soname="liba.so", needed=["libb.so"], runpath="$ORIGIN")
    img.put("/opt/c/libb.so", soname="libb.so", needed=["liba.so"], runpath="$ORIGIN")
    exe = img.exe("/usr/bin/prog", needed=["liba.so"], runpath="/opt/c")
    r = resolved(img.tree(exe))
    assert r[("libb.so", "liba.so")] == ("/opt/c/liba.so", "loaded")


def test_lib64_layout_without_multiarch(tmp_path):
    # A Fedora-like root: built-in dirs are /lib64 and /usr/lib64.
    base = tmp_path / "root"
    os.makedirs(str(base / "usr/lib64"))
    os.makedirs(str(base / "usr/bin"))
    os.symlink("usr/lib64", str(base / "lib64"))
    with open(str(base / "usr/lib64/ld-linux-x86-64.so.2"), "wb") as f:
        f.write(build_elf(soname="ld-linux-x86-64.so.2"))
    with open(str(base / "usr/lib64/libc.so.6"), "wb") as f:
        f.write(build_elf(soname="libc.so.6"))
    with open(str(base / "usr/bin/prog"), "wb") as f:
        f.write(build_elf(etype=3, interp=LDSO, needed=["libc.so.6"], runpath="/opt/$LIB"))
    tree = Loader(Root(str(base))).load_tree("/usr/bin/prog")
    r = resolved(tree)
    assert r[("prog", "libc.so.6")] == ("/lib64/libc.so.6", "default")
    assert r[("prog", LDSO)] == (LDSO, "interp")


def test_loader_caches_are_shared_across_trees(img):
    exe1 = img.exe("/usr/bin/a")
    exe2 = img.exe("/usr/bin/b")
    loader = Loader(Root(img.base))
    t1 = loader.load_tree(exe1)
    t2 = loader.load_tree(exe2)
    assert t1.objects[X86 + "/libc.so.6"] is t2.objects[X86 + "/libc.so.6"]


def test_ld_library_path_as_a_string(img):
    img.put("/opt/e1/libe.so.1", soname="libe.so.1")
    exe = img.exe("/usr/bin/prog", needed=["libe.so.1"])
    r = resolved(img.tree(exe, ld_library_path="/nonexistent;/opt/e1:"))
    assert r[("prog", "libe.so.1")] == ("/opt/e1/libe.so.1", "ld_library_path")


def test_no_cache_is_a_loader_warning(tmp_path):
    img = Image(tmp_path / "root", cache=False)
    loader = Loader(Root(img.base))
    loader.load_tree(img.exe("/usr/bin/prog"))
    assert any("no /etc/ld.so.cache" in w for w in loader.warnings)


def test_symlink_loop_in_the_root_is_not_followed_on_the_host(img):
    img.link("/opt/loop/a", "/opt/loop/b")
    img.link("/opt/loop/b", "/opt/loop/a")
    img.link("/opt/loop/libl.so.1", "/opt/loop/a")
    exe = img.exe("/usr/bin/prog", needed=["libl.so.1"], runpath="/opt/loop:/opt/loop/a")
    tree = img.tree(exe)
    assert [d.name for d in tree.missing] == ["libl.so.1"]


def test_root_reached_through_a_symlink_takes_origin_from_its_target(img):
    img.put("/opt/app/lib/libapp.so.1", soname="libapp.so.1")
    img.exe("/opt/app/bin/app", needed=["libapp.so.1"], runpath="$ORIGIN/../lib")
    img.link("/usr/bin/app", "/opt/app/bin/app")
    r = resolved(img.tree("/usr/bin/app"))
    assert r[("app", "libapp.so.1")] == ("/opt/app/bin/../lib/libapp.so.1", "runpath")


def test_directory_symlink_loop_with_absolute_links(img):
    # ROOT/opt/da -> /opt/db -> /opt/da: unresolvable inside the root; the
    # host's /opt/db must never be consulted.
    img.link("/opt/da", "/opt/db")
    img.link("/opt/db", "/opt/da")
    exe = img.exe("/usr/bin/prog", needed=["libz.so.1"], runpath="/opt/da/lib:/opt/db")
    tree = img.tree(exe)
    assert [d.name for d in tree.missing] == ["libz.so.1"]


def test_relative_interpreter_is_not_read_from_the_working_directory(img, tmp_path, monkeypatch):
    monkeypatch.chdir(img.base)           # a file of that name exists relative to the cwd
    img.put("/ld-rel.so", soname="ld-rel.so")
    exe = img.put("/usr/bin/prog", interp="ld-rel.so", needed=["libc.so.6"])
    tree = img.tree(exe)
    assert tree.missing[0].name == "ld-rel.so"
    assert any("working directory" in w for w in tree.warnings)


def test_ld_so_preload(img):
    img.put("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", soname="libjemalloc.so.2",
            needed=["libstdc++.so.6"])
    img.put("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", soname="libstdc++.so.6")
    with open(img.host("/etc/ld.so.preload"), "w") as f:
        f.write("libjemalloc.so.2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2:libgone.so\n")
    exe = img.exe("/usr/bin/prog")
    tree = img.tree(exe)
    r = resolved(tree)
    assert r[("prog", "libjemalloc.so.2")] == ("/lib/x86_64-linux-gnu/libjemalloc.so.2", "preload")
    # The absolute spelling is the same file: one object.
    assert r[("prog", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")][0] == \
        "/lib/x86_64-linux-gnu/libjemalloc.so.2"
    assert r[("libjemalloc.so.2", "libstdc++.so.6")] == ("/lib/x86_64-linux-gnu/libstdc++.so.6",
                                                         "default")
    assert tree.missing == []
    assert any("libgone.so" in w and "ld.so.preload" in w for w in tree.warnings)
