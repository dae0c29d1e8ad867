"""The audit check for pending security updates (security-upgrade's planner,
with a read-only apt-cache)."""

import os

from pyimgtools.audit.context import files_in
from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import Skip, check
from pyimgtools.report import format_count


# -- pending security updates (security-upgrade's planner) ---------------------------

_HOW_TO_CHECK = ("in the image as root: pyimgtools security-upgrade --check (refreshes the lists; "
                 "exit 100 when updates are pending)")


def apt_cache_readonly(ctx, args):
    """stdout of the apt-cache this audit runs under, reading the image's apt state.

    Inside the image (--root /) that is the image's own apt-cache; from outside
    it is the host's apt-cache with Dir= pointed at the root (nothing of the
    image is executed). The binary caches are disabled so that apt writes
    nothing (Dir::Cache::pkgcache "").
    """
    import subprocess
    argv = ["apt-cache", "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]
    if not ctx.root.is_host:
        argv += ["-o", "Dir=" + ctx.root.path + "/"]
    env = dict(os.environ, LC_ALL="C", LANGUAGE="")
    proc = subprocess.run(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("apt-cache %s exited %d: %s" % (args[0], proc.returncode,
                                                          err[-1] if err else ""))
    return proc.stdout.decode("utf-8", "replace")


def _unknown(why, evidence=()):
    return [Finding("security-updates-unknown", "info",
                    "pending security updates unknown: " + why,
                    _HOW_TO_CHECK, evidence=list(evidence))]


def _lists_age(ctx):
    newest = 0
    # only the lists' age for a message: what cannot be read is not recorded (walk=None)
    for path, _ in files_in(ctx, "/var/lib/apt/lists", lambda n: n.endswith("Release"),
                             walk=None):
        try:
            newest = max(newest, os.lstat(ctx.root.host(path)).st_mtime)
        except OSError:
            pass
    if not newest:
        return None
    import time
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(newest))


@check("security-updates", "security-updates", "security-updates-unknown", background=True)
def check_security_updates(ctx):
    """Pending security updates, by security-upgrade's planner over the image's own
    apt lists and a read-only apt-cache; `security-updates-unknown` when the image
    holds no lists or no security source to tell."""
    from pyimgtools import apt, security
    from pyimgtools.errors import PyimgtoolsError
    if ctx.dpkg is None:
        raise Skip("no dpkg database (/var/lib/dpkg/status)")
    try:
        distro = security.detect(ctx.root)
    except PyimgtoolsError as exc:
        raise Skip(str(exc))
    if not apt.lists_present(ctx.root):
        return _unknown("no apt lists in the image (as a finished image should be)")
    sources = [s for s in apt.read_sources(ctx.root) if security.is_security_source(s, distro)]
    if not sources:
        return _unknown("no %s security source is configured (security-upgrade adds one "
                        "for its run)" % distro.codename)
    try:
        files, pending, held = security.plan_updates(
            installed=security.read_status(ctx.root), native_arch=ctx.dpkg.native_arch(),
            apt_cache=lambda query: apt_cache_readonly(ctx, query), parallel=1)
    except (OSError, RuntimeError) as exc:
        return _unknown("apt-cache could not be asked (%s)" % exc)
    if not any(security.is_security_file(f.release) for f in files.values()):
        return _unknown("the apt lists hold no %s security index (apt-get update with the "
                        "security source never ran)" % distro.codename)
    if not pending:
        return []
    age = _lists_age(ctx)
    evidence = ["%s %s -> %s (%s)" % (u.package, u.installed, u.candidate, u.suite) for u in pending]
    evidence += ["held, not counted: %s %s -> %s" % (u.package, u.installed, u.candidate) for u in held]
    if age:
        evidence.append("according to the apt lists in the image, from %s" % age)
    return [Finding(
        "security-updates", "error",
        "%s pending for %s" % (format_count(len(pending), "security update"), distro.pretty_name),
        "pyimgtools security-upgrade (in the image's last RUN step that touches packages)",
        evidence=evidence,
        data={"pending": [{"package": u.package, "installed": u.installed, "candidate": u.candidate,
                           "suite": u.suite} for u in pending],
              "held": [u.package for u in held], "lists_date": age})]
