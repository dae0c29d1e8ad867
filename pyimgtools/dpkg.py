"""dpkg's database, read directly (no dpkg-query processes).

    db = Database(root)                       # root: pyimgtools.fs.Root
    db.packages      -> {dpkg name: Package}  # installed-or-known stanzas of `status`
    db.diversions    -> [Diversion]           # `diversions`, groups of three lines
    db.owners(paths) -> {path: [apt name, ...]}
    db.auto_installed()                       # apt's extended_states, Auto-Installed: 1
    db.manual_packages()                      # what `apt-mark showmanual` prints

Names (the one place they are decided): a package's *dpkg name* is what its
`info/*.list` file is called and what dpkg-query prints: `pkg` or, for
`Multi-Arch: same` packages, `pkg:arch`. Its *apt name* (`Package.apt_name`),
the name handed to apt-mark and apt-get, is the same: apt accepts `pkg:arch`
for every package, and Multi-Arch: same packages need it when several
architectures are installed. What apt *prints* is another spelling,
`apt_spelling()`: `pkg:arch` for a foreign architecture only; it is used to
read apt's output and where a command's output follows apt's (security
updates). `by_apt_spelling()` maps every spelling back to the package.

States: STATES, FILES_PRESENT_STATES (`Package.installed`), CONFIGURED_STATES
(`Package.configured`: what apt counts installed), INTERRUPTED_STATES.

Paths are compared after usrmerge canonicalisation on both sides: the
directory is resolved inside the root (`Root.realdir`), the last component is
kept, so `/lib/x86_64-linux-gnu/libc.so.6` (as libc6 ships it) and
`/usr/lib/x86_64-linux-gnu/libc.so.6` (as the loader may find it) are one file.

Finding owners is done for a small set of paths at a time: every `*.list` is
read once as bytes and only lines whose last component is one of the wanted
basenames are looked at, so the cost is one read of each list file.
"""

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pyimgtools.errors import DpkgError
from pyimgtools.fs import Canonical

ADMINDIR = "/var/lib/dpkg"
EXTENDED_STATES = "/var/lib/apt/extended_states"

# dpkg's package states (the third word of Status:, dpkg-query(1)), written
# once: every command asks these sets, none keeps a tuple of its own.
STATES = ("not-installed", "config-files", "half-installed", "unpacked",
          "half-configured", "triggers-awaited", "triggers-pending", "installed")
# The package's files are on disk (everything past config-files).
FILES_PRESENT_STATES = frozenset(STATES[2:])
# Unpacked and configured: apt counts it installed (its triggers may still run).
CONFIGURED_STATES = frozenset(("triggers-awaited", "triggers-pending", "installed"))
# dpkg stopped half-way: `dpkg --configure -a` must run before apt may.
INTERRUPTED_STATES = frozenset(("half-installed", "unpacked", "half-configured",
                                "triggers-awaited"))


def apt_spelling(name, arch, native):
    """A package's name as apt prints it (apt-mark showmanual, apt-get -s,
    apt-cache policy): bare for the native architecture and `all`, `name:arch`
    for a foreign one (apt's FullName(Pretty=true)). apt also accepts dpkg's
    name (`Package.dpkg_name`), which is what this project hands it."""
    return name if arch in (native, "all", "") else "%s:%s" % (name, arch)


def split_apt_spelling(spelling, native):
    """(name, arch) of a name as apt prints it; a bare name is the native
    architecture's (an `all` package reads as native: apt prints both alike)."""
    name, _, arch = spelling.partition(":")
    return name, arch or native


