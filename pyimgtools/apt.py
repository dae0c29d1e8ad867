"""apt: sources (one-line and deb822), non-interactive apt-get / apt-mark /
apt-cache invocation, locks, cleaning, dpkg state.

Stable API (other commands rely on it; extend, do not rename):

    NONINTERACTIVE_ENV            env vars for every apt/dpkg run
    DPKG_OPTIONS                  ("-o", "Dpkg::Options::=--force-confdef", "-o", ...confold)
    DEFAULT_LOCK_TIMEOUT          60 (seconds)
    noninteractive_env(base=None) -> dict      os.environ (or base) + NONINTERACTIVE_ENV
    require_root(action)          raises AptError unless euid 0
    apt_get(args, root=None, lock_timeout=60, stream=None, what=None) -> AptResult
        runs `apt-get -y -q DPKG_OPTIONS -o DPkg::Lock::Timeout=N ARGS`; raises
        AptError (one line, exit 1) on failure; waits for the apt/dpkg locks
        up to lock_timeout seconds, then raises a clear "lock held" error.
    apt_cache(args, root=None) -> str          stdout of `apt-cache ARGS` (LC_ALL=C)
    apt_mark_showmanual(root=None) -> list     package names
    apt_mark(mode, packages, root=None)        mode in "manual", "auto", "hold", "unhold"
    LEFTOVERS                                  where apt leaves files an image does not need
    remove_lists(root=None) -> CleanResult     everything under /var/lib/apt/lists
    remove_cached_debs(root=None) -> CleanResult  /var/cache/apt/archives/*.deb, partial/*
                                               and /var/cache/apt/*.bin
    lists_present(root=None) -> bool           a package index is there
    dpkg_interrupted(root=None) -> str|None    why dpkg's state is interrupted, or None
    check_dpkg_state(root=None)                raises AptError when interrupted

`root` is a pyimgtools.fs.Root, a path, or None for "/". Commands against a
root other than "/" run through chroot(8) (so they need root), files are
read and removed inside the root.
"""

import dataclasses
import os
import re
import stat
import subprocess
import time

from pyimgtools import dpkg, fs
from pyimgtools.errors import AptError

DEFAULT_LOCK_TIMEOUT = 60

NONINTERACTIVE_ENV = {
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
    "APT_LISTCHANGES_FRONTEND": "none",
    "APT_LISTBUGS_FRONTEND": "none",
    "NEEDRESTART_MODE": "l",
    "UCF_FORCE_CONFFOLD": "1",
    # apt's messages are parsed (errors, lock messages): keep them untranslated.
    "LC_ALL": "C",
    "LANGUAGE": "",
}

# Keep existing conffiles, take the maintainer's default where there is one:
# dpkg(1) needs both options to never prompt.
DPKG_OPTIONS = ("-o", "Dpkg::Options::=--force-confdef",
                "-o", "Dpkg::Options::=--force-confold")

_LOCK_PATTERNS = (
    "Could not get lock",
    "Unable to acquire the dpkg frontend lock",
    "Unable to lock directory",
    "Unable to lock the administration directory",
    "is another process using it",
)
_LOCK_POLL = 2.0


@dataclasses.dataclass
class AptResult:
    """What an apt run printed (stdout and stderr merged, in order)."""
    argv: list
    returncode: int
    output: str
    errors: list      # lines starting with "E: " (prefix removed)
    warnings: list    # lines starting with "W: " (prefix removed)


@dataclasses.dataclass
class CleanResult:
    files: int = 0
    bytes: int = 0
    failed: list = dataclasses.field(default_factory=list)   # (in-image path, reason)


def noninteractive_env(base=None):
    env = dict(os.environ if base is None else base)
    env.update(NONINTERACTIVE_ENV)
    return env


def require_root(action="this command"):
    """Raise a one-line error unless running as root (euid 0)."""
    if os.geteuid() != 0:
        raise AptError("%s needs root (run it as root, e.g. in a Dockerfile RUN step)" % action)


def _root_path(root):
    if root is None:
        return "/"
    path = getattr(root, "path", root)
    return os.path.abspath(os.fsdecode(path))


