"""What an apt run changes in dpkg's database, predicted and measured by one function.

A dry run predicts the database after the run: the installed packages, less
what `apt-get -s` removes, plus what it installs as `apt-cache show
NAME=VERSION` describes it, read with dpkg's own status parser (the names,
Multi-Arch spelling and Installed-Size dpkg will record). A real run reads
the database after. `diff(before, after)` turns either into the same lists
and byte totals, so a dry run announces what the real run then reports.
"""

import re
from dataclasses import dataclass, field
from typing import List

from pyimgtools import apt, dpkg

_INST = re.compile(r"\AInst (\S+) (?:\[\S+\] )?\((\S+) ")
_REMOVE = re.compile(r"\A(?:Remv|Purg) (\S+)")
_CHUNK = 500


@dataclass
class Change:
    installed: List[str] = field(default_factory=list)   # apt names, new packages
    upgraded: List[str] = field(default_factory=list)    # another version than before
    removed: List[str] = field(default_factory=list)
    installed_bytes: int = 0        # Installed-Size of the new packages
    upgraded_bytes: int = 0         # ... of the upgraded packages' new versions
    removed_bytes: int = 0
    change_bytes: int = 0           # after minus before, over all of them


def _size(pkg):
    return (pkg.installed_size or 0) * 1024


def diff(before, after):
    """{dpkg name: Package} before and after -> Change."""
    new = set(after) - set(before)
    gone = set(before) - set(after)
    other = {n for n in set(after) & set(before) if after[n].version != before[n].version}
    change = Change(sorted(after[n].apt_name for n in new),
                    sorted(after[n].apt_name for n in other),
                    sorted(before[n].apt_name for n in gone))
    change.installed_bytes = sum(_size(after[n]) for n in new)
    change.upgraded_bytes = sum(_size(after[n]) for n in other)
    change.removed_bytes = sum(_size(before[n]) for n in gone)
    change.change_bytes = (change.installed_bytes + change.upgraded_bytes - change.removed_bytes
                           - sum(_size(before[n]) for n in other))
    return change


def parse_simulation(text):
    """`apt-get -s` output -> ([(name as apt prints it, version)] installed, [names] removed)."""
    installs, removals = [], []
    for line in text.splitlines():
        m = _INST.match(line)
        if m:
            installs.append((m.group(1), m.group(2)))
            continue
        m = _REMOVE.match(line)
        if m:
            removals.append(m.group(1))
    return installs, removals


def describe(installs, native, root=None):
    """[(apt spelling, version)] -> {apt spelling: Package} from `apt-cache show`."""
    found = {}
    for i in range(0, len(installs), _CHUNK):
        chunk = installs[i:i + _CHUNK]
        text = apt.apt_cache(["show"] + ["%s=%s" % pair for pair in chunk], root=root)
        spelled = dpkg.by_apt_spelling(dpkg.parse_status(text.encode("utf-8")), native)
        for name, version in chunk:
            pkg = spelled.get(name)
            if pkg is not None and pkg.version == version:
                found[name] = pkg
    return found


def predict(installed, native, installs, removals, root=None):
    """The installed packages ({dpkg name: Package}) after apt installs `installs`
    and removes `removals` (as parse_simulation returns them)."""
    after = dict(installed)
    spelled = dpkg.by_apt_spelling(installed, native)
    for name in removals:
        if name in spelled:
            after.pop(spelled[name].dpkg_name, None)
    described = describe(installs, native, root)
    for name, version in installs:
        # apt-cache names it unless the lists changed under us: then name and version only
        if name in described:
            pkg = described[name]
        else:
            bare, arch = dpkg.split_apt_spelling(name, native)
            pkg = dpkg.Package(name=bare, version=version, arch=arch)
        if name in spelled:                     # an upgrade: the old version goes
            after.pop(spelled[name].dpkg_name, None)
        after[pkg.dpkg_name] = pkg
    return after
