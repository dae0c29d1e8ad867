"""ld.so.cache files built from glibc's dl-cache.h layout, independent of pyimgtools.ldcache.

`new_cache` writes the new format ("glibc-ld.so.cache1.1": header, entries,
string table, and the extension section with glibc-hwcaps subdirectories) as
ldconfig does; it is the reference for the cache reader (test_ldcache.py) and
gives the loader and keep tests a cache without running ldconfig.
"""

import struct


def new_cache(entries, endian="<", hwcaps=()):
    """A new-format cache laid out per dl-cache.h (strings after the entries)."""
    strings = bytearray()
    offsets = {}
    n = len(entries)
    str_base = 48 + 24 * n

    def s(text):
        if text not in offsets:
            offsets[text] = str_base + len(strings)
            strings.extend(text.encode() + b"\0")
        return offsets[text]

    body = b""
    for name, path, flags, hwcap in entries:
        body += struct.pack(endian + "iIIIQ", flags, s(name), s(path), 0, hwcap)
    sub_offsets = [s(h) for h in hwcaps]
    data = bytearray(body + strings)
    ext_off = 0
    if hwcaps:
        while (48 + len(data)) % 4:
            data.append(0)
        ext_off = 48 + len(data)
        section = struct.pack(endian + "%dI" % len(sub_offsets), *sub_offsets)
        sec_off = ext_off + 8 + 16
        data += struct.pack(endian + "II", 0xEAA42174, 1)
        data += struct.pack(endian + "IIII", 1, 0, sec_off, len(section)) + section
    header = b"glibc-ld.so.cache1.1" + struct.pack(endian + "IIB3xI12x", n, len(strings),
                                                  2 if endian == "<" else 3, ext_off)
    return header + bytes(data)
