"""The keep fixture image: tiny ELF files compiled with gcc -nostdlib and a hand-written dpkg database.

The layout (image_template's docstring) and the package each library belongs
to are written out by hand, so every expected package set follows from the
DT_NEEDED entries linked in, independent of pyimgtools.keep. Fixtures
`image_template` (once per session) and `image` (a copy per test): import them
into a test module. Shared by tests/unit/test_keep.py, test_builddeps.py,
test_loader_warnings.py and tests/integration/test_unreadable_scan.py.
"""

import os
import shutil
import subprocess

import pytest

from tests.harness.ldcachebuild import new_cache
from tests.harness.prereq import require

LIBDIR = "/usr/lib/x86_64-linux-gnu"


def gcc(*args):
    require(shutil.which("gcc") is not None, "needs gcc")
    proc = subprocess.run(["gcc", "-nostdlib", "-fPIC", "-Wl,--no-as-needed"] + list(args),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def shlib(path, soname, *needs, mode=0o644, extra=()):
    src = str(path) + ".c"
    with open(src, "w") as f:
        f.write("int f_%d(void) { return 0; }\n" % abs(hash(soname)))
    gcc("-shared", "-Wl,-soname," + soname, "-o", str(path), src, *(list(extra) + list(needs)))
    os.unlink(src)
    os.chmod(str(path), mode)


def program(path, *needs, interp="/lib64/ld-linux-x86-64.so.2", extra=()):
    src = str(path) + ".c"
    with open(src, "w") as f:
        f.write("void _start(void) { for (;;); }\n")
    gcc("-Wl,--dynamic-linker=" + interp, "-o", str(path), src, *(list(extra) + list(needs)))
    os.unlink(src)


STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9

Package: libfoo1
Status: install ok installed
Architecture: amd64
Version: 1.0

Package: libbar2
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.0

Package: libbaz3
Status: install ok installed
Architecture: amd64
Version: 3.0

Package: libunused0
Status: install ok installed
Architecture: amd64
Version: 0.1
"""

LISTS = {
    # ships the old spelling; the loader finds /usr/lib64/... through the link
    "libc6:amd64": ["/lib64/ld-linux-x86-64.so.2"],
    "libfoo1": ["/lib/x86_64-linux-gnu/libfoo.so.1"],           # /lib -> usr/lib
    "libbar2:amd64": [LIBDIR + "/libbar.so.2"],
    "libbaz3": [LIBDIR + "/libbaz.so.3"],
    "libunused0": [LIBDIR + "/libunused.so.0"],
}

EXTENDED = """\
Package: libc6
Architecture: amd64
Auto-Installed: 1

Package: libfoo1
Architecture: amd64
Auto-Installed: 1

Package: libbar2
Architecture: amd64
Auto-Installed: 1

Package: libunused0
Architecture: amd64
Auto-Installed: 1
"""


@pytest.fixture(scope="session")
def image_template(tmp_path_factory):
    """The image root (built once per session; each test gets a copy):

    /usr/local/bin/prog        needs libfoo.so.1, libinternal.so.1; RUNPATH $ORIGIN/../lib
    /usr/local/lib/libinternal.so.1   (mode 0644) needs libbaz.so.3, libstray.so.0
    /usr/lib/.../libfoo.so.1   needs libbar.so.2                 -> libfoo1 (listed as /lib/...)
    /usr/lib/.../libbar.so.2                                     -> libbar2:amd64 (Multi-Arch: same)
    /usr/lib/.../libbaz.so.3                                     -> libbaz3 (already manual)
    /usr/lib/.../libstray.so.0                                   -> no package
    /usr/lib64/ld-linux-x86-64.so.2  (the interpreter)           -> libc6:amd64
    """
    root = tmp_path_factory.mktemp("keep-image") / "root"
    lib = root / LIBDIR.lstrip("/")
    lib.mkdir(parents=True)
    (root / "usr/lib64").mkdir(parents=True)
    os.symlink("usr/lib", str(root / "lib"))
    os.symlink("usr/lib64", str(root / "lib64"))
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/lib").mkdir(parents=True)
    shlib(root / "usr/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2")
    shlib(lib / "libbar.so.2", "libbar.so.2")
    shlib(lib / "libbaz.so.3", "libbaz.so.3")
    shlib(lib / "libstray.so.0", "libstray.so.0")
    shlib(lib / "libunused.so.0", "libunused.so.0")
    shlib(lib / "libfoo.so.1", "libfoo.so.1", str(lib / "libbar.so.2"))
    shlib(root / "usr/local/lib/libinternal.so.1", "libinternal.so.1",
          str(lib / "libbaz.so.3"), str(lib / "libstray.so.0"), mode=0o644)
    program(root / "usr/local/bin/prog", str(lib / "libfoo.so.1"),
            str(root / "usr/local/lib/libinternal.so.1"),
            extra=["-Wl,-rpath,$ORIGIN/../lib", "-Wl,--enable-new-dtags"])
    (root / "usr/local/bin/script.py").write_text("print('not ELF')\n")
    (root / "usr/local/lib/README.txt").write_text("text\n")
    dpkg = root / "var/lib/dpkg"
    (dpkg / "info").mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    for name, paths in LISTS.items():
        (dpkg / "info" / (name + ".list")).write_text("/.\n" + "\n".join(paths) + "\n")
    (root / "var/lib/apt").mkdir(parents=True)
    (root / "var/lib/apt/extended_states").write_text(EXTENDED)
    return root


@pytest.fixture
def image(image_template, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(str(image_template), str(root), symlinks=True)
    return root


def stale_cache_image(image):
    """The image with Debian's ld.so.conf, a cache made before `make install`
    (system libraries only) and /usr/local/bin/plain, which finds
    /usr/local/lib/libinternal.so.1 through the cache only (no RUNPATH)."""
    (image / "etc/ld.so.conf.d").mkdir(parents=True)
    (image / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (image / "etc/ld.so.conf.d/libc.conf").write_text("/usr/local/lib\n")
    (image / "etc/ld.so.conf.d/x86_64-linux-gnu.conf").write_text(
        "/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n")
    (image / "etc/ld.so.cache").write_bytes(new_cache([
        (n, "/lib/x86_64-linux-gnu/" + n, 0x303, 0)
        for n in ("libbar.so.2", "libbaz.so.3", "libfoo.so.1", "libstray.so.0", "libunused.so.0")]))
    program(image / "usr/local/bin/plain", str(image / "usr/local/lib/libinternal.so.1"))
    return image