@dataclass
class Package:
    """One package of dpkg's status file, in dpkg's terms (Database.packages)."""
    name: str                       # Package: field
    arch: str = ""                  # Architecture: field
    version: str = ""
    want: str = ""                  # Status: WANT FLAG STATE
    flag: str = ""
    state: str = ""
    multi_arch: str = ""            # same, foreign, allowed or ""
    installed_size: Optional[int] = None   # KiB, as dpkg records it
    essential: bool = False
    priority: str = ""
    depends: str = ""               # relationship fields, as written (audit follows them)
    pre_depends: str = ""
    provides: str = ""

    @property
    def installed(self):
        """Its files are on disk (FILES_PRESENT_STATES)."""
        return self.state in FILES_PRESENT_STATES

    @property
    def configured(self):
        """apt counts it installed (CONFIGURED_STATES)."""
        return self.state in CONFIGURED_STATES

    @property
    def interrupted(self):
        """dpkg stopped half-way through it (INTERRUPTED_STATES)."""
        return self.state in INTERRUPTED_STATES

    @property
    def dpkg_name(self):
        """Name of the info/*.list file (and of dpkg-query's output)."""
        return "%s:%s" % (self.name, self.arch) if self.multi_arch == "same" else self.name

    @property
    def apt_name(self):
        """The name this project hands apt-mark and apt-get: dpkg's name (`pkg:arch`
        for Multi-Arch: same), which apt accepts for every package and which
        names one package where several architectures are installed."""
        return self.dpkg_name

    def apt_spelling(self, native):
        """The name as apt prints it (see apt_spelling())."""
        return apt_spelling(self.name, self.arch, native)


def by_apt_spelling(installed, native):
    """{name as apt-get prints it: Package} for installed packages.

    `apt-get -s` prints a native Multi-Arch: same package without `:arch`
    (`Purg libpq5`) while its dpkg/apt name is `libpq5:amd64`; a foreign one
    as `libc6:i386`. Every spelling maps to the package.
    """
    result = {}
    for pkg in installed.values():
        arch = native if pkg.arch == "all" else pkg.arch
        result["%s:%s" % (pkg.name, arch)] = pkg
        result["%s:%s" % (pkg.name, pkg.arch)] = pkg
        result[pkg.apt_name] = pkg
    for pkg in installed.values():
        if pkg.arch in (native, "all"):
            result[pkg.apt_spelling(native)] = pkg     # the native one wins the bare name
    return result


@dataclass
class Diversion:
    original: str      # the path the packaged file would have had
    diverted_to: str   # where it was moved
    package: Optional[str]   # the diverting package; None for a local diversion (`:`)


@dataclass
class OwnerIndex:
    """Result of Database.owners(): owners per asked path, and why."""
    owners: Dict[str, List[str]] = field(default_factory=dict)
    diverted: Dict[str, str] = field(default_factory=dict)   # path -> note


_WANTED = frozenset(("package", "status", "architecture", "multi-arch", "version",
                     "installed-size", "essential", "priority", "auto-installed",
                     "depends", "pre-depends", "provides"))


class ParseError(ValueError):
    """A deb822 file dpkg itself would refuse (its words: "line with no ':'")."""


def _parse_stanzas(data, strict=False):
    """deb822 stanzas of bytes `data` -> list of {field: value}.

    Only the fields this module uses are kept; continuation lines (starting
    with a blank) are skipped. strict=True raises ParseError where dpkg stops
    reading the file: a field line without ':' or a stanza without Package.
    """
    stanzas = []
    wanted = _WANTED
    lineno = 1
    for block in data.split(b"\n\n"):
        fields = {}
        start = lineno
        for line in block.split(b"\n"):
            lineno += 1
            if not line or line[:1] in (b" ", b"\t", b"#"):
                continue
            key, sep, value = line.partition(b":")
            if sep and key:
                key = key.decode("ascii", "replace").lower()
                if key in wanted:
                    fields[key] = value.strip().decode("utf-8", "replace")
            elif strict:
                raise ParseError("line %d: a field line with no ':'" % (lineno - 1))
        lineno += 1
        if strict and block.strip(b"\n") and not fields.get("package"):
            raise ParseError("line %d: a stanza without a Package field" % (start + (
                len(block) - len(block.lstrip(b"\n")))))
        if fields:
            stanzas.append(fields)
    return stanzas


