"""Debian version comparison, as deb-version(7) and dpkg's lib/dpkg/version.c.

A version is ``[epoch:]upstream_version[-debian_revision]``. Epochs compare as
integers; upstream version and revision compare with ``verrevcmp``: alternating
runs of non-digits (compared character by character, letters before
non-letters, ``~`` before everything, even the end of the string) and digits
(compared numerically).
"""


def parse(text):
    """'1:2.3-4' -> (1, '2.3', '4'); lenient like dpkg's comparison (no validation).

    Raises ValueError for an empty version or a non-numeric epoch.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty version")
    epoch = 0
    colon = text.find(":")
    if colon >= 0:
        epoch_text = text[:colon]
        if not epoch_text.isdigit() or not epoch_text.isascii():
            raise ValueError("bad epoch in version %r" % text)
        epoch = int(epoch_text)
        text = text[colon + 1:]
    hyphen = text.rfind("-")
    if hyphen >= 0:
        return epoch, text[:hyphen], text[hyphen + 1:]
    return epoch, text, ""


def _order(ch):
    """Sort weight of one non-digit character (dpkg's order())."""
    if ch == "~":
        return -1
    if ch.isascii() and ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _isdigit(ch):
    return "0" <= ch <= "9"


def verrevcmp(a, b):
    """dpkg's verrevcmp on two strings: negative, zero or positive."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not _isdigit(a[i])) or (j < lb and not _isdigit(b[j])):
            ac = _order(a[i]) if i < la and not _isdigit(a[i]) else 0
            bc = _order(b[j]) if j < lb and not _isdigit(b[j]) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and _isdigit(a[i]) and j < lb and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and _isdigit(a[i]):
            return 1
        if j < lb and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def compare(a, b):
    """Compare two version strings as `dpkg --compare-versions`: -1, 0 or 1."""
    pa, pb = parse(a), parse(b)
    if pa[0] != pb[0]:
        return -1 if pa[0] < pb[0] else 1
    r = verrevcmp(pa[1], pb[1])
    if r == 0:
        r = verrevcmp(pa[2], pb[2])
    return (r > 0) - (r < 0)
