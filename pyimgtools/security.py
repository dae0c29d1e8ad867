"""`pyimgtools security-upgrade`: install exactly the pending security updates.

plan:  read /etc/os-release and the apt sources, refresh the lists, ask apt
       (`apt-cache policy`) for the package files and their release fields
       and, per installed package, the versions each file offers; pick the
       highest version from a security package file (Label Debian-Security,
       or Suite/Codename CODENAME-security) newer than the installed one.
apply: simulate `apt-get install pkg=version...` (no removals allowed, extra
       packages from other suites reported), install, restore auto marks,
       remove the apt lists and cached .debs.
"""

import concurrent.futures
import dataclasses
import os
import re
import time
from typing import Optional

from pyimgtools import apt, commandnames, debversion, dpkg, fs, osrelease, pkgchange
from pyimgtools.errors import EXIT_OK, EXIT_WORK_FOUND, PyimgtoolsError
from pyimgtools.report import envelope, format_bytes, format_count

NAME = commandnames.SECURITY_UPGRADE
TEMP_SOURCE = "/etc/apt/sources.list.d/zz-pyimgtools-security-temporary.list"

# Oldest supported releases (VERSION_ID); newer ones work without changes.
MIN_DEBIAN = 10     # buster
MIN_UBUNTU = (20, 4)  # focal

OTHER_DISTROS = {
    "alpine": "use 'apk upgrade --no-cache' (Alpine publishes fixes in the normal branch)",
    "wolfi": "use 'apk upgrade --no-cache'",
    "fedora": "use 'dnf upgrade --security -y'",
    "rhel": "use 'dnf upgrade --security -y'",
    "centos": "use 'dnf upgrade --security -y'",
    "rocky": "use 'dnf upgrade --security -y'",
    "almalinux": "use 'dnf upgrade --security -y'",
    "ol": "use 'dnf upgrade --security -y'",
    "amzn": "use 'dnf upgrade --security -y' (or 'yum update --security -y')",
    "opensuse-leap": "use 'zypper patch --category security'",
    "opensuse-tumbleweed": "use 'zypper dup' (Tumbleweed has no security-only channel)",
    "sles": "use 'zypper patch --category security'",
    "arch": "use 'pacman -Syu' (Arch has no security-only channel)",
}


@dataclasses.dataclass
class Distro:
    id: str
    codename: str
    pretty_name: str


@dataclasses.dataclass
class PackageFile:
    """One package file of `apt-cache policy`: its description and release fields."""
    key: str          # 'http://deb.debian.org/debian-security bookworm-security/main amd64 Packages'
    release: dict     # {'o': 'Debian', 'a': 'stable-security', 'n': 'bookworm-security', 'l': ...}

    @property
    def suite(self):
        return self.release.get("n") or self.release.get("a") or self.key


@dataclasses.dataclass
class Update:
    package: str      # name as apt takes it ('libc6', 'libc6:i386')
    installed: str
    candidate: str
    suite: str        # release codename (or suite) of the security package file


@dataclasses.dataclass
class Extra:
    package: str
    installed: str    # '' when newly installed
    version: str
    origin: str       # as `apt-get -s` prints it: 'Debian:12.8/oldstable'


@dataclasses.dataclass
class Plan:
    distribution: str
    codename: str
    security_sources: list
    added_source: str
    pending: list
    held: list


# ---------------------------------------------------------------- detection

