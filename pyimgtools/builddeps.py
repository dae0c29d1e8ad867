"""build-deps: install build dependencies, later purge them and keep what runs.

    pyimgtools build-deps install gcc libpq-dev
    ... build, pip install ...
    pyimgtools build-deps purge --keep-runtime /opt/venv

`install` records `apt-mark showmanual` and the requested packages in a state
file (default /var/lib/pyimgtools/build-deps.json), runs `apt-get update`
when the lists are missing and installs with --no-install-recommends. Its
`--dry-run` simulates with `apt-get -s` (as root without lists it fetches
them for that and removes them again) and names and sizes the change with
the real run's code (pkgchange: the same lists and Installed-Size totals).

`purge` runs `ldconfig` when ld.so.cache lacks libraries of the ld.so.conf
directories (upstream's recipe runs it after `make install`), marks every
package auto, restores the saved manual set, marks manual the packages
`keep` finds for the --keep-runtime paths, runs `apt-get purge
-y --auto-remove -o APT::AutoRemove::RecommendsImportant=false`, cleans apt's
lists and cache, deletes the state file, and reports what went and what was
kept and why. Its plan (keep's analysis, the packages apt would remove) is
computed before anything changes: `--dry-run` simulates the purge with
`apt-get -s` against a temporary copy of apt's auto flags, so the real marks
are not touched.
"""

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List

from pyimgtools import apt, commandnames, keep, pkgchange
from pyimgtools.apt import lists_present
from pyimgtools.dpkg import Database, by_apt_spelling
from pyimgtools.errors import EXIT_FAILED, PyimgtoolsError
from pyimgtools.report import display_path, envelope, format_bytes, format_count

NAME = commandnames.BUILD_DEPS
STATE_FILE = "/var/lib/pyimgtools/build-deps.json"
STATE_VERSION = 1
PURGE_OPTIONS = ["-o", "APT::AutoRemove::RecommendsImportant=false"]


@dataclass
class PurgePlan:
    saved_manual: List[str]                 # from the state file or --saved
    keep_runtime: List[str]
    keep: "keep.KeepPlan"
    manual: List[str] = field(default_factory=list)        # the new manual set
    kept: Dict[str, List[str]] = field(default_factory=dict)  # runtime pkg -> libraries
    remove: List[str] = field(default_factory=list)        # what apt would remove (simulated)
    remove_bytes: int = 0


# -- state ------------------------------------------------------------------

def _host_path(root, path):
    return root.host(path)


