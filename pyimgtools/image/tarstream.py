"""A minimal sequential tar reader for layer streams (POSIX ustar, pax, GNU long names).

tarfile builds a full TarInfo per member and costs ~80 µs an entry; a layer
of 100k files would spend seconds there. This reads only what the index needs
(name, mode, uid, gid, size, mtime, type, link target) from the 512-byte
headers laid out by POSIX.1-2001 "pax Interchange Format" (ustar header, pax
'x'/'g' extended records) and GNU tar's 'L'/'K' long names and base-256
numbers. Sparse and multi-volume members are refused: OCI layers have none.
"""

import zlib

from pyimgtools.image.store import ImageError

BLOCK = 512
_ZERO = bytes(BLOCK)
_META = (b"x", b"g", b"L", b"K")
_CHUNK = 1 << 20
_TYPES = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
          b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}
_MAX_META = 1 << 20     # a pax record set or GNU long name larger than this is refused


class Header:
    __slots__ = ("name", "mode", "uid", "gid", "size", "mtime", "type", "linkname")


def _decode(raw):
    return raw.decode("utf-8", "surrogateescape")


def _str(field):
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _num(field, what, label):
    if field[0] & 0x80:                             # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] == 0xff else value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ImageError("%s: malformed tar header (%s field %r)" % (label, what, field)) from None


def _pax(data, label):
    """{key: bytes value} of a pax extended header's records ("LEN key=value\\n")."""
    out, pos = {}, 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break
        sp = data.find(b" ", pos)
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise ImageError("%s: malformed pax header" % label) from None
        record = data[sp + 1:pos + length]
        if length <= 0 or sp < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ImageError("%s: malformed pax header" % label)
        key, _, value = record[:-1].partition(b"=")
        out[_decode(key)] = value
        pos += length
    return out