def detect(root):
    """Distro of the image, or a one-line error saying what to use instead."""
    try:
        osr = osrelease.read(root)
    except PyimgtoolsError:
        if not root.exists("/var/lib/dpkg/status"):
            raise PyimgtoolsError("unsupported distribution: no /etc/os-release and no dpkg "
                                  "database; security-upgrade supports Debian (buster and "
                                  "newer) and Ubuntu (focal and newer)") from None
        raise
    ident = osr.id
    if ident not in ("debian", "ubuntu"):
        hint = OTHER_DISTROS.get(ident)
        if hint is None:
            hint = ("rebuild on an updated base image" if not osr.id_like
                    else "use the distribution's own security update tool")
        raise PyimgtoolsError("unsupported distribution %s (ID=%s): security-upgrade supports "
                              "Debian (buster and newer) and Ubuntu (focal and newer); %s"
                              % (osr.pretty_name, ident, hint))
    if not root.exists("/var/lib/dpkg/status") or not root.exists("/usr/bin/apt-get"):
        raise PyimgtoolsError("unsupported image %s: no dpkg database or no apt-get (a "
                              "distroless image?); rebuild it on an updated base image instead"
                              % osr.pretty_name)
    codename = osr.codename
    version = osr.version_id
    if ident == "debian":
        major = version.split(".")[0]
        if major.isdigit() and int(major) < MIN_DEBIAN:
            raise PyimgtoolsError("unsupported distribution %s: security-upgrade supports "
                                  "Debian buster (10) and newer" % osr.pretty_name)
        if not codename or codename == "sid":
            raise PyimgtoolsError("Debian %s has no security suite (unstable); use "
                                  "'apt-get upgrade'" % (codename or "without VERSION_CODENAME"))
    else:
        m = re.match(r"(\d+)\.(\d+)", version)
        if m and (int(m.group(1)), int(m.group(2))) < MIN_UBUNTU:
            raise PyimgtoolsError("unsupported distribution %s: security-upgrade supports "
                                  "Ubuntu focal (20.04) and newer" % osr.pretty_name)
        if not codename:
            raise PyimgtoolsError("cannot tell the Ubuntu release: no VERSION_CODENAME in %s"
                                  % osr.path)
    return Distro(ident, codename, osr.pretty_name)


def is_security_source(source, distro):
    """A configured source that serves the distribution's security suite."""
    if source.type != "deb" or not source.enabled:
        return False
    suite = source.suite.rstrip("/")
    if distro.id == "debian":
        return suite in (distro.codename + "-security", distro.codename + "/updates")
    return suite == distro.codename + "-security"


def is_security_file(release):
    """Judged from the release fields apt reports (never from the URL)."""
    label = release.get("l", "")
    origin = release.get("o", "")
    if label == "Debian-Security":
        return True
    if origin in ("Debian", "Ubuntu"):
        return (release.get("a", "").endswith("-security")
                or release.get("n", "").endswith("-security"))
    return False


def temporary_source(sources, distro):
    """One-line entry for the distribution's security suite, modelled on the main source."""
    main = None
    for s in sources:
        if s.type == "deb" and s.enabled and s.suite.rstrip("/") == distro.codename:
            main = s
            break
    comps = list(main.components) if main else ["main"]
    opts = ""
    if main is not None and main.options.get("signed-by") and "\n" not in main.options["signed-by"]:
        opts = "[signed-by=%s] " % main.options["signed-by"].split()[0]
    if distro.id == "debian":
        uri = "http://deb.debian.org/debian-security"
        if main is not None and main.uri.rstrip("/").endswith("/debian"):
            uri = main.uri.rstrip("/") + "-security"
        old = distro.codename in ("buster", "stretch", "jessie")
        suite = distro.codename + ("/updates" if old else "-security")
    else:
        uri = main.uri if main is not None else "http://security.ubuntu.com/ubuntu"
        suite = distro.codename + "-security"
    return "deb %s%s %s %s\n" % (opts, uri, suite, " ".join(comps))


# ---------------------------------------------------------------- parsing apt

_FILE_LINE = re.compile(r"\A\s*(-?\d+) (.+?)\s*\Z")


def parse_policy_files(text):
    """`apt-cache policy` (no arguments) -> {package file description: PackageFile}."""
    files = {}
    current = None
    for line in text.splitlines():
        if line.startswith("Pinned packages:"):
            break
        stripped = line.strip()
        if stripped.startswith("release "):
            if current is not None:
                fields = {}
                for part in stripped[len("release "):].split(","):
                    key, sep, value = part.partition("=")
                    if sep:
                        fields[key.strip()] = value.strip()
                current.release = fields
            continue
        if stripped.startswith("origin ") or not stripped or line.startswith("Package files:"):
            continue
        m = _FILE_LINE.match(line)
        if m:
            current = PackageFile(m.group(2), {})
            files[current.key] = current
    return files


