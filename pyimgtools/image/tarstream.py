"""A minimal sequential tar reader for layer streams (POSIX ustar, pax, GNU long names).

tarfile builds a full TarInfo per member and costs ~80 µs an entry; a layer
of 100k files would spend seconds there. This reads only what the index needs
(name, mode, uid, gid, size, mtime, type, link target) from the 512-byte
headers laid out by POSIX.1-2001 "pax Interchange Format" (ustar header, pax
'x'/'g' extended records) and GNU tar's 'L'/'K' long names and base-256
numbers. Sparse and multi-volume members are refused: OCI layers have none.
"""

from pyimgtools.image.store import ImageError

BLOCK = 512
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
    """Members of the tar in `stream` (read(n) returning n bytes unless at its end;
    seek(n, 1) to skip), one after another."""

    def __init__(self, stream, label):
        self._s = stream
        self._label = label
        self._buf = b""         # read ahead from the stream, in chunks
        self._pos = 0
        self._left = 0          # unread data bytes of the current member
        self._pad = 0           # padding after them
        self._global = {}       # pax 'g' records apply to every later member

    def _get(self, n):
        """Up to n bytes (fewer only at the end of the stream)."""
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos:end]
            self._pos = end
            return data
        parts = [self._buf[self._pos:]]
        need = n - len(parts[0])
        self._buf, self._pos = b"", 0
        while need > 0:
            chunk = self._s.read(max(_CHUNK, need) if need < _CHUNK else need)
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                break
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

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

    def _skip_rest(self):
        left = self._left + self._pad
        self._left = self._pad = 0
        if left and self._pos + left <= len(self._buf):
            self._pos += left
            return
        # read, not seek: reading detects the truncation of a layer
        while left:
            chunk = self._read_exact(min(left, _CHUNK), "a file's data")
            left -= len(chunk)

    def _meta(self, size):
        if size > _MAX_META:
            raise ImageError("%s: tar metadata record of %d bytes" % (self._label, size))
        data = self._read_exact(size, "a pax or GNU long-name record")
        self._read_exact(-size % BLOCK, "a pax or GNU long-name record")
        return data

    def next(self):
        """The next member's Header, or None at the end of the archive."""
        self._skip_rest()
        pax, longname, longlink = {}, None, None
        while True:
            buf = self._get(BLOCK)
            if not buf:
                return None       # no end-of-archive blocks: accepted, as tarfile does
            if len(buf) != BLOCK:
                raise ImageError("%s is truncated (in a tar header)" % self._label)
            if buf == bytes(BLOCK):
                return None
            stored = _num(buf[148:156], "chksum", self._label)
            unsigned = sum(buf) - sum(buf[148:156]) + 256   # the field counts as spaces
            if stored != unsigned and stored != unsigned - 256 * sum(
                    1 for b in buf[:148] + buf[156:] if b > 127):    # old tars: signed sum
                raise ImageError("%s: bad tar header checksum (truncated or not a tar)" % self._label)
            kind = buf[156:157]
            size = _num(buf[124:136], "size", self._label)
            if size < 0:
                raise ImageError("%s: negative size in a tar header" % self._label)
            if kind == b"x":
                pax.update(_pax(self._meta(size), self._label))
                continue
            if kind == b"g":
                self._global.update(_pax(self._meta(size), self._label))
                continue
            if kind == b"L":
                longname = _str(self._meta(size))
                continue
            if kind == b"K":
                longlink = _str(self._meta(size))
                continue
            break
        h = Header()
        type_ = _TYPES.get(kind)
        if type_ is None:
            raise ImageError("%s: unsupported tar member type %r" % (self._label, kind))
        name = _str(buf[0:100])
        if buf[257:263] == b"ustar\x00":            # POSIX ustar: a prefix field
            prefix = _str(buf[345:500])
            if prefix:
                name = prefix + b"/" + name
        rec = dict(self._global, **pax) if self._global else pax
        if rec and any(k.startswith("GNU.sparse.") for k in rec):
            raise ImageError("%s: sparse tar members are not supported" % self._label)
        name = rec.get("path") or longname or name
        link = rec.get("linkpath") or longlink or _str(buf[157:257])
        h.name, h.linkname, h.type = _decode(name), _decode(link), type_
        h.mode = _num(buf[100:108], "mode", self._label) & 0o7777
        h.uid = _num(buf[108:116], "uid", self._label)
        h.gid = _num(buf[116:124], "gid", self._label)
        h.mtime = _num(buf[136:148], "mtime", self._label)
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
            raise ImageError("%s: malformed pax header value" % self._label) from None
        # As tarfile: only regular members carry data; a link's size field is ignored.
        h.size = size if type_ == "file" else 0
        self._left, self._pad = h.size, -h.size % BLOCK
        return h
