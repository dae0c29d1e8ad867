"""What is on disk, read with plain os.* calls: the independent side of the fs.Dir tests.

`tree_files` is every file (and symlink, as 'link -> target') under a
directory with its bytes; `outside_var` makes a host directory shaped like an
image's /var, whose files must survive whatever a test does inside the root.
Shared by tests/unit/test_fs_tree.py and test_fs_races.py.
"""

import os


def tree_files(top):
    """{relative path: bytes} of every file under `top` (links as 'link -> target')."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(top)):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, str(top))
            out[rel] = ("link -> " + os.readlink(p)) if os.path.islink(p) else open(p, "rb").read()
    return out


def outside_var(tmp_path):
    """A host directory shaped like an image's /var, full of files that must survive."""
    out = tmp_path / "outside"
    for rel in ("lib/apt/lists/deb.debian.org_dists_InRelease", "lib/apt/lists/partial/p",
                "cache/apt/archives/keep.deb", "cache/apt/archives/partial/half.deb",
                "cache/apt/pkgcache.bin"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"outside")
    return out