_VERSION_LINE = re.compile(r"\A (\*\*\*|   ) (\S+) (-?\d+)\s*\Z")
_ENTRY_FILE_LINE = re.compile(r"\A {8}(-?\d+) (.+?)\s*\Z")


def parse_policy_packages(text):
    """`apt-cache policy PKG...` -> {header name: [(version, [file descriptions])]}."""
    result = {}
    name = None
    table = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            name = line[:-1]
            table = result.setdefault(name, [])
            continue
        if table is None:
            continue
        m = _VERSION_LINE.match(line)
        if m:
            table.append((m.group(2), []))
            continue
        m = _ENTRY_FILE_LINE.match(line)
        if m and table:
            table[-1][1].append(m.group(2))
    return result


def read_status(root):
    """[(name, arch, version, selection, state)] of dpkg's status (pyimgtools.dpkg)."""
    return [(p.name, p.arch, p.version, p.want, p.state)
            for p in dpkg.Database(root).packages.values()]


def compute_updates(installed, files, tables, native_arch):
    """Pending security updates (pure): (pending, held) lists of Update.

    installed: read_status() rows; files: parse_policy_files(); tables:
    parse_policy_packages().
    """
    pending, held = [], []
    for name, arch, version, selection, state in installed:
        if state not in dpkg.CONFIGURED_STATES:
            continue
        apt_name = dpkg.apt_spelling(name, arch, native_arch)
        table = tables.get(apt_name)
        if table is None and apt_name == name:
            table = tables.get("%s:%s" % (name, arch))
        if not table:
            continue
        best = None
        for candidate, descs in table:
            sec = [files[d] for d in descs if d in files and is_security_file(files[d].release)]
            if not sec:
                continue
            if debversion.compare(candidate, version) <= 0:
                continue
            if best is None or debversion.compare(candidate, best[0]) > 0:
                best = (candidate, sec[0].suite)
        if best is None:
            continue
        update = Update(apt_name, version, best[0], best[1])
        (held if selection == "hold" else pending).append(update)
    pending.sort(key=lambda u: u.package)
    held.sort(key=lambda u: u.package)
    return pending, held


_SIM_INST = re.compile(r"\AInst (\S+) (?:\[(\S+)\] )?\((\S+) (.*?)\)")
_SIM_REMV = re.compile(r"\ARemv (\S+)")


def parse_simulation(text):
    """`apt-get -s install` output -> (installs [Extra], removals [names])."""
    installs, removals = [], []
    for line in text.splitlines():
        m = _SIM_INST.match(line)
        if m:
            origin = re.sub(r"\s*\[[^\]]*\]\s*\Z", "", m.group(4)).strip()
            installs.append(Extra(m.group(1), m.group(2) or "", m.group(3), origin))
            continue
        m = _SIM_REMV.match(line)
        if m:
            removals.append(m.group(1))
    return installs, removals


# ---------------------------------------------------------------- the task

@dataclasses.dataclass
class Outcome:
    """What upgrade() did. mode: 'check', 'dry-run' or 'apply'; extras is None
    with --check, applied None unless applying."""
    mode: str
    plan: Plan
    extras: Optional[list] = None
    applied: Optional[list] = None
    lists_removed: bool = False
    seconds: float = 0.0
    # Installed-Size bytes (pkgchange.diff): announced by a dry run, measured by a real one
    install_bytes: Optional[int] = None
    installed_bytes: Optional[int] = None
    change_bytes: Optional[int] = None


