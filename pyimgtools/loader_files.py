"""What the loader reads of an image, each thing once: ELF headers, directory
listings, real paths, small text files.

All of pyimgtools.loader's file access goes through `ImageFiles`, so that the
resolution rules (loader_search, loader) never touch a host path: everything is
read inside the `pyimgtools.fs.Root`, symlinks resolved inside it.
"""

import os

from pyimgtools import elf as _elf
from pyimgtools import fs as _fs
from pyimgtools.elf import ElfError


class ImageFiles:
    """Cached read access to one image root by in-image path."""

    def __init__(self, root):
        self.root = root
        self._elf = {}                     # host path -> (ElfInfo, ident) or exception
        self._listing = {}                 # in-image dir -> frozenset of names, or None
        self._canon = _fs.Canonical(root)  # in-image path -> real path (cached)

    def host(self, path):
        """Host path to open for an in-image path (symlinks resolved inside the root).

        A symlink loop raises OSError (cached): never fall back to the
        unresolved path, whose absolute links the host kernel would follow
        out of the root."""
        if self.root.is_host:
            return path
        return self.root.host(self._canon.file(path))

    def elf(self, path):
        """(ElfInfo, ident) for an in-image path; raises ElfError/OSError (cached).
        ident is (st_dev, st_ino): the same file under two names is one object."""
        try:
            host = self.host(path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from None
        hit = self._elf.get(host)
        if hit is None:
            try:
                info, st = _elf.read_elf_stat(host)
                hit = (info, (st.st_dev, st.st_ino))
            except (ElfError, OSError) as exc:
                hit = exc
            self._elf[host] = hit
        if isinstance(hit, Exception):
            raise hit
        return hit

    def names_in(self, directory):
        """The names in an in-image directory, or None when it cannot be listed."""
        names = self._listing.get(directory, False)
        if names is False:
            try:
                names = frozenset(os.listdir(self.host(directory)))  # OSError: None
            except OSError:
                names = None
            self._listing[directory] = names
        return names

    def real_file(self, path):
        """The real in-image path of `path` (OSError on a loop or a missing parent)."""
        return self._canon.file(path)

    def isdir(self, path):
        return self.root.isdir(path)

    def read_text(self, path, limit):
        """Up to `limit` bytes of an in-image file as text; "" when it cannot be read."""
        try:
            with self.root.open(path) as f:
                return os.fsdecode(f.read(limit))
        except OSError:
            return ""