def _host(root, path):
    base = _root_path(root)
    if base == "/":
        return path
    return base + "/" + path.lstrip("/")


def _prefix(root):
    base = _root_path(root)
    return [] if base == "/" else ["chroot", base]


def _one_line(text):
    return " ".join(str(text).split())


def _run(argv, stream=None, env=None):
    """Run argv with stdout+stderr merged; copy lines to `stream` as they come."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env or noninteractive_env())
    except OSError as exc:
        raise AptError("cannot run %s: %s" % (argv[0] if argv[0] != "chroot" else argv[2],
                                                     exc.strerror or exc)) from None
    chunks = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace")
        chunks.append(line)
        if stream is not None:
            stream.write(line)
            stream.flush()
    proc.stdout.close()
    rc = proc.wait()
    output = "".join(chunks)
    errors, warnings = [], []
    for line in output.splitlines():
        if line.startswith("E: "):
            errors.append(line[3:].strip())
        elif line.startswith("W: "):
            warnings.append(line[3:].strip())
    return AptResult(list(argv), rc, output, errors, warnings)


def _is_lock_error(result):
    text = "\n".join(result.errors) or result.output
    return any(p in text for p in _LOCK_PATTERNS)


def failure_message(result, what):
    """One line for a failed apt run: the first E: line, else the last output line."""
    if result.errors:
        # apt often prints a generic line last ("Some index files failed..."): the
        # first error names the real cause.
        detail = result.errors[0]
    else:
        lines = [l for l in result.output.splitlines() if l.strip()]
        detail = lines[-1] if lines else "exit status %d" % result.returncode
    return "%s failed: %s" % (what, _one_line(detail))


def apt_get(args, root=None, lock_timeout=DEFAULT_LOCK_TIMEOUT, stream=None, what=None,
            check=True):
    """Run `apt-get -y -q <dpkg options> ARGS` non-interactively.

    Waits for the apt/dpkg locks up to `lock_timeout` seconds (apt's own
    DPkg::Lock::Timeout for the dpkg frontend lock, apt >= 1.9.11, plus
    retries for the lists lock), then raises "lock held". With check=True a
    failure raises AptError with one line; else the AptResult is
    returned as is. `stream` receives apt's output as it comes (or None).
    """
    what = what or "apt-get " + " ".join(a for a in args if not a.startswith("-"))[:60]
    deadline = time.monotonic() + max(0, lock_timeout)
    while True:
        remaining = max(0, int(deadline - time.monotonic()))
        argv = (_prefix(root) + ["apt-get", "-y", "-q"] + list(DPKG_OPTIONS)
                + ["-o", "DPkg::Lock::Timeout=%d" % remaining] + list(args))
        result = _run(argv, stream=stream)
        if result.returncode == 0:
            return result
        if _is_lock_error(result):
            if time.monotonic() < deadline:
                time.sleep(min(_LOCK_POLL, max(0.1, deadline - time.monotonic())))
                continue
            raise AptError(
                "%s: the apt/dpkg lock is still held after %d s (%s); wait for the other "
                "apt/dpkg process or raise --lock-timeout"
                % (what, lock_timeout, _one_line(result.errors[0] if result.errors else "lock")))
        if check:
            raise AptError(failure_message(result, what))
        return result


def apt_cache(args, root=None):
    """stdout of `apt-cache ARGS` (untranslated); raises one line on failure."""
    argv = _prefix(root) + ["apt-cache"] + list(args)
    return _capture(argv, "apt-cache " + (args[0] if args else ""))


def _capture(argv, what):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=noninteractive_env())
    except OSError as exc:
        raise AptError("cannot run %s: %s" % (what, exc.strerror or exc)) from None
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")
        lines = [l[3:] if l.startswith("E: ") else l for l in err.splitlines() if l.strip()]
        raise AptError("%s failed: %s" % (what, _one_line(
            lines[0] if lines else "exit status %d" % proc.returncode)))
    return out


def apt_mark_showmanual(root=None):
    return _capture(_prefix(root) + ["apt-mark", "showmanual"], "apt-mark showmanual").split()


def apt_mark(mode, packages, root=None):
    """`apt-mark MODE PKG...` in chunks; mode is manual, auto, hold or unhold."""
    if mode not in ("manual", "auto", "hold", "unhold"):
        raise ValueError("apt-mark mode %r" % mode)
    packages = list(packages)
    for i in range(0, len(packages), 500):
        _capture(_prefix(root) + ["apt-mark", mode] + packages[i:i + 500], "apt-mark " + mode)


def _clean(root, directory, wanted, result):
    """Remove the entries of the in-image `directory` that `wanted(name, is_dir)` selects.

    Goes through pyimgtools.fs: the directory is reached from the root down
    without following a link out of the root, entries are removed by
    descriptor (symlinks removed, never followed).
    """
    try:
        d = fs.open_dir(root, directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    with d:
        names = []
        for name in d.names():
            try:
                is_dir = stat.S_ISDIR(d.lstat(name).st_mode)
            except FileNotFoundError:
                continue
            if wanted(name, is_dir):
                names.append(name)
        done = d.remove(names)
    result.files += done.files
    result.bytes += done.bytes
    result.failed.extend(done.failed)


def _raise_failed(result, what):
    if result.failed:
        path, reason = result.failed[0]
        more = " (and %d more)" % (len(result.failed) - 1) if len(result.failed) > 1 else ""
        raise AptError("cannot remove %s: %s: %s%s" % (what, path, reason, more))


def _real_dir(root, path):
    """Host path of an in-image directory, or None if it is not a real directory."""
    host = _host(root, path)
    try:
        st = os.lstat(host)
    except OSError:
        return None
    return host if stat.S_ISDIR(st.st_mode) else None


# --------------------------------------------------------------------------
# apt's leftovers: the one definition that prune --caches, audit and the
# commands that run apt (remove_lists, remove_cached_debs) share.

LISTS = "/var/lib/apt/lists"


@dataclasses.dataclass(frozen=True)
class Leftover:
    """A directory where apt leaves files a finished image does not need."""
    kind: str             # "lists", "debs" or "pkgcache" (audit's finding apt-KIND)
    directory: str        # in-image path
    suffix: str = ""      # the files that go end so ("": every file)
    whole: bool = False   # every entry goes, directories too (rm -rf DIR/*)

    def wants(self, name, is_dir):
        """Does the entry `name` of the directory go?"""
        if self.whole:
            return True
        return not is_dir and name.endswith(self.suffix)

    @staticmethod
    def reported(name):
        """Worth naming as a leftover: not the empty lock file every apt run recreates."""
        return name != "lock"


LEFTOVERS = (
    Leftover("debs", "/var/cache/apt/archives", ".deb"),
    # downloads apt did not finish (*.deb, *.FAILED): `apt-get clean` empties it
    Leftover("debs", "/var/cache/apt/archives/partial"),
    Leftover("pkgcache", "/var/cache/apt", ".bin"),
    Leftover("lists", LISTS, whole=True),
)


def remove_lists(root=None):
    """Empty /var/lib/apt/lists (like `rm -rf /var/lib/apt/lists/*` run inside the root)."""
    result = CleanResult()
    for leftover in LEFTOVERS:
        if leftover.kind == "lists":
            _clean(root, leftover.directory, leftover.wants, result)
    _raise_failed(result, "the apt lists")
    return result


def remove_cached_debs(root=None):
    """Remove downloaded .debs (archives/, archives/partial/) and apt's *.bin caches."""
    result = CleanResult()
    for leftover in LEFTOVERS:
        if leftover.kind != "lists":
            _clean(root, leftover.directory, leftover.wants, result)
    _raise_failed(result, "apt's cached files")
    return result