def upgrade(*, root, out, check=False, dry_run=False, no_update=False, no_add_source=False,
            keep_lists=False, lock_timeout=apt.DEFAULT_LOCK_TIMEOUT):
    """Plan the pending security updates of `root`, and unless `check` or
    `dry_run` install them: an Outcome. The lines of what is held, pending or
    changed go to `out` as they happen; report() prints the summary line."""
    started = time.monotonic()
    distro = detect(root)
    mode = "check" if check else "dry-run" if dry_run else "apply"
    is_root = _preflight(root, out, mode)
    sources = apt.read_sources(root)
    security = [s for s in sources if is_security_source(s, distro)]
    stream = out._log if out.verbose else None
    lists_were_present = apt.lists_present(root)
    lists = _Lists(root, out, lock_timeout, stream)
    outcome = None
    try:
        if not security:
            lists.add_temporary_source(sources, distro, no_add_source, is_root)
        lists.refresh(is_root and not no_update, lists_were_present)
        plan = make_plan(root, distro, security, lists.added)
        for u in plan.held:
            out.line("held, skipped: %s %s -> %s (%s)" % (u.package, u.installed, u.candidate,
                                                           u.suite))
        outcome = Outcome(mode, plan)
        if mode == "check":
            for u in plan.pending:
                out.line("%s %s -> %s (%s)" % (u.package, u.installed, u.candidate, u.suite))
            return outcome
        outcome.extras = simulate(root, plan, lock_timeout) if plan.pending else []
        db = dpkg.Database(root)
        before = db.installed()
        if mode == "dry-run":
            # sized as the real run measures its change (pkgchange.diff)
            change = pkgchange.diff(before, pkgchange.predict(
                before, db.native_arch(),
                [(u.package, u.candidate) for u in plan.pending]
                + [(e.package, e.version) for e in outcome.extras], [], root=root))
            outcome.install_bytes = change.installed_bytes + change.upgraded_bytes
            outcome.change_bytes = change.change_bytes
            _print_changes(out, plan.pending, outcome.extras, "would upgrade ", "would install ")
            return outcome
        outcome.applied = apply(root, plan, lock_timeout, stream) if plan.pending else []
        change = pkgchange.diff(before, dpkg.Database(root).installed())
        outcome.installed_bytes = change.installed_bytes + change.upgraded_bytes
        outcome.change_bytes = change.change_bytes
        # Only now: a failed install raises above with what was and was not applied.
        _print_changes(out, outcome.applied, outcome.extras, "upgraded ", "installed ")
    finally:
        lists.remove_temporary_source()
        clean = mode == "apply" or (lists.updated and not lists_were_present)
        if clean and not keep_lists:
            lists.remove()
        if outcome is not None:     # --check and --dry-run return from the middle
            outcome.seconds = time.monotonic() - started
    outcome.lists_removed = not keep_lists
    return outcome


def _preflight(root, out, mode):
    """Whether this runs as root; refuses what cannot work before anything is changed."""
    is_root = os.geteuid() == 0
    if mode == "apply":
        apt.require_root("%s (applying updates)" % NAME)
    if not root.is_host and not is_root:
        raise PyimgtoolsError("--root other than / needs root (apt runs there through chroot)")
    if mode == "check":
        reason = apt.dpkg_interrupted(root)
        if reason:
            out.warn(reason + "; run 'dpkg --configure -a'")
    else:
        # The real run and its dry run refuse here alike (same call, same message).
        apt.check_dpkg_state(root)
    return is_root


class _Lists:
    """The apt lists during one run: the temporary security source, the
    refresh, and their removal afterwards."""

    def __init__(self, root, out, lock_timeout, stream):
        self.root, self.out, self.lock_timeout, self.stream = root, out, lock_timeout, stream
        self.added = ""
        self.updated = False

    def add_temporary_source(self, sources, distro, no_add_source, is_root):
        """Add the distribution's security source for this run (removed afterwards),
        or refuse when --no-add-source or not root."""
        where = ", ".join(apt.source_files(self.root)) or "no sources files"
        if no_add_source:
            raise PyimgtoolsError(
                "no %s security source configured (%s); add one or drop --no-add-source"
                % (distro.codename, where))
        if not is_root:
            raise PyimgtoolsError(
                "no %s security source configured (%s); run as root to add one for this "
                "run" % (distro.codename, where))
        self.added = temporary_source(sources, distro)
        self.out.line("no security source configured: adding '%s' for this run only"
                      % self.added.strip())
        # Through descriptors from the root down: a link in the image's /etc
        # cannot send the file (or its removal) out of the root.
        with fs.open_dir(self.root, os.path.dirname(TEMP_SOURCE), create=True) as parts:
            parts.write_atomic(os.path.basename(TEMP_SOURCE), (
                "# added by pyimgtools security-upgrade for one run; removed afterwards\n"
                + self.added).encode())

    def refresh(self, update_all, lists_were_present):
        """apt-get update: every list, or only the temporary source's (keeping the others)."""
        if update_all:
            self.out.detail("refreshing the apt lists (apt-get update)")
            apt.update_lists(self.root, lock_timeout=self.lock_timeout, stream=self.stream)
            self.updated = True
        elif self.added:
            # Only the temporary source, without deleting the other lists
            # (apt-get update with a restricted source list cleans the rest).
            apt.update_lists(self.root, lock_timeout=self.lock_timeout, stream=self.stream,
                             options=["-o", "Dir::Etc::sourcelist=" + TEMP_SOURCE,
                                      "-o", "Dir::Etc::sourceparts=-",
                                      "-o", "APT::Get::List-Cleanup=0"])
            self.updated = True
        elif not lists_were_present:
            raise PyimgtoolsError(
                "no apt lists in /var/lib/apt/lists: run 'apt-get update' first, or run as "
                "root without --no-update")

    def remove_temporary_source(self):
        if not self.added:
            return
        try:
            with fs.open_dir(self.root, os.path.dirname(TEMP_SOURCE)) as parts:
                parts.unlink(os.path.basename(TEMP_SOURCE))
        except FileNotFoundError:
            pass

    def remove(self):
        lists = apt.remove_lists(self.root)
        debs = apt.remove_cached_debs(self.root)
        self.out.detail("removed %d list files and %d cached files" % (lists.files, debs.files))


