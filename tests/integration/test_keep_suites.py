"""keep --print equals ldd + dpkg-query inside bookworm, trixie and sid rootfs (issue 12).

For every ELF file under /usr/lib/python3* and /usr/local of each suite's rootfs
(Debian's python3; sid with python3.14 and python3.15 and their testsuites),
the package set `keep --print` computes from outside (--root) equals the one
`ldd` and `dpkg-query --search` give inside the chroot (tests/harness/keepref:
diversions applied as dpkg applies them; trixie diverts the /lib spellings of
libreadline8t64 and libc6's loader to *.usr-is-merged).

/usr/local gets a few real ELF files, linked with gcc against the rootfs's
own libraries: a library in /usr/local/lib and a program that finds it
through ld.so.cache only, as after `make install`. So the cache is stale at
first: keep resolves as if ldconfig had run, its real run runs
`ldconfig -r ROOT`, and the answer is the same before and after. A pristine
rootfs is never reported stale. One chroot per suite for the module.
"""

import json
import os
import subprocess

import pytest

from tests.conftest import run_cli
from tests.harness import keepref
from tests.harness.elfwalk import elf_files
from tests.harness.ldd import resolved_and_missing
from tests.harness.prereq import require_root, require_tools

pytestmark = pytest.mark.main_only

LIBDIR = "/usr/lib/x86_64-linux-gnu"
# Runtime libraries a Python build links; those present in the rootfs are used.
CANDIDATES = ("libz.so.1", "libreadline.so.8", "libexpat.so.1", "libffi.so.8",
              "libsqlite3.so.0", "libbz2.so.1.0", "liblzma.so.5", "libssl.so.3",
              "libcrypto.so.3", "libncursesw.so.6", "libgdbm.so.6", "libuuid.so.1", "libm.so.6")


@pytest.fixture(scope="module", params=["bookworm", "trixie", "sid"])
def chroot(request):
    require_root()
    require_tools("debootstrap", "chroot", "gcc", "ldd")
    from tests.harness import rootfs
    packages = rootfs.SID_PYTHONS if request.param == "sid" else ("python3",)
    with rootfs.Chroot(request.param, packages) as root:
        yield root


def gcc(root, out, *args):
    """Link with the host's gcc against the rootfs's libraries (-nostdlib: no host libc)."""
    libdirs = [root.host(LIBDIR), root.host("/usr/local/lib")]
    argv = ["gcc", "-nostdlib", "-fPIC", "-Wl,--no-as-needed", "-o", root.host(out)] + list(args)
    for d in libdirs:
        argv += ["-L", d, "-Wl,-rpath-link," + d]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def install_elf_files(root, tmp_path):
    present = [n for n in CANDIDATES if os.path.isfile(root.host(LIBDIR + "/" + n))]
    assert "libz.so.1" in present and "libm.so.6" in present, present
    lib_c, exe_c = tmp_path / "lib.c", tmp_path / "exe.c"
    lib_c.write_text("int mine(void) { return 0; }\n")
    exe_c.write_text("void _start(void) { for (;;); }\n")
    os.makedirs(root.host("/usr/local/lib/pymine"), exist_ok=True)
    os.makedirs(root.host("/usr/local/bin"), exist_ok=True)
    half = len(present) // 2
    gcc(root, "/usr/local/lib/libmine.so.1", "-shared", "-Wl,-soname,libmine.so.1", str(lib_c),
        *["-l:" + n for n in present[:half]])
    gcc(root, "/usr/local/lib/pymine/_mine.so", "-shared", str(lib_c),
        *["-l:" + n for n in present[half:]])
    # Finds libmine.so.1 through the cache only (no RUNPATH), as python3 finds libpython.
    gcc(root, "/usr/local/bin/mineprog", "-Wl,--dynamic-linker=/lib64/ld-linux-x86-64.so.2",
        str(exe_c), "-l:libmine.so.1")


def scanned_tops(root):
    tops = sorted("/usr/lib/" + n for n in os.listdir(root.host("/usr/lib"))
                  if n.startswith("python3") and os.path.isdir(root.host("/usr/lib/" + n)))
    assert tops
    return tops + ["/usr/local"]


def within(path, tops):
    return any(path == t or path.startswith(t + "/") for t in tops)