def read_state(root, state_file):
    """The state file `build-deps install` saved (validated), or None when there is none."""
    host = _host_path(root, state_file)
    try:
        with open(host, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PyimgtoolsError("cannot read the state file %s: %s" % (state_file, exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("manual"), list):
        raise PyimgtoolsError("%s is not a pyimgtools build-deps state file" % state_file)
    for key in ("manual", "requested"):
        value = data.get(key, [])
        bad = value if not isinstance(value, list) else [
            v for v in value if not isinstance(v, str) or not v.strip() or " " in v]
        if bad:
            raise PyimgtoolsError("%s is not a pyimgtools build-deps state file: %r holds %s, "
                                  "not package names" % (state_file, key, _short(bad)))
    check_saved(data["manual"], state_file)
    return data


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_saved(manual, source):
    """An empty manual set would make the purge remove everything not kept (python3 too):
    `apt-mark showmanual` of an image always lists something, so refuse it."""
    if not manual:
        raise PyimgtoolsError("%s holds an empty manual package set: the purge would remove "
                              "every package not needed at runtime (python3 too); save "
                              "'apt-mark showmanual' before installing build dependencies"
                              % source)


def write_state(root, state_file, data):
    host = _host_path(root, state_file)
    os.makedirs(os.path.dirname(host), exist_ok=True)
    tmp = host + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, host)


def read_saved_listing(root, path):
    """A plain `apt-mark showmanual` listing (one name per line) read on the host."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        raise PyimgtoolsError("--saved %s: %s" % (path, exc.strerror or exc)) from None
    return [w for w in text.split() if w and not w.startswith("#")]


def _resolve_names(names, installed):
    """Saved names (as apt-mark showmanual prints them) -> installed apt names."""
    by_name = {}
    for pkg in installed.values():
        by_name.setdefault(pkg.name, []).append(pkg.apt_name)
        by_name.setdefault(pkg.apt_name, []).append(pkg.apt_name)
        by_name.setdefault("%s:%s" % (pkg.name, pkg.arch), []).append(pkg.apt_name)
    result = set()
    for n in names:
        result.update(by_name.get(n, []))
    return sorted(result)


# -- install ----------------------------------------------------------------

def _stream(out):
    if out.quiet:
        return None
    return out.stderr if out.json_mode else out.stdout


@dataclass
class InstallOutcome:
    """What install() did, or on a dry run would do."""
    requested: List[str]
    dry_run: bool
    state_file: str
    change: "pkgchange.Change"
    need_update: bool           # no apt lists: the real run runs apt-get update first
    simulated: bool = True      # dry run: False when apt-get -s could not run (no lists, not root)
    saved_manual: List[str] = field(default_factory=list)   # real run: the state file's manual set
    seconds: float = 0.0


def install(*, root, out, packages, state_file=STATE_FILE, dry_run=False):
    """`build-deps install`: save the manual set to `state_file` (a second
    install adds to it), then install `packages` with --no-install-recommends
    (apt-get update first when there are no lists): an InstallOutcome. A dry
    run simulates with apt-get -s and names and sizes the change as the real
    run does. The lines of what is (or would be) done go to `out` as they
    happen; install_report() prints the summary line, install_document() is
    the JSON document."""
    start = time.monotonic()
    packages = list(packages)
    state = read_state(root, state_file)
    db = Database(root)
    before = db.installed()
    need_update = not lists_present(root)
    if dry_run:
        out.line("would save the manual set (%s) to %s" % (
            format_count(len(db.showmanual()), "package"), state_file))
        refresh = need_update and os.geteuid() == 0
        if need_update and not refresh:
            out.line("would run apt-get update (no package lists)")
            out.line("would install: %s" % " ".join(packages))
            change = pkgchange.Change()
        else:
            change = _simulate_install(root, packages, before, db.native_arch(), refresh, out)
            for name in change.installed:
                out.line("would install: %s" % name)
            for name in change.upgraded:
                out.line("would upgrade: %s" % name)
        return InstallOutcome(packages, True, state_file, change, need_update,
                              simulated=not (need_update and not refresh),
                              seconds=time.monotonic() - start)

    apt.require_root("%s install" % NAME)
    apt.check_dpkg_state(None if root.is_host else root)
    if state is None:
        state = {"version": STATE_VERSION, "manual": db.showmanual(), "requested": [],
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # A second install before the purge adds to the same state.
    state["requested"] = sorted(set(state.get("requested", [])) | set(packages))
    write_state(root, state_file, state)
    if need_update:
        # update_lists fails on a mirror that cannot be reached (apt-get exits 0).
        apt.update_lists(root=None if root.is_host else root, stream=_stream(out))
    apt.apt_get(["install", "--no-install-recommends"] + packages,
                root=None if root.is_host else root, stream=_stream(out),
                what="apt-get install")
    change = pkgchange.diff(before, Database(root).installed())
    return InstallOutcome(packages, False, state_file, change, need_update,
                          saved_manual=state["manual"], seconds=time.monotonic() - start)


def install_report(outcome, out):
    """The summary line (the other lines were printed as they happened)."""
    packages, change = outcome.requested, outcome.change
    if not outcome.dry_run:
        out.summary("pyimgtools %s install: installed %s (%s)%s, saved %s manual packages "
                    "to %s in %.1f s" % (
                        NAME, format_count(len(change.installed), "package"),
                        format_bytes(change.installed_bytes),
                        ", upgraded %s" % format_count(len(change.upgraded), "package")
                        if change.upgraded else "",
                        len(outcome.saved_manual), outcome.state_file, outcome.seconds))
        return
    if not outcome.simulated:
        what = "would install %s after apt-get update" % " ".join(packages)
    elif change.installed or change.upgraded:
        what = "would install %s (%s)" % (format_count(len(change.installed), "package"),
                                           format_bytes(change.installed_bytes))
        if change.upgraded:
            what += ", upgrade %s" % format_count(len(change.upgraded), "package")
    else:
        what = "nothing to install (%s already installed)" % " ".join(packages)
    out.summary("pyimgtools %s install: %s (dry run)" % (NAME, what))


def removal(names, installed, native):
    """apt-get -s names -> (apt names, bytes), counted as the real run counts them
    (installed minus what is left, Installed-Size of each)."""
    spelled = by_apt_spelling(installed, native)
    pkgs = {spelled[n].apt_name: spelled[n] for n in names if n in spelled}
    unknown = [n for n in names if n not in spelled]
    return (sorted(pkgs) + sorted(unknown),
            sum((p.installed_size or 0) * 1024 for p in pkgs.values()))


def _simulate_install(root, packages, before, native, refresh, out):
    """The real run's Change as `apt-get -s install` predicts it. `refresh`: no lists
    yet (the real run runs apt-get update first): fetch them for the simulation and
    remove them again, so the dry run leaves the image as it was."""
    r = None if root.is_host else root
    try:
        if refresh:
            out.line("running apt-get update for the simulation (no package lists; "
                     "removed again afterwards)")
            apt.update_lists(root=r, stream=_stream(out) if out.verbose else None)
        result = apt.apt_get(["-s", "install", "--no-install-recommends"] + packages,
                             root=r, what="apt-get -s install")
        installs, removals = pkgchange.parse_simulation(result.output)
        return pkgchange.diff(before, pkgchange.predict(before, native, installs, removals,
                                                        root=r))
    finally:
        if refresh:
            apt.remove_lists(r)


def _simulated(output, *verbs):
    """Package names from `apt-get -s` lines such as 'Purg libpq-dev [15.8-0+deb12u1]'."""
    names = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in verbs:
            names.append(parts[1])
    return sorted(set(names))


# -- purge ------------------------------------------------------------------

def _extended_states_text(installed, manual, native):
    chunks = []
    for pkg in sorted(installed.values(), key=lambda p: (p.name, p.arch)):
        if pkg.apt_name in manual:
            continue
        chunks.append("Package: %s\nArchitecture: %s\nAuto-Installed: 1\n"
                      % (pkg.name, native if pkg.arch == "all" else pkg.arch))
    return "\n".join(chunks)


def simulate_purge(root, installed, manual, native):
    """Packages `apt-get purge --auto-remove` would remove if only `manual` were manual.

    Runs `apt-get -s` with Dir::State::extended_states pointing to a temporary
    file inside the root, so the real auto/manual marks are not touched.
    """
    tmp_dir = root.host("/tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    fd, host_tmp = tempfile.mkstemp(prefix="pyimgtools-extended-states-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_extended_states_text(installed, set(manual), native))
        in_image = "/tmp/" + os.path.basename(host_tmp)
        result = apt.apt_get(["-s", "-o", "Dir::State::extended_states=" + in_image,
                              "purge", "--auto-remove"] + PURGE_OPTIONS,
                             root=None if root.is_host else root, what="apt-get -s purge")
    finally:
        try:
            os.unlink(host_tmp)
        except OSError:
            pass
    return _simulated(result.output, "Purg", "Remv")


def plan_purge(root, saved, keep_paths, excludes, allow_missing, ld_library_path=None):
    db = Database(root)
    installed = db.installed()
    kp = keep.plan(root, keep_paths, excludes=excludes, ld_library_path=ld_library_path, db=db)
    saved_installed = _resolve_names(saved, installed)
    runtime = [p for p in kp.packages if p.name not in saved_installed]
    pp = PurgePlan(saved_manual=list(saved), keep_runtime=list(keep_paths), keep=kp)
    pp.manual = sorted(set(saved_installed) | {p.name for p in kp.packages})
    pp.kept = {p.name: p.libraries for p in runtime}
    return pp, db, installed


@dataclass
class PurgeOutcome:
    """What purge() did, or on a dry run would do (plan.remove), or why it refused."""
    plan: PurgePlan
    source: str                 # where the manual set came from (--saved FILE or the state file)
    dry_run: bool
    removed: List[str] = field(default_factory=list)   # real run: apt names purged
    removed_bytes: int = 0
    cleaned_bytes: int = 0      # apt lists and cached .debs removed afterwards
    refused: bool = False       # keep's analysis stopped it: nothing was changed
    allow_missing: bool = False
    allow_unreadable: bool = False
    seconds: float = 0.0


class PurgeRefused(PyimgtoolsError):
    """keep's analysis stopped the purge (unreadable paths, missing libraries)
    before anything changed; `outcome` is the refused PurgeOutcome, whose
    document says why."""

    def __init__(self, error, outcome):
        super().__init__(str(error), getattr(error, "exit_code", EXIT_FAILED))
        self.outcome = outcome


def purge(*, root, out, saved=None, state_file=STATE_FILE, keep_runtime=(), exclude=(),
          allow_missing=False, allow_unreadable=False, dry_run=False):
    """`build-deps purge`: restore the manual set saved in `saved` (an
    'apt-mark showmanual' listing) or the state file, keep the packages the
    ELF files under `keep_runtime` need, purge the rest: a PurgeOutcome. Its
    lines (kept packages, apt's output, would-remove) are printed as they come;
    purge_report prints the summary. PurgeRefused when keep's analysis stops it."""
    start = time.monotonic()
    manual, source, state = _saved_manual(root, saved, state_file)
    keep_paths = keep_runtime or list(keep.DEFAULT_PATHS)
    if not dry_run:
        apt.require_root("%s purge" % NAME)
        apt.check_dpkg_state(None if root.is_host else root)
    pp, db, installed = plan_purge(root, manual, keep_paths, exclude, allow_missing)
    keep.report_plan(out, pp.keep, "dry-run" if dry_run else "run")
    outcome = PurgeOutcome(pp, source, bool(dry_run), allow_missing=allow_missing,
                           allow_unreadable=allow_unreadable)
    try:
        keep.check_unreadable(out, pp.keep, allow_unreadable)
        keep.check_missing(out, pp.keep, allow_missing)
    except PyimgtoolsError as exc:
        outcome.refused, outcome.seconds = True, time.monotonic() - start
        raise PurgeRefused(exc, outcome) from None
    kept_lines = _kept_lines(pp)
    if dry_run:
        native = db.native_arch()
        pp.remove, pp.remove_bytes = removal(
            simulate_purge(root, installed, pp.manual, native), installed, native)
        for line in kept_lines:
            out.line(line)
        for name in pp.remove:
            out.line("would remove: %s" % name)
        # unreadable paths went on here (allowed), else the purge stopped before
        outcome.allow_unreadable = True
    else:
        outcome.removed, outcome.removed_bytes, outcome.cleaned_bytes = _purge_apply(
            root, out, pp, installed, kept_lines)
        if state is not None:
            _forget_state(root, state_file)
    outcome.seconds = time.monotonic() - start
    return outcome


def purge_report(outcome, out):
    """The summary line (the other lines were printed as they happened)."""
    pp = outcome.plan
    where = ", ".join(display_path(p) for p in pp.keep.paths)
    if outcome.dry_run:
        out.summary("pyimgtools %s purge: would remove %s (%s), keep %s for %s (dry run)"
                    % (NAME, format_count(len(pp.remove), "package"), format_bytes(pp.remove_bytes),
                       format_count(len(pp.kept), "runtime package"), where))
        return
    out.summary("pyimgtools %s purge: removed %s (%s), kept %s for %s, cleaned %s of apt "
                "lists and cache in %.1f s"
                % (NAME, format_count(len(outcome.removed), "package"),
                   format_bytes(outcome.removed_bytes),
                   format_count(len(pp.kept), "runtime package"), where,
                   format_bytes(outcome.cleaned_bytes), outcome.seconds))


def _saved_manual(root, saved, state_file):
    """(the saved manual set, where it came from, the state or None when --saved)."""
    if saved:
        listing = read_saved_listing(root, saved)
        check_saved(listing, "--saved " + saved)
        return listing, saved, None
    state = read_state(root, state_file)
    if state is None:
        raise PyimgtoolsError(
            "no build-deps state (%s is missing): run 'pyimgtools build-deps install PKG...' "
            "first, or pass --saved FILE with an 'apt-mark showmanual' listing saved "
            "before the build dependencies went in" % state_file)
    return state["manual"], state_file, state


def _kept_lines(pp):
    """'keep PKG: LIBS needed by FILE' for each runtime package the purge keeps."""
    lines = []
    for p in pp.keep.packages:
        if p.name in pp.kept:
            lines.append("keep %s: %s needed by %s" % (
                p.name, ", ".join(os.path.basename(l) for l in p.libraries),
                display_path(p.needed_by[0]) + (" and %d more" % (len(p.needed_by) - 1)
                                                if len(p.needed_by) > 1 else "")))
    return lines


def _purge_apply(root, out, pp, installed, kept_lines):
    """The purge itself: (removed apt names, their bytes, bytes of apt lists and cache cleaned)."""
    r = None if root.is_host else root
    stream = _stream(out)
    keep.apply_ldconfig(pp.keep, out)       # upstream runs ldconfig before the apt-mark dance
    everything = sorted(p.apt_name for p in installed.values())
    apt.apt_mark("auto", everything, root=r)
    apt.apt_mark("manual", pp.manual, root=r)
    for line in kept_lines:
        out.line(line)
    apt.apt_get(["purge", "--auto-remove"] + PURGE_OPTIONS, root=r, stream=stream,
                what="apt-get purge --auto-remove")
    cleaned_lists = apt.remove_lists(r)
    cleaned_debs = apt.remove_cached_debs(r)
    after = Database(root).installed()
    removed = sorted(installed[n].apt_name for n in set(installed) - set(after))
    removed_bytes = sum((installed[n].installed_size or 0) * 1024
                        for n in set(installed) - set(after))
    return removed, removed_bytes, cleaned_lists.bytes + cleaned_debs.bytes


def _forget_state(root, state_file):
    """Remove the state file once its manual set is restored (and the default's directory)."""
    try:
        os.unlink(root.host(state_file))
    except FileNotFoundError:
        pass
    if state_file == STATE_FILE:
        try:
            os.rmdir(root.host(os.path.dirname(STATE_FILE)))   # only when empty
        except OSError:
            pass


def install_document(outcome):
    """build-deps install's --json document (the envelope, docs/json.md): the
    requested packages and the pkgchange.Change (a dry run that could not
    simulate, before apt-get update, gives no change counts); a real run's
    state file and the manual set it saved."""
    packages, change, dry_run = outcome.requested, outcome.change, outcome.dry_run
    state_file, saved_manual = outcome.state_file, outcome.saved_manual
    counts = {"requested": len(packages)}
    if outcome.simulated:   # the numbers of the summary line; unknown before apt-get update
        counts.update(installed=len(change.installed), upgraded=len(change.upgraded),
                      bytes=change.installed_bytes)
    if dry_run:
        own = {"action": "install", "requested": packages, "install": change.installed,
               "install_bytes": change.installed_bytes, "upgrade": change.upgraded,
               "upgrade_bytes": change.upgraded_bytes, "remove": change.removed,
               "change_bytes": change.change_bytes, "update": outcome.need_update}
    else:
        own = {"action": "install", "requested": packages, "installed": change.installed,
               "installed_bytes": change.installed_bytes, "upgraded": change.upgraded,
               "upgraded_bytes": change.upgraded_bytes, "removed": change.removed,
               "change_bytes": change.change_bytes,
               "state_file": state_file, "saved_manual": saved_manual}
        counts["saved_manual"] = len(saved_manual)
    return envelope("%s install" % NAME, dry_run=dry_run, seconds=outcome.seconds, counts=counts,
                    results=own, **own)


def purge_document(outcome):
    """build-deps purge's --json document of a PurgeOutcome: refused (keep's
    analysis stopped it), a dry run's plan.remove, or what a real run removed
    and cleaned."""
    pp, source, dry_run, refused = outcome.plan, outcome.source, outcome.dry_run, outcome.refused
    removed, removed_bytes, cleaned_bytes = outcome.removed, outcome.removed_bytes, outcome.cleaned_bytes
    allow_missing, allow_unreadable, seconds = (outcome.allow_missing, outcome.allow_unreadable,
                                                outcome.seconds)
    own = {"action": "purge", "saved_from": source}
    if refused:
        own.update(removed=[])
        counts = {"removed": 0, "bytes": 0}
    elif dry_run:
        own.update(manual=pp.manual, kept=pp.kept, remove=pp.remove,
                   remove_bytes=pp.remove_bytes)
        counts = {"removed": len(pp.remove), "bytes": pp.remove_bytes}
    else:
        own.update(manual=pp.manual, kept=pp.kept, removed=removed, removed_bytes=removed_bytes,
                   cleaned_bytes=cleaned_bytes)
        counts = {"removed": len(removed), "bytes": removed_bytes}
    counts["kept"] = len(pp.kept)
    if not (refused or dry_run):
        counts["cleaned_bytes"] = cleaned_bytes
    own["keep"] = keep.plan_document(pp.keep)
    failures, warnings = keep.problems(pp.keep, allow_missing, allow_unreadable)
    return envelope("%s purge" % NAME, dry_run=dry_run, seconds=seconds, counts=counts,
                    results=own, warnings=warnings, failures=failures, **own)