def exit_code(outcome):
    """100 when --check found pending updates, else 0."""
    return EXIT_WORK_FOUND if outcome.mode == "check" and outcome.plan.pending else EXIT_OK


def failure(outcome):
    """Always None: upgrade() raises what fails."""
    del outcome
    return None


def document(outcome):
    """The --json document of the outcome."""
    plan = outcome.plan
    own = {"distribution": plan.distribution, "codename": plan.codename,
           "security_sources": plan.security_sources, "added_source": plan.added_source or None,
           "pending": plan.pending, "held": plan.held}
    # the numbers of the summary line
    counts = {"updates": len(plan.pending if outcome.applied is None else outcome.applied)}
    if outcome.mode != "check":
        own["extras"] = outcome.extras
        counts["extras"] = len(outcome.extras)
    if outcome.mode == "dry-run":
        own.update(install_bytes=outcome.install_bytes, change_bytes=outcome.change_bytes)
        counts["bytes"] = outcome.install_bytes
    if outcome.mode == "apply":
        own.update(applied=outcome.applied, installed_bytes=outcome.installed_bytes,
                   change_bytes=outcome.change_bytes, lists_removed=outcome.lists_removed)
        counts["bytes"] = outcome.installed_bytes
    counts["held"] = len(plan.held)
    # --check changes nothing: not a dry run (docs/json.md); a failure raises, no document
    return envelope(NAME, dry_run=outcome.mode == "dry-run", seconds=outcome.seconds,
                    counts=counts, results=own, **own)


def report(outcome, out):
    """The summary line (the other lines were printed as they happened)."""
    plan = outcome.plan
    held = ", %d held" % len(plan.held) if plan.held else ""
    if outcome.mode == "check":
        text = "%s pending%s" % (format_count(len(plan.pending), "security update"), held)
    elif outcome.mode == "dry-run":
        text = "would install %s%s (%s)%s (dry run)" % (
            format_count(len(plan.pending), "security update"),
            " and %s" % format_count(len(outcome.extras), "extra package") if outcome.extras
            else "", format_bytes(outcome.install_bytes), held)
    else:
        text = "installed %s%s (%s)%s in %.1f s" % (
            format_count(len(outcome.applied), "security update"),
            " (%s from other suites)" % format_count(len(outcome.extras), "extra package")
            if outcome.extras else "", format_bytes(outcome.installed_bytes),
            ", skipped %s" % format_count(len(plan.held), "held package") if plan.held else "",
            outcome.seconds)
    out.summary("pyimgtools %s: %s" % (NAME, text))


def _print_changes(out, updates, extras, upgrade, install):
    for u in updates:
        out.line("%s%s %s -> %s (%s)" % (upgrade, u.package, u.installed, u.candidate, u.suite))
    for e in extras:
        out.line("%sextra from another suite: %s %s%s (%s)" % (
            install, e.package, e.installed + " -> " if e.installed else "", e.version, e.origin))