def dpkg_interrupted(root=None):
    """Why dpkg's database is in an interrupted state, or None when it is clean."""
    updates = _real_dir(root, "/var/lib/dpkg/updates")
    if updates is not None:
        with os.scandir(updates) as it:
            pending = [e.name for e in it if e.name.isdigit()]
        if pending:
            return "dpkg was interrupted (%d journal file(s) in /var/lib/dpkg/updates)" % len(pending)
    root = fs.as_root(root)
    if not root.exists(dpkg.ADMINDIR + "/status"):
        return None
    bad = ["%s (%s)" % (p.name, p.state) for p in dpkg.Database(root).packages.values()
           if p.interrupted]
    if bad:
        return "dpkg left %d package(s) half-installed: %s" % (
            len(bad), ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else ""))
    return None


def check_dpkg_state(root=None):
    reason = dpkg_interrupted(root)
    if reason:
        raise AptError("%s; run 'dpkg --configure -a' (and 'apt-get -f install') "
                       "first" % reason)


# --------------------------------------------------------------------------
# Sources: one-line sources.list(5) and deb822 *.sources, in apt's order.

SOURCES_LIST = "/etc/apt/sources.list"
SOURCES_PARTS = "/etc/apt/sources.list.d"
_PART_NAME = re.compile(r"\A[A-Za-z0-9_.\-]+\.(list|sources)\Z")


