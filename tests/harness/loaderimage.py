"""A hand-made Debian-like image root for the loader: gABI-built ELF files, a dl-cache.h cache.

`Image` lays out a usrmerged root (/lib -> usr/lib, /lib64 -> /usr/lib64, the
interpreter and libc built by tests/harness/elfbuild.py, an /etc/ld.so.cache
built by tests/harness/ldcachebuild.py); tests add files with put/exe/link and
work out each expected resolution by hand from glibc's rules. Shared by
tests/unit/test_loader.py and test_loader_warnings.py.
"""

import os

from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.elfbuild import build_elf
from tests.harness.ldcachebuild import new_cache

X86 = "/lib/x86_64-linux-gnu"
LDSO = "/lib64/ld-linux-x86-64.so.2"


class Image:
    """A Debian-like usrmerged root: /lib -> usr/lib, /lib64 -> usr/lib64 (absolute links)."""

    def __init__(self, base, cache=True):
        self.base = str(base)
        for d in ("usr/lib/x86_64-linux-gnu", "usr/lib64", "etc", "usr/local/lib", "usr/bin"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        os.symlink("usr/lib", os.path.join(self.base, "lib"))
        os.symlink("/usr/lib64", os.path.join(self.base, "lib64"))     # absolute: inside the root
        os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                   os.path.join(self.base, "usr/lib64/ld-linux-x86-64.so.2"))
        self.put("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", soname="ld-linux-x86-64.so.2")
        self.put("/usr/lib/x86_64-linux-gnu/libc.so.6", soname="libc.so.6",
                 needed=["ld-linux-x86-64.so.2"], interp=LDSO)
        self.cache_entries = [("libc.so.6", X86 + "/libc.so.6", 0x303, 0),
                              ("ld-linux-x86-64.so.2", X86 + "/ld-linux-x86-64.so.2", 0x303, 0)]
        if cache:
            self.write_cache()

    def host(self, path):
        return os.path.join(self.base, path.lstrip("/"))

    def put(self, path, **kw):
        kw.setdefault("etype", 3)
        host = self.host(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "wb") as f:
            f.write(build_elf(**kw))
        return path

    def exe(self, path, needed=(), **kw):
        return self.put(path, interp=LDSO, needed=list(needed) + ["libc.so.6"], **kw)

    def link(self, path, target):
        host = self.host(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        os.symlink(target, host)

    def write_cache(self, extra=(), hwcaps=()):
        with open(self.host("/etc/ld.so.cache"), "wb") as f:
            f.write(new_cache(list(extra) + self.cache_entries, hwcaps=hwcaps))

    def tree(self, path, **kw):
        return Loader(Root(self.base), **kw).load_tree(path)