def query_names(installed, native):
    """Sorted apt names to ask `apt-cache policy` about: the configured packages of
    read_status() rows, spelled as apt prints them."""
    return sorted({dpkg.apt_spelling(name, arch, native)
                   for name, arch, _v, _sel, state in installed
                   if state in dpkg.CONFIGURED_STATES})


def make_plan(root, distro, security_sources, added):
    native = apt.native_architecture(root)
    installed = read_status(root)
    _files, pending, held = plan_updates(
        installed=installed, native_arch=native,
        apt_cache=lambda query: apt.apt_cache(query, root=root))
    return Plan(distro.id, distro.codename, [s.describe() for s in security_sources],
                added.strip(), pending, held)


def plan_updates(*, installed, native_arch, apt_cache, parallel=2):
    """The pending security updates: (package files, pending, held).

    installed: read_status() rows; apt_cache(arguments) -> the stdout of
    `apt-cache ARGUMENTS` (audit passes its read-only one); `parallel`
    apt-cache runs at a time.
    """
    names = query_names(installed, native_arch)
    queries = [["policy"]] + [["policy"] + names[i:i + 800] for i in range(0, len(names), 800)]
    # Each apt-cache run parses every list (Debian's images disable apt's
    # binary cache): run them side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        outputs = list(pool.map(apt_cache, queries))
    files = parse_policy_files(outputs[0])
    tables = {}
    for text in outputs[1:]:
        tables.update(parse_policy_packages(text))
    pending, held = compute_updates(installed, files, tables, native_arch)
    return files, pending, held


def _install_args(plan):
    return (["install", "--no-install-recommends", "--no-remove"]
            + ["%s=%s" % (u.package, u.candidate) for u in plan.pending])


def simulate(root, plan, lock_timeout):
    """Extras apt would install besides the plan; raises if apt would remove anything."""
    # Without --no-remove: the simulation must show the removals to name them.
    result = apt.apt_get(["-s", "install", "--no-install-recommends"]
                         + ["%s=%s" % (u.package, u.candidate) for u in plan.pending],
                         root=root, lock_timeout=lock_timeout, check=False,
                         what="apt-get -s install")
    installs, removals = parse_simulation(result.output)
    if removals:
        raise PyimgtoolsError(
            "applying the security updates would remove %s; nothing was changed"
            % ", ".join(removals))
    if result.returncode != 0:
        raise PyimgtoolsError(apt.failure_message(result, "apt-get -s install")
                              + "; nothing was changed")
    planned = {u.package for u in plan.pending}
    return [e for e in installs if e.package not in planned]


def apply(root, plan, lock_timeout, stream):
    """Install the plan; restore auto marks; returns the applied Updates."""
    auto_before = set(apt.apt_mark_showauto(root))
    result = apt.apt_get(_install_args(plan), root=root, lock_timeout=lock_timeout,
                         stream=stream, check=False, what="apt-get install")
    now = {}
    native = apt.native_architecture(root)
    for name, arch, version, _sel, state in read_status(root):
        now[dpkg.apt_spelling(name, arch, native)] = (version, state)
    applied = [u for u in plan.pending
               if now.get(u.package, ("", ""))[0] == u.candidate
               and now[u.package][1] == "installed"]
    # apt-get install marks the packages it was given as manually installed.
    planned = {u.package for u in plan.pending}
    remark = sorted(p for p in auto_before if p in planned)
    if remark:
        try:
            apt.apt_mark("auto", remark, root=root)
        except PyimgtoolsError:
            pass
    if result.returncode != 0 or len(applied) != len(plan.pending):
        done = {u.package for u in applied}
        missing = [u.package for u in plan.pending if u.package not in done]
        raise PyimgtoolsError("%s; applied %d of %d security updates (%s), not applied: %s" % (
            apt.failure_message(result, "apt-get install") if result.returncode
            else "apt-get install did not install every planned version",
            len(applied), len(plan.pending), ", ".join(sorted(done)) or "none",
            ", ".join(missing)))
    return applied
