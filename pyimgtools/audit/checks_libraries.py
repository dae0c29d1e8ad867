"""Audit checks that use keep's and prune's planners: unresolved shared
libraries, dead weight."""

import os

from pyimgtools.audit.context import library_scan_paths, more
from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import check
from pyimgtools.report import display_path, format_bytes, format_count


# -- unresolvable libraries (keep's planner) -----------------------------------------

class _NoPackages:
    """Stands in for dpkg.Database in an image without dpkg (keep maps owners)."""

    def owners(self, paths):
        from pyimgtools.dpkg import OwnerIndex
        return OwnerIndex(owners={os.fsdecode(p): [] for p in paths})

    def manual_packages(self):
        return set()


@check("unresolved-libs", "unresolved-libs", "not-checked")
def check_unresolved_libs(ctx):
    """ELF files under /usr/local, /opt and non-Debian Python prefixes whose DT_NEEDED
    libraries resolve nowhere by glibc's rules (keep's loader; nothing is run)."""
    from pyimgtools import keep
    paths = library_scan_paths(ctx)
    if not paths:
        return []
    db = ctx.dpkg if ctx.dpkg is not None else _NoPackages()
    # As the image is: a stale ld.so.cache fails at run time (keep would run ldconfig).
    plan = keep.plan(ctx.root, paths, db=db, run_ldconfig=False)
    return _not_checked(plan, paths) + _unresolved(plan, paths)


def _not_checked(plan, paths):
    """What the library scan could not read: it may hold ELF files that cannot load."""
    if not plan.unreadable:
        return []
    return [Finding(
        "not-checked", "error",
        "%s under %s could not be read: the ELF files there were not checked"
        % (format_count(len(plan.unreadable), "path"), ", ".join(paths)),
        "run audit with the rights to read them (root with CAP_DAC_READ_SEARCH), or fix "
        "their permissions",
        evidence=list(plan.unreadable),
        paths=[u.rsplit(": cannot ", 1)[0] for u in plan.unreadable],
        data={"unreadable": plan.unreadable, "scanned_paths": paths})]


def _unresolved(plan, paths):
    from pyimgtools import keep
    if not plan.missing:
        return []
    by_needer = {}
    for m in plan.missing:
        by_needer.setdefault(m.needer, []).append(m.name)
    names = sorted({m.name for m in plan.missing})
    evidence = ["%s needs %s: not found" % (display_path(n), ", ".join(display_path(x) for x in sorted(v)))
                for n, v in sorted(by_needer.items())]
    evidence.append("searched like ld.so (RPATH/RUNPATH, ld.so.cache, default directories) from "
                    "the ELF files under %s (%s scanned)" % (", ".join(paths),
                                                            format_count(plan.scanned, "ELF file")))
    notice = keep.ldconfig_notice(plan)
    if notice:
        evidence.append(notice + ": run ldconfig")
    return [Finding(
        "unresolved-libs", "error",
        "%s cannot load: %s not found" % (format_count(len(by_needer), "ELF file"), more(names, 4)),
        "install the package that ships %s (apt-file search), or run pyimgtools keep (build-deps "
        "purge --keep-runtime) before purging build dependencies" % names[0],
        evidence=evidence, paths=sorted(by_needer),
        data={"missing": [{"needer": m.needer, "library": m.name, "load_trees": m.roots}
                          for m in plan.missing], "scanned_paths": paths,
              "elf_files": plan.scanned})]


# -- dead weight (prune's planner) ------------------------------------------------------

def _dead_weight_rules():
    from pyimgtools import prune
    # What is waste in a finished image: tests, every static library, docs. Not
    # bytecode (that is what the image should have) and not the caches (their
    # own finding ids above).
    return prune.Rules(tests=True, bytecode=False, static_libs=True, docs=True, caches=False,
                       tk=False)


@check("dead-weight")
def check_dead_weight(ctx):
    """What prune's planner would remove under /usr/local, /opt and non-Debian
    Pythons by the rules of waste in a finished image (tests, every static
    library, docs; not bytecode, not the caches, which have their own ids)."""
    from pyimgtools import prune
    from pyimgtools.mounts import MountTable
    paths = library_scan_paths(ctx)
    if not paths:
        return []
    plan = prune.make_plan(ctx.root, paths, _dead_weight_rules(), MountTable.load())
    files, dirs, total, by_rule, hard = plan.totals()
    if not plan.removals:
        return []
    removed_dirs = set(id(r.node) for r in plan.removals if r.kind == "d")
    tops = [r for r in plan.removals if id(r.parent) not in removed_dirs]
    tops.sort(key=lambda r: r.path())
    evidence = ["%s: %s, %s, %s" % (rule, format_count(c["files"], "file"),
                                    format_count(c["dirs"], "directory", "directories"),
                                    format_bytes(c["bytes"]))
                for rule, c in sorted(by_rule.items())]
    if hard["files"]:
        evidence.append("hard links counted once: %s; %s stay linked elsewhere (not freed)"
                        % (format_count(hard["files"], "file"), format_bytes(hard["bytes_not_freed"])))
    for k in plan.kept:
        evidence.append("kept, imported at run time: %s (%s line %d imports %s)" % (
            display_path(k.path), display_path(k.importer), k.lineno, k.imported))
    evidence.extend("%s%s (%s)" % (display_path(r.path()), "/" if r.kind == "d" else "", r.rule)
                    for r in tops)
    rules = sorted(by_rule)
    flags = " ".join(f for f, rule in (("--static-libs", "static-libs"), ("--docs", "docs"))
                     if rule in rules)
    if "tests" not in rules:
        flags = ("--no-tests " + flags).strip()
    return [Finding(
        "dead-weight", "warn",
        "%s: %s in %s under %s" % (", ".join(rules), format_count(files, "file"),
                                   format_count(dirs, "directory", "directories"), more(paths, 3)),
        "pyimgtools prune --keep-bytecode %s%s (in the RUN step that installed them)"
        % (flags + " " if flags else "", " ".join(sorted(t.image for t in plan.trees)[:3])
           + (" …" if len(plan.trees) > 3 else "")),
        evidence=evidence, paths=[r.path() for r in tops], bytes=total, reclaimable=True,
        data={"by_rule": by_rule, "hard_links": hard, "files": files, "dirs": dirs,
              "kept": [k.path for k in plan.kept]})]
