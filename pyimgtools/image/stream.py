"""A layer blob as a stream of tar bytes: decompressed on the fly, digest checked at the end.

The compression is told by the blob's magic bytes (gzip 1f8b, zstd 28b52ffd),
so a media type that lies about it does not matter; zstd needs the running
Python's compression.zstd (3.14+).
"""

import hashlib
import io
import queue
import threading
import zlib

from pyimgtools.image.store import ImageError

_CHUNK = 1 << 20
_OUT_MAX = 4 << 20
_THREAD_MIN = 64 << 10    # smaller layers are hashed inline
_QUEUED = 8               # chunks waiting for the hashing thread, at most


class _Digest:
    """sha256 of a stream, computed on a second thread once the stream is large.

    Verifying every layer's digest is mandatory and costs about as much as
    reading an uncompressed layer; hashlib releases the GIL while it hashes,
    so on a second CPU it overlaps with parsing the tar. Chunks are hashed in
    the order given; at most _QUEUED of them wait (bounded memory).
    """

    def __init__(self):
        self._h = hashlib.sha256()
        self._q = None
        self._thread = None

    def update(self, data):
        if self._q is not None:
            self._q.put(data)
        elif len(data) < _THREAD_MIN:
            self._h.update(data)
        else:
            self._q = queue.Queue(_QUEUED)
            self._thread = threading.Thread(target=self._run, name="pyimgtools-sha256",
                                            daemon=True)
            self._thread.start()
            self._q.put(data)

    def _run(self):
        h, get = self._h, self._q.get
        while True:
            data = get()
            if data is None:
                return
            h.update(data)

    def stop(self):
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = self._q = None

    def hexdigest(self):
        self.stop()
        return self._h.hexdigest()
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_decompressor():
    try:
        from compression import zstd  # novermin: Python 3.14+, optional
    except ImportError:
        return None
    return zstd.ZstdDecompressor


class LayerStream(io.RawIOBase):
    """Readable tar bytes of one layer (`read_chunk()`, or `read(n)`); `finish()`
    drains it and checks the digest; `close()` stops the hashing thread."""

    def __init__(self, raw, ref, label):
        super().__init__()
        self._raw = raw
        self._ref = ref
        self._what = label      # "layer 2 sha256:... in app.tar"
        # One sha256 pass: over the blob, or (docker save's diff_ids) over the
        # tar it decompresses to; for an uncompressed blob the two are the same.
        self._hash_raw = _Digest()
        self._hash_tar = None
        self._raw_size = 0
        self._buf = b""
        self._pos = 0
        self._offset = 0      # bytes of tar consumed
        self._eof = False
        head = self._raw.read(_CHUNK)
        self._raw_size = len(head)
        self._pending = head
        if head.startswith(GZIP_MAGIC):
            self._new = lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif head.startswith(ZSTD_MAGIC):
            factory = _zstd_decompressor()
            if factory is None:
                raise ImageError("%s is zstd-compressed (media type %s); this Python has no "
                                 "compression.zstd (needs 3.14+)"
                                 % (self._what, ref.media_type or "unknown"))
            self._new = factory
        else:
            self._new = None
        self._dec = self._new() if self._new else None
        self.compressed = self._dec is not None   # else tar offsets are the blob's
        if ref.verify_uncompressed and self._dec is not None:
            self._hash_tar, self._hash_raw = _Digest(), None
        if self._hash_raw is not None:
            self._hash_raw.update(head)

    def readable(self):
        return True

    def _read_raw(self):
        data = self._raw.read(_CHUNK)
        if self._hash_raw is not None:
            self._hash_raw.update(data)
        self._raw_size += len(data)
        return data

    def _next_input(self):
        data = self._pending if self._pending is not None else self._read_raw()
        self._pending = None
        return data

    def _fill(self):
        """Set the buffer to the next decompressed chunk; False at the end."""
        while True:
            dec = self._dec
            if dec is None:
                data = self._next_input()
                if not data:
                    return False
                self._buf, self._pos = data, 0
                return True
            if getattr(dec, "needs_input", True) is False and not dec.eof:
                data = b""        # zstd holds output from the last call
            else:
                data = self._next_input()
                if not data:
                    if not dec.eof:
                        raise ImageError("%s is truncated (compressed stream ends early)"
                                         % self._what)
                    return False
                if dec.eof:
                    # Concatenated members (pigz, some registries) or zero padding.
                    if not data.strip(b"\0"):
                        continue
                    dec = self._dec = self._new()
            try:
                # Bounded output: 1 GiB of zeros must not become one bytes object.
                out = dec.decompress(data, _OUT_MAX)
            except (zlib.error, EOFError, OSError, ValueError) as exc:
                raise ImageError("%s: corrupt compressed data (%s)" % (self._what, exc)) from None
            if dec.eof:
                rest = dec.unused_data
            else:
                rest = getattr(dec, "unconsumed_tail", b"")
            if rest:
                self._pending = rest
            if out:
                if self._hash_tar is not None:
                    self._hash_tar.update(out)
                self._buf, self._pos = out, 0
                return True

    def read_chunk(self):
        """The next piece of tar bytes (any size), b"" at the end."""
        if self._pos >= len(self._buf):
            if self._eof or not self._fill():
                self._eof = True
                return b""
        buf, pos = self._buf, self._pos
        self._pos = len(buf)
        self._offset += len(buf) - pos
        return buf[pos:] if pos else buf

    def _take(self, n, keep):
        """Consume up to n bytes (all if n < 0), hashing them; the bytes if `keep`."""
        parts = []
        while n:
            if self._pos >= len(self._buf):
                if self._eof or not self._fill():
                    self._eof = True
                    break
            avail = len(self._buf) - self._pos
            take = avail if n < 0 or n > avail else n
            if keep:
                parts.append(memoryview(self._buf)[self._pos:self._pos + take])
            self._pos += take
            self._offset += take
            if n > 0:
                n -= take
        return b"".join(parts) if keep else None

    def read(self, n=-1):
        return self._take(-1 if n is None else n, True)

    def close(self):
        for digest in (self._hash_raw, self._hash_tar):
            if digest is not None:
                digest.stop()
        super().close()

    def finish(self):
        """Read what the tar reader left (end blocks, padding) and check digest and size."""
        while self.read_chunk():
            pass
        algo, _, expected = self._ref.digest.partition(":")
        got = (self._hash_tar or self._hash_raw).hexdigest()
        if algo != "sha256" or got != expected:
            raise ImageError("%s: digest mismatch (content hashes to sha256:%s)" % (self._what, got))
        if self._ref.size is not None and self._ref.size != self._raw_size:
            raise ImageError("%s: %d bytes, the manifest says %s"
                             % (self._what, self._raw_size, self._ref.size))
