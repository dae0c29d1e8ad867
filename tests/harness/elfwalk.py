"""Which files under a tree are ELF files, found with os.walk and the magic bytes.

The independent reference for the tests that compare pyimgtools' scans (keep,
the loader, audit) with ldd and dpkg-query on real trees: an ELF file is a
regular file (by lstat: not a symlink, FIFO, socket or device node, so nothing
blocks or follows) whose first four bytes are the ELF magic, 0x7f 'E' 'L' 'F'
(System V gABI, e_ident[EI_MAG0..3]). Files it cannot read are left out.
Nothing here uses pyimgtools.
"""

import os
import stat

ELF_MAGIC = b"\x7fELF"


def is_elf_file(path):
    """True if `path` is a regular file (not a symlink) starting with the ELF magic."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def elf_files(tree, root_path=""):
    """ELF files under host directory `tree` (symlinked directories not followed), sorted;
    with `root_path`, as paths inside that root ("/" + path relative to it)."""
    found = []
    for dirpath, _dirs, names in os.walk(tree):
        found.extend(p for p in (os.path.join(dirpath, n) for n in names) if is_elf_file(p))
    if root_path:
        found = ["/" + os.path.relpath(p, root_path) for p in found]
    return sorted(found)