@dataclasses.dataclass
class Source:
    """One (type, URI, suite) entry of the apt sources, as apt expands them."""
    type: str            # "deb" or "deb-src"
    uri: str
    suite: str
    components: list
    options: dict        # one-line [key=value] options / deb822 fields (lower-case keys)
    file: str            # in-image path of the file it came from
    line: int            # 1-based line of the entry (deb822: of the stanza's first field)
    enabled: bool = True

    def describe(self):
        """'http://deb.debian.org/debian bookworm-security' (how apt names it in errors)."""
        return ("%s %s" % (self.uri, self.suite)).strip()


def _strip_comment(line):
    pos = line.find("#")
    return line if pos < 0 else line[:pos]


def parse_one_line(text, file="sources.list"):
    """Entries of a one-line style file. Malformed lines raise AptError naming the line."""
    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        words = line.split(None, 1)
        kind = words[0]
        if kind not in ("deb", "deb-src"):
            raise AptError("%s:%d: unknown type %r (expected deb or deb-src)"
                           % (file, lineno, kind))
        rest = words[1] if len(words) > 1 else ""
        options = {}
        rest = rest.lstrip()
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise AptError("%s:%d: unterminated [ option list" % (file, lineno))
            for opt in rest[1:end].split():
                key, sep, value = opt.partition("=")
                if not sep:
                    raise AptError("%s:%d: malformed option %r" % (file, lineno, opt))
                key = key.rstrip("+-").lower()
                options[key] = value
            rest = rest[end + 1:]
        parts = rest.split()
        if len(parts) < 2:
            raise AptError("%s:%d: expected 'URI SUITE [COMPONENT...]'" % (file, lineno))
        uri, suite, comps = parts[0], parts[1], parts[2:]
        if not suite.endswith("/") and not comps:
            raise AptError("%s:%d: no components for suite %s" % (file, lineno, suite))
        entries.append(Source(kind, uri, suite, comps, options, file, lineno, True))
    return entries


def _deb822_stanzas(text, file):
    """[(first line number, {lower-case field: value})] of a deb822 file."""
    stanzas = []
    fields, start, key = {}, None, None
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append((start, fields))
            fields, start, key = {}, None, None
            continue
        if raw[0] in " \t":
            if key is None:
                raise AptError("%s:%d: continuation line outside a field" % (file, lineno))
            cont = raw.strip()
            fields[key] += "\n" + ("" if cont == "." else cont)
            continue
        name, sep, value = raw.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise AptError("%s:%d: expected 'Field: value'" % (file, lineno))
        key = name.strip().lower()
        fields[key] = value.strip()
        if start is None:
            start = lineno
    if fields:
        stanzas.append((start, fields))
    return stanzas


def parse_deb822(text, file="debian.sources"):
    """Entries of a deb822 .sources file (disabled stanzas kept with enabled=False)."""
    entries = []
    for lineno, fields in _deb822_stanzas(text, file):
        types = fields.get("types", "").split()
        uris = fields.get("uris", "").split()
        suites = fields.get("suites", "").split()
        comps = fields.get("components", "").split()
        if not types or not uris or not suites:
            raise AptError("%s:%d: a stanza needs Types, URIs and Suites" % (file, lineno))
        enabled = fields.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
        options = {k: v for k, v in fields.items()
                   if k not in ("types", "uris", "suites", "components")}
        for kind in types:
            if kind not in ("deb", "deb-src"):
                raise AptError("%s:%d: unknown type %r" % (file, lineno, kind))
            for uri in uris:
                for suite in suites:
                    if not suite.endswith("/") and not comps:
                        raise AptError("%s:%d: no Components for suite %s"
                                       % (file, lineno, suite))
                    entries.append(Source(kind, uri, suite, list(comps), dict(options),
                                          file, lineno, enabled))
    return entries