def reference(root, tops):
    """(packages, unowned libraries, missing (file, name)) from ldd and dpkg-query inside."""
    targets = keepref.outside_link_targets(root, tops)
    files = [f for top in tops for f in elf_files(root.host(top), root.path)]
    files += sorted(targets)
    script = 'for f in "$@"; do printf "==%s\\n" "$f"; ldd "$f" 2>&1; done'
    out = root.run(["sh", "-c", script, "ldd-all"] + files, check=False).stdout
    libs, missing = set(targets), set()
    for chunk in out.split("\n=="):
        name, _, text = chunk.lstrip("=").partition("\n")
        resolved, lost = resolved_and_missing(text)
        libs.update(p for p in resolved if not within(p, tops))
        missing.update((name, n) for n in lost)
    owners = keepref.chroot_owners(root, sorted(libs))
    packages = set().union(*owners.values()) if owners else set()
    return packages, sorted(p for p, o in owners.items() if not o), sorted(missing)


def keep(root, *args):
    return run_cli("--root", root.path, "keep", *args)


def test_keep_print_equals_ldd_and_dpkg_query(chroot, tmp_path):
    root = chroot
    tops = scanned_tops(root)
    ldconfig_cmd = "ldconfig -r " + root.path

    # A pristine rootfs: its cache is what its ldconfig made, nothing is stale.
    pristine = keep(root, "--dry-run", *tops)
    assert pristine.returncode == 0, pristine.stderr
    assert "ldconfig" not in pristine.stdout + pristine.stderr

    install_elf_files(root, tmp_path)
    stale = keep(root, "--print", *tops)
    assert stale.returncode == 0, stale.stderr
    assert "lacks 1 library of the /etc/ld.so.conf directories (/usr/local/lib/libmine.so.1)" \
        in stale.stderr
    dry = keep(root, "--dry-run", *tops)
    assert dry.returncode == 0, dry.stderr
    notice = [l for l in dry.stdout.splitlines() if "ldconfig" in l]
    assert len(notice) == 1, dry.stdout
    assert "would run " in notice[0] and notice[0].endswith(ldconfig_cmd), notice

    real = keep(root, *tops)                  # runs ldconfig -r ROOT, then apt-mark
    assert real.returncode == 0, real.stderr
    assert [l for l in real.stdout.splitlines() if "ldconfig" in l][0].endswith(ldconfig_cmd)
    assert "libmine.so.1" in root.run("ldconfig -p").stdout

    expected, unowned, missing = reference(root, tops)
    assert missing == []
    assert any(p.startswith("libreadline8") for p in expected), expected   # lib-dynload/readline
    fresh = keep(root, "--print", *tops)
    assert fresh.returncode == 0, fresh.stderr
    assert "ldconfig" not in fresh.stderr
    assert set(fresh.stdout.split()) == expected
    assert set(stale.stdout.split()) == expected          # resolved as if ldconfig had run
    doc = json.loads(keep(root, "--print", "--json", *tops).stdout)
    assert sorted(os.path.basename(u["library"]) for u in doc["unowned"]) == \
        sorted(os.path.basename(u) for u in unowned)


def test_owners_of_diverted_paths_equal_dpkg_query(chroot):
    """Every path of every diversion (the suite's own, plus a local one and a package
    one made here on a usrmerge alias), under both spellings: Database.owners equals
    dpkg-query --search with dpkg's rule for diversions."""
    from pyimgtools.dpkg import Database
    from pyimgtools.fs import Root
    root = chroot
    root.run("dpkg-divert --local --no-rename --divert /usr/bin/tac.local /usr/bin/tac")
    root.run("dpkg-divert --package dash --no-rename --divert /bin/tail.dash /bin/tail")
    db = Database(Root(root.path))
    asked = sorted({s for d in db.diversions for p in (d.original, d.diverted_to)
                    for s in keepref.spellings(p)})
    assert len(db.diversions) >= 2
    expected = keepref.chroot_owners(root, asked)
    got = db.owners(asked).owners
    assert {p: set(o) for p, o in got.items()} == expected
    assert expected["/usr/bin/tac.local"] == {"coreutils"}
    assert expected["/usr/bin/tac"] == set()
