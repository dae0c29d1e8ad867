"""/etc/os-release (os-release(5)), read inside an image root.

`/etc/os-release` first, `/usr/lib/os-release` as the fallback; the file may be
a symlink (Debian's is `../usr/lib/os-release`), resolved inside the root.
Values follow shell quoting rules (a subset: single or double quotes,
backslash escapes inside double quotes).
"""

import dataclasses
import re
import shlex

from pyimgtools.errors import OsReleaseError

_LINE = re.compile(r"\A([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z")

# Debian's VERSION_ID -> codename, for os-release files without VERSION_CODENAME
# (stretch and older, some derived images).
DEBIAN_CODENAMES = {
    "8": "jessie", "9": "stretch", "10": "buster", "11": "bullseye",
    "12": "bookworm", "13": "trixie", "14": "forky", "15": "duke",
}


@dataclasses.dataclass
class OsRelease:
    """The fields of the image's os-release file and the path they were read from."""
    fields: dict
    path: str

    def get(self, key, default=""):
        return self.fields.get(key, default)

    @property
    def id(self):
        return self.fields.get("ID", "linux").lower()

    @property
    def id_like(self):
        return self.fields.get("ID_LIKE", "").lower().split()

    @property
    def version_id(self):
        return self.fields.get("VERSION_ID", "")

    @property
    def codename(self):
        """VERSION_CODENAME, else UBUNTU_CODENAME, else from VERSION ('12 (bookworm)')."""
        for key in ("VERSION_CODENAME", "UBUNTU_CODENAME"):
            if self.fields.get(key):
                return self.fields[key].lower()
        m = re.search(r"\(([a-z]+)\)", self.fields.get("VERSION", ""))
        if m:
            return m.group(1)
        if self.id == "debian":
            return DEBIAN_CODENAMES.get(self.version_id.split(".")[0], "")
        return ""

    @property
    def pretty_name(self):
        return self.fields.get("PRETTY_NAME") or self.fields.get("NAME") or self.id


def parse(text):
    """os-release text -> dict; malformed lines are skipped (as systemd does)."""
    fields = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        try:
            parts = shlex.split(value, comments=False, posix=True)
        except ValueError:
            parts = [value.strip("'\"")]
        fields[key] = " ".join(parts) if parts else ""
    return fields


def read(root):
    """OsRelease of the image at `root` (a pyimgtools.fs.Root); raises when absent."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with root.open(path, "rb") as f:
                data = f.read(1 << 20)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise OsReleaseError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
        return OsRelease(parse(data.decode("utf-8", "replace")), path)
    raise OsReleaseError("cannot tell the distribution: no /etc/os-release or "
                         "/usr/lib/os-release in %s" % root.path)