def source_files(root=None):
    """In-image paths of the sources files apt reads, in apt's order:
    sources.list, then sources.list.d/*.list and *.sources in lexical order
    (names of [A-Za-z0-9_.-] only; others are ignored, as apt does)."""
    files = []
    if os.path.isfile(_host(root, SOURCES_LIST)):
        files.append(SOURCES_LIST)
    parts = _real_dir(root, SOURCES_PARTS)
    if parts is not None:
        names = sorted(n for n in os.listdir(parts) if _PART_NAME.match(n)
                       and os.path.isfile(os.path.join(parts, n)))
        files.extend(SOURCES_PARTS + "/" + n for n in names)
    return files


def read_sources(root=None):
    """Every Source of the apt configuration in apt's order (disabled ones included)."""
    entries = []
    for path in source_files(root):
        try:
            with open(_host(root, path), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as exc:
            raise AptError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
        parse = parse_deb822 if path.endswith(".sources") else parse_one_line
        entries.extend(parse(text, path))
    return entries


# --------------------------------------------------------------------------
# Refreshing the lists; small queries.

_ITEM_LINE = re.compile(r"\A(Get|Hit|Ign|Err):(\d+) (.*?)\s*\Z")


def update_failures(result):
    """['URI SUITE FILE: reason', ...] from `apt-get update` output (apt exits 0 on them).

    An item fails when its last status line is "Err:N" (earlier Err lines of
    an item can be fallbacks that succeed later, e.g. other compressions of
    a file: repository's Packages). E: lines and "Failed to fetch" warnings
    count too.
    """
    last = {}
    lines = result.output.splitlines()
    for i, line in enumerate(lines):
        m = _ITEM_LINE.match(line)
        if not m:
            continue
        reason = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1][:1].isspace() else ""
        last[m.group(2)] = (m.group(1), m.group(3), reason)
    failures = ["%s: %s" % (desc, reason) if reason else desc
                for status, desc, reason in last.values() if status == "Err"]
    for err in result.errors:
        if not err.startswith("Some index files failed"):
            failures.append(err)
    if not failures:
        failures = [w for w in result.warnings if w.startswith("Failed to fetch")]
    return failures


def update_lists(root=None, lock_timeout=DEFAULT_LOCK_TIMEOUT, stream=None, options=()):
    """`apt-get update`; raises one line naming the first source that failed.

    apt-get update exits 0 when a source cannot be fetched (it keeps old lists
    or none): that is an error here, a stale or missing list would be silently
    wrong. `options` are extra apt-get arguments (e.g. a restricted source list
    with "-o", "APT::Get::List-Cleanup=0").
    """
    result = apt_get(["update"] + list(options), root=root, lock_timeout=lock_timeout,
                     stream=stream, what="apt-get update", check=False)
    failures = update_failures(result)
    if failures or result.returncode != 0:
        detail = failures[0] if failures else failure_message(result, "apt-get update")
        more = " (and %d more)" % (len(failures) - 1) if len(failures) > 1 else ""
        raise AptError("cannot refresh the apt lists: %s%s" % (_one_line(detail), more))
    return result


def lists_present(root=None):
    """True when /var/lib/apt/lists holds a package index (a `*_Packages*` file), so
    apt can install without `apt-get update` first."""
    lists = _real_dir(root, LISTS)
    if lists is None:
        return False
    with os.scandir(lists) as it:
        return any("_Packages" in e.name and e.is_file() for e in it)


def apt_mark_showauto(root=None):
    return _capture(_prefix(root) + ["apt-mark", "showauto"], "apt-mark showauto").split()


def native_architecture(root=None):
    return _capture(_prefix(root) + ["dpkg", "--print-architecture"],
                    "dpkg --print-architecture").strip()