def parse_status(data):
    """`status` file bytes -> {dpkg name: Package}; ParseError where dpkg would stop."""
    packages = {}
    for fields in _parse_stanzas(data, strict=True):
        name = fields.get("package")
        if not name:
            continue
        status = fields.get("status", "").split()
        size = fields.get("installed-size", "")
        pkg = Package(
            name=name,
            arch=fields.get("architecture", ""),
            version=fields.get("version", ""),
            want=status[0] if len(status) > 0 else "",
            flag=status[1] if len(status) > 1 else "",
            state=status[2] if len(status) > 2 else "",
            multi_arch=fields.get("multi-arch", ""),
            installed_size=int(size) if size.isdigit() else None,
            essential=fields.get("essential", "").lower() == "yes",
            priority=fields.get("priority", ""),
            depends=fields.get("depends", ""),
            pre_depends=fields.get("pre-depends", ""),
            provides=fields.get("provides", ""),
        )
        packages[pkg.dpkg_name] = pkg
    return packages


def parse_diversions(data):
    """`diversions` bytes -> [Diversion]; a trailing incomplete group is ignored."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    result = []
    for i in range(0, len(lines) - 2, 3):
        pkg = os.fsdecode(lines[i + 2])
        result.append(Diversion(os.fsdecode(lines[i]), os.fsdecode(lines[i + 1]),
                                None if pkg == ":" else pkg))
    return result


def parse_extended_states(data):
    """apt's extended_states bytes -> set of (package, arch) with Auto-Installed: 1."""
    auto = set()
    for fields in _parse_stanzas(data):
        if fields.get("auto-installed") == "1" and fields.get("package"):
            auto.add((fields["package"], fields.get("architecture", "")))
    return auto


