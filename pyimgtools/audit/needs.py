"""Which file contents the audit checks (and the planners they call) read: the
one predicate `audit IMAGE` gives the image reader as `want`.

Everything else of an image is projected as a sparse placeholder of its real
size (pyimgtools/image/view.py): listing, lstat and sizes need no content. A
check that read a placeholder would see zeros; the integration test
(tests/integration/test_audit_image_archives.py) compares every finding with
`--root` on the mounted image, so a content missing here shows up there.

    content                      read by
    /etc/**                      apt sources and config, dpkg.cfg.d (dangling-symlinks),
                                 ld.so.cache/ld.so.conf/ld.so.preload (keep's loader),
                                 os-release (security), ssl certificates (ca-certificates)
    /var/lib/dpkg/**             dpkg's status, diversions, arch, info/*.list
    /var/lib/apt/**              extended_states (manual packages), lists (apt-cache policy)
    /usr/lib/os-release          what /etc/os-release links to
    ELF files (by content)       keep's loader: header, program headers, dynamic segment
    *.py, *.pth, pyvenv.cfg      prune's import check, checked-hash .pyc verification
    *.pyc (first 16 bytes)       the bytecode checks: magic, flags, source mtime and size
    *.dist-info/*, *.egg-info    package metadata

Where the view keeps them (`placement`): most as real files of the view; a
.pyc's header in memory (the bytecode checks ask fs.Root.read_head); a .py
as its source_hash in memory (fs.Root.source_hash, for checked-hash .pyc
files), and as a real file only when prune's import check may find something
in it (`source_on_disk`). An app image holds tens of thousands of each: one
file apiece would cost more than reading the whole image. An ELF file
outside /etc and dpkg's and apt's trees is a sparse file holding only the
ranges read_elf reads (LOADER: elf.loader_ranges), kilobytes of a library of
any size, so the view fits a tmpfs.
"""

from pyimgtools.image import Peek
from pyimgtools.image import view as _view
from pyimgtools.image.view import DISK, HEAD, LOADER, SOURCE
from pyimgtools.prune import IMPORT_CHECKED

ELF_MAGIC = b"\x7fELF"
PYC_HEADER = 16       # magic, flags, mtime/hash, size (PEP 552); older layouts are shorter

_TREES = ("/etc/", "/var/lib/dpkg/", "/var/lib/apt/")
_FILES = frozenset(("/usr/lib/os-release",))
_WHOLE_SUFFIXES = (".py", ".pth")
_WHOLE_NAMES = frozenset(("pyvenv.cfg",))


def wanted(path, size, mode, head=None):
    """True (the whole file), an int (its first N bytes), Peek(4) (ask again
    with the first bytes) or False, for a regular file of an image."""
    if path.startswith(_TREES) or path in _FILES:
        return True
    name = path.rsplit("/", 1)[-1]
    if name.endswith(_WHOLE_SUFFIXES) or name in _WHOLE_NAMES:
        return True
    if name.endswith(".pyc"):
        return PYC_HEADER
    if ".dist-info/" in path or ".egg-info" in path:
        return True
    if head is None:
        return Peek(len(ELF_MAGIC))
    # keep's loader reads program headers and the dynamic segment anywhere in the file
    return head == ELF_MAGIC


# each file is scanned once per word: a word holding another ("tests", "test") adds nothing
_IMPORT_WORDS = tuple(sorted(w.encode() for w in IMPORT_CHECKED
                             if not any(o != w and o in w for o in IMPORT_CHECKED)))


def placement(path, head=b""):
    """DISK, HEAD, SOURCE or LOADER: where the image view keeps a wanted file
    (above), given its path and first bytes."""
    if path.startswith(_TREES) or path in _FILES:
        return DISK
    if path.endswith(".py"):
        return SOURCE
    if path.endswith(".pyc"):
        return HEAD
    if head[:4] == ELF_MAGIC:
        return LOADER
    return DISK


def source_on_disk(data):
    """Whether a .py must be a real file of the view: prune's import check
    (pyimports.import_statements) looks only at text holding the name of a
    test directory; in any other file it finds what it finds in zeros."""
    return any(w in data for w in _IMPORT_WORDS)


def image_view(source, platform=None, tmpdir=None):
    """The view of an image audit IMAGE reads: pyimgtools.image.view.image_view
    with this module's choices (a context manager yielding an ImageRoot)."""
    return _view.image_view(source, platform=platform, want=wanted, tmpdir=tmpdir,
                            place=placement, source_on_disk=source_on_disk)