class TarReader:
    """Members of the tar in `stream`, one after another.

    The stream gives its bytes by `read_chunk()` (the next piece, b"" at the
    end: LayerStream) or `read(n)`. A header is parsed where it lies in the
    current chunk, and file data is checksummed or skipped in place (no
    per-member copies): at 100k+ members a layer, the per-entry work is what
    reading costs (docs/image-archives.md, "Performance").
    """

    def __init__(self, stream, label):
        self._s = stream
        chunk = getattr(stream, "read_chunk", None)
        self._chunk = chunk if chunk is not None else (lambda: stream.read(_CHUNK))
        self._label = label
        self._buf = b""         # the current chunk of the stream
        self._pos = 0
        self._base = 0          # stream offset of _buf[0]
        self._left = 0          # unread data bytes of the current member
        self._pad = 0           # padding after them
        self._global = {}       # pax 'g' records apply to every later member
        self._ids = {}          # header bytes 100:124 -> (mode, uid, gid)

    def _get(self, n):
        """Up to n bytes (fewer only at the end of the stream)."""
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos:end]
            self._pos = end
            return data
        parts = [self._buf[self._pos:]]
        need = n - len(parts[0])
        while need > 0:
            chunk = self._refill()
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._pos = need
                break
            parts.append(chunk)
            self._pos = len(chunk)
            need -= len(chunk)
        return b"".join(parts)

    def _refill(self):
        """The next chunk as the buffer (the current one is used up)."""
        self._base += len(self._buf)
        self._buf, self._pos = self._chunk(), 0
        return self._buf

    @property
    def data_offset(self):
        """Stream offset of the current member's next data byte (after next(): its first)."""
        return self._base + self._pos

    def _read_exact(self, n, what):
        data = self._get(n)
        if len(data) != n:
            raise ImageError("%s is truncated (in %s)" % (self._label, what))
        return data

    def read(self, n):
        """Up to n bytes of the current member's data."""
        n = min(n, self._left)
        data = self._read_exact(n, "a file's data") if n else b""
        self._left -= n
        return data

    def crc_rest(self, crc=0):
        """CRC-32 of the rest of the current member's data, consumed in place."""
        left = self._left
        self._left = 0
        buf, pos = self._buf, self._pos
        while left:
            avail = len(buf) - pos
            if avail <= 0:
                buf, pos = self._refill(), 0
                if not buf:
                    raise ImageError("%s is truncated (in a file's data)" % self._label)
                continue
            if left <= avail:
                crc = zlib.crc32(memoryview(buf)[pos:pos + left], crc)
                pos += left
                break
            crc = zlib.crc32(memoryview(buf)[pos:], crc)
            left -= avail
            pos = len(buf)
        self._pos = pos
        return crc

    def _skip_rest(self):
        left = self._left + self._pad
        self._left = self._pad = 0
        if self._pos + left <= len(self._buf):
            self._pos += left
            return
        # read, not seek: reading detects the truncation of a layer
        left -= len(self._buf) - self._pos
        while left:
            chunk = self._refill()
            if not chunk:
                raise ImageError("%s is truncated (in a file's data)" % self._label)
            if len(chunk) > left:
                self._pos = left
                return
            self._pos = len(chunk)
            left -= len(chunk)

    def _meta(self, size):
        if size > _MAX_META:
            raise ImageError("%s: tar metadata record of %d bytes" % (self._label, size))
        data = self._read_exact(size, "a pax or GNU long-name record")
        self._read_exact(-size % BLOCK, "a pax or GNU long-name record")
        return data

    def _bad_checksum(self, buf, stored, unsigned):
        """Whether a header whose unsigned sum differs is wrong under the signed sum too."""
        return stored != unsigned - 256 * sum(1 for b in buf[:148] + buf[156:] if b > 127)

    def _numbers(self, buf):
        """(mode, uid, gid, size, mtime) of a header, field by field (the slow path)."""
        label = self._label
        size = _num(buf[124:136], "size", label)
        return (_num(buf[100:108], "mode", label), _num(buf[108:116], "uid", label),
                _num(buf[116:124], "gid", label), size, _num(buf[136:148], "mtime", label))

    def next(self):
        """The next member's Header, or None at the end of the archive."""
        left = self._left + self._pad
        if left:
            if self._pos + left <= len(self._buf):      # the usual case, inline
                self._pos += left
                self._left = self._pad = 0
            else:
                self._skip_rest()
        pax, longname, longlink = {}, None, None
        label = self._label
        adler32 = zlib.adler32
        while True:
            pos = self._pos
            if pos + BLOCK <= len(self._buf):
                buf = self._buf[pos:pos + BLOCK]
                self._pos = pos + BLOCK
            else:
                buf = self._get(BLOCK)
                if not buf:
                    return None       # no end-of-archive blocks: accepted, as tarfile does
                if len(buf) != BLOCK:
                    raise ImageError("%s is truncated (in a tar header)" % label)
            if buf == _ZERO:
                return None
            field = buf[148:156]
            try:     # six digits, NUL, space: what tar writers put there
                stored = int(field[:6] if buf[154] == 0 else field.split(b"\0", 1)[0], 8)
            except ValueError:
                stored = _num(field, "chksum", label)
            # sum(buf) at C speed: adler32's low half is 1 + the byte sum mod 65521,
            # exact for 256 bytes (at most 65280). The field counts as spaces.
            unsigned = ((adler32(buf[:256]) & 0xffff) + (adler32(buf[256:]) & 0xffff)
                        + 254 - sum(field))
            if stored != unsigned and self._bad_checksum(buf, stored, unsigned):   # old tars: signed
                raise ImageError("%s: bad tar header checksum (truncated or not a tar)" % label)
            kind = buf[156:157]
            type_ = _TYPES.get(kind)
            if type_ is not None:
                break
            if kind in _META:
                size = _num(buf[124:136], "size", label)
                if size < 0:
                    raise ImageError("%s: negative size in a tar header" % label)
                if kind == b"x":
                    pax.update(_pax(self._meta(size), label))
                elif kind == b"g":
                    self._global.update(_pax(self._meta(size), label))
                elif kind == b"L":
                    longname = _str(self._meta(size))
                else:
                    longlink = _str(self._meta(size))
                continue
            size = _num(buf[124:136], "size", label)
            if size < 0:
                raise ImageError("%s: negative size in a tar header" % label)
            raise ImageError("%s: unsupported tar member type %r" % (label, kind))
        # Fast path: each field's last byte a NUL or space (what tar writers do),
        # digits before it. Anything else (base-256, NUL-padded short digits) goes
        # through _num, field by field, which reads the same values or says why not.
        # mode, uid and gid take few values in a layer: parsed once per distinct field bytes.
        ids = buf[100:124]
        numbers = self._ids.get(ids)
        if numbers is not None and not ((buf[135] | buf[147]) & 0xdf):
            try:
                size, mtime = int(buf[124:135], 8), int(buf[136:147], 8)
                mode, uid, gid = numbers
            except ValueError:
                numbers = None
        elif not ((buf[107] | buf[115] | buf[123] | buf[135] | buf[147]) & 0xdf):
            try:
                size, mtime = int(buf[124:135], 8), int(buf[136:147], 8)
                mode, uid, gid = numbers = (int(buf[100:107], 8), int(buf[108:115], 8),
                                            int(buf[116:123], 8))
                if len(self._ids) < 4096:
                    self._ids[ids] = numbers
            except ValueError:
                numbers = None
        else:
            numbers = None
        if numbers is None:
            mode, uid, gid, size, mtime = self._numbers(buf)
        if size < 0:
            raise ImageError("%s: negative size in a tar header" % label)
        h = Header()
        end = buf.find(b"\0", 0, 100)
        name = buf[:end] if end >= 0 else buf[:100]
        if buf[345] and buf[257:263] == b"ustar\x00":     # POSIX ustar: a prefix field
            name = _str(buf[345:500]) + b"/" + name
        rec = dict(self._global, **pax) if self._global else pax
        if rec:
            if any(k.startswith("GNU.sparse.") for k in rec):
                raise ImageError("%s: sparse tar members are not supported" % label)
            name = rec.get("path") or longname or name
            link = rec.get("linkpath") or longlink or _str(buf[157:257])
        else:
            name = longname or name
            link = longlink or (_str(buf[157:257]) if buf[157] else b"")
        h.name = name.decode("utf-8", "surrogateescape")
        h.linkname = link.decode("utf-8", "surrogateescape") if link else ""
        h.type = type_
        h.mode, h.uid, h.gid, h.mtime = mode & 0o7777, uid, gid, mtime
        if rec:
            try:
                if "size" in rec:
                    size = int(rec["size"])
                if "uid" in rec:
                    h.uid = int(rec["uid"])
                if "gid" in rec:
                    h.gid = int(rec["gid"])
                if "mtime" in rec:
                    h.mtime = int(float(rec["mtime"]))
            except ValueError:
                raise ImageError("%s: malformed pax header value" % label) from None
        # As tarfile: only regular members carry data; a link's size field is ignored.
        h.size = size if type_ == "file" else 0
        self._left, self._pad = h.size, -h.size % BLOCK
        return h