class Database:
    """dpkg's database (and apt's auto flags) inside an image root."""

    def __init__(self, root, admindir=ADMINDIR):
        self.root = root
        self.admindir = admindir
        self._packages = None
        self._diversions = None
        self._canon = Canonical(root)

    # -- raw files ---------------------------------------------------------
    def _read(self, path, required=True):
        try:
            with open(self.root.host(self.root.realpath(path)), "rb") as f:
                return f.read()
        except FileNotFoundError:
            if required:
                raise DpkgError("no dpkg database: %s is missing%s" % (
                    path, "" if self.root.is_host else " in %s" % self.root.path)) from None
            return b""
        except OSError as exc:
            raise DpkgError("cannot read %s: %s" % (path, exc.strerror or exc)) from None

    @property
    def packages(self):
        if self._packages is None:
            path = self.admindir + "/status"
            try:
                self._packages = parse_status(self._read(path))
            except ParseError as exc:
                # apt and dpkg refuse such a file: no plan (dry run or not) is made from it
                raise DpkgError("cannot parse dpkg's %s%s: %s" % (
                    path, "" if self.root.is_host else " in %s" % self.root.path, exc)) from None
        return self._packages

    @property
    def diversions(self):
        if self._diversions is None:
            self._diversions = parse_diversions(self._read(self.admindir + "/diversions",
                                                           required=False))
        return self._diversions

    def native_arch(self):
        pkg = self.packages.get("dpkg")
        if pkg and pkg.arch:
            return pkg.arch
        data = self._read(self.admindir + "/arch", required=False).split()
        return data[0].decode("ascii", "replace") if data else "amd64"

    def installed(self):
        """{dpkg name: Package} of packages whose files are on disk."""
        return {n: p for n, p in self.packages.items() if p.installed}

    def auto_installed(self):
        """apt names of installed packages that apt considers automatically installed."""
        auto = parse_extended_states(self._read(EXTENDED_STATES, required=False))
        native = self.native_arch()
        result = set()
        for name, pkg in self.installed().items():
            arch = native if pkg.arch == "all" else pkg.arch
            if (pkg.name, arch) in auto or (pkg.name, pkg.arch) in auto:
                result.add(pkg.apt_name)
        return result

    def manual_packages(self):
        """apt names of installed packages not marked auto (apt-mark showmanual)."""
        auto = self.auto_installed()
        return {p.apt_name for p in self.installed().values() if p.apt_name not in auto}

    def showmanual(self):
        """The manual set spelled as `apt-mark showmanual` prints it, sorted: what
        build-deps saves, read the same way on --dry-run and for real."""
        native = self.native_arch()
        manual = self.manual_packages()
        return sorted({p.apt_spelling(native) for p in self.installed().values()
                       if p.apt_name in manual})

    # -- paths -------------------------------------------------------------
    def canonical(self, path):
        """usrmerge-canonical spelling of an in-image path (directory resolved);
        the path as it is when its directory cannot be resolved (a loop)."""
        path = os.fsdecode(path)
        try:
            return self._canon.realdir(path)
        except OSError:
            head, _, tail = path.rstrip("/").rpartition("/")
            return head + "/" + tail

    def list_files(self):
        """[(dpkg name, host path of its .list)] for every info/*.list."""
        info = self.root.host(self.root.realpath(self.admindir + "/info"))
        try:
            with os.scandir(info) as it:
                names = [e.name for e in it if e.name.endswith(".list")]
        except OSError as exc:
            raise DpkgError("cannot read %s/info: %s" % (self.admindir, exc.strerror or exc)) from None
        names.sort()
        return [(n[:-5], os.path.join(info, n)) for n in names]

    def owners(self, paths):
        """{path: sorted apt names} for each in-image path; [] when no package owns it.

        Resolved as dpkg resolves them: a diversion applies to the path exactly
        as a package lists it (dpkg does not canonicalise), and to every
        package but the diverting one (to every package for a local
        diversion). A package's file is at its listed path, or at the
        diverted-to path when its listed path is diverted away from it. Then
        both sides are compared in canonical spelling. So on trixie the
        `*.usr-is-merged` diversion of `/lib/.../libreadline.so.8` by
        libreadline8t64 moves nothing of libreadline8t64's (it lists the
        /usr/lib spelling), and the file under either spelling is its file.
        """
        paths = [os.fsdecode(p) for p in paths]
        result = OwnerIndex(owners={p: [] for p in paths})
        if not paths:
            return result
        canon_of = {p: self.canonical(p) for p in paths}
        wanted = set(canon_of.values())
        diverted = {d.original: d for d in self.diversions}
        basenames = {c.rpartition("/")[2] for c in wanted}
        for d in self.diversions:
            to_c, from_c = self.canonical(d.diverted_to), self.canonical(d.original)
            by = d.package or "local diversion"
            if to_c in wanted:
                basenames.add(d.original.rpartition("/")[2])   # the file as it was shipped
                note = "diverted from %s by %s" % (d.original, by)
            elif from_c in wanted:
                note = "diversion by %s to %s" % (by, d.diverted_to)
            else:
                continue
            for p, c in canon_of.items():
                if c in (to_c, from_c):
                    result.diverted[p] = note
        basenames = {os.fsencode(b) for b in basenames}
        # Lines ending in "/BASENAME". One regex per group of basenames with a
        # common first three bytes: re then scans for that literal prefix, which
        # is an order of magnitude faster than trying the alternation at every "/".
        groups = {}
        for b in sorted(basenames):
            groups.setdefault(b[:3], []).append(b)
        patterns = [re.compile(b"/(?:" + b"|".join(re.escape(b) for b in group) + b")(?=\n|\\Z)")
                    for group in groups.values()]
        found = {}        # canonical on-disk path -> set of dpkg names
        for dpkg_name, host_list in self.list_files():
            try:
                with open(host_list, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            # Diversions name packages without architecture (a package set).
            bare = dpkg_name.partition(":")[0]
            for pattern in patterns:
                for m in pattern.finditer(data):
                    start = data.rfind(b"\n", 0, m.start()) + 1
                    listed = os.fsdecode(data[start:m.end()])
                    d = diverted.get(listed)
                    if d is not None and d.package != bare:
                        c = self.canonical(d.diverted_to)
                    else:
                        c = self.canonical(listed)
                    if c in wanted:
                        found.setdefault(c, set()).add(dpkg_name)
        # A list file is named by the package's dpkg name, which is its apt
        # name too (pkg:arch for Multi-Arch: same): no need to read `status`.
        for p, c in canon_of.items():
            result.owners[p] = sorted(found.get(c, ()))
        return result
