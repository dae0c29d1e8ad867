"""A directory-for-symlink swapper for race tests.

`Swapper([(a, b), ...])` exchanges each pair of paths atomically
(renameat2(RENAME_EXCHANGE), Linux >= 3.15, glibc >= 2.28) in a loop on a
thread until stopped: a directory and a symlink to somewhere outside the tree
trade places as fast as the kernel allows, so a tool that checks a path and
then uses it by name is caught between the two. ctypes releases the GIL
during the call, so the loop runs alongside the code under test.
"""

import ctypes
import ctypes.util
import os
import threading

AT_FDCWD = -100
RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def available():
    return _renameat2 is not None


def exchange(a, b):
    """Swap the paths a and b atomically; False when one of them is missing."""
    rc = _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err == 2:
            return False
        raise OSError(err, os.strerror(err), a)
    return True


class Swapper:
    """Context manager: swaps each pair until the block ends; `swaps` counts them."""

    def __init__(self, pairs):
        self.pairs = [(os.fsencode(a), os.fsencode(b)) for a, b in pairs]
        self.swaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    def _run(self):
        try:
            while not self._stop.is_set():
                for a, b in self.pairs:
                    if exchange(a, b):
                        self.swaps += 1
        except OSError as exc:  # reported by __exit__
            self.error = exc

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error
        return False
