"""`pyimgtools audit`: a read-only hygiene report for a finished image or a mounted rootfs.

    findings = plan(root, env=..., ignore=...)     # pure: reads, never writes
    code = exit_code(findings, fail_on)            # 100 when a finding is at/above fail_on

Every finding has a stable id (documented in docs/commands.md and `CHECKS`), a
severity (`error` breaks or endangers the image, `warn` is waste or a risky
leftover, `info` a trade-off), the evidence a person can verify, the paths,
the bytes at stake and a one-line fix. The checks live in this package
(checks.py lists them: registry.py, context.py, checks_*.py by theme,
model.py for Finding); the ones about dead weight, libraries, build
dependencies and security updates call the planners of `prune`, `keep`,
`build-deps` and `security-upgrade` (nothing is re-implemented here).

Nothing is executed from the image and nothing is written: `audit` opens
files read-only and asks apt for nothing that changes state.
"""

import os
import threading
import time

from pyimgtools import commandnames
from pyimgtools.audit.model import RANK, SEVERITIES, Audit, CheckRun, Finding, at_or_above  # noqa: F401
from pyimgtools.audit.registry import IMAGE_ONLY
from pyimgtools.errors import EXIT_OK, EXIT_WORK_FOUND, UsageError
from pyimgtools.report import display_path, envelope, format_bytes, format_count

NAME = commandnames.AUDIT

FAIL_ON_CHOICES = ("error", "warn", "info", "never")

# Lines of evidence (and paths) shown per finding without -v; --json has all.
_SHOWN = 4


def exit_code(findings, fail_on="error"):
    """EXIT_WORK_FOUND when a finding is at or above `fail_on`, else EXIT_OK."""
    if any(at_or_above(f.severity, fail_on) for f in findings):
        return EXIT_WORK_FOUND
    return EXIT_OK


def plan(root, env=None, env_source="", ignore=(), only=(), warn=None, max_waste=None,
         min_efficiency=None):
    """Run every check over `root` (a fs.Root, or an image view's ImageRoot: then
    the layer checks run too, with their thresholds); returns an Audit. Reads only."""
    from pyimgtools.audit import checks as audit_checks
    from pyimgtools.audit.layers import image_of

    start = time.monotonic()
    img = image_of(root)
    ctx = audit_checks.Context(root, env=env, env_source=env_source, warn=warn,
                               max_waste=max_waste, min_efficiency=min_efficiency,
                               user=img.user if img else None, workdir=img.workdir if img else None)
    selected = [c for c in audit_checks.CHECKS
                if c.id not in ignore and not (only and c.id not in only)]
    outcome = {}

    def run_one(check):
        t0 = time.monotonic()
        found = []
        try:
            if check.image_only and img is None:
                raise audit_checks.Skip(IMAGE_ONLY)
            found = check.run(ctx) or []
        except audit_checks.Skip as exc:
            run = CheckRun(check.id, "skipped", str(exc))
        except OSError as exc:
            where = " (%s)" % display_path(exc.filename) if getattr(exc, "filename", None) else ""
            run = CheckRun(check.id, "failed", "%s%s" % (exc.strerror or exc, where))
            if warn:
                warn("audit: check %s failed: %s%s" % (check.id, exc.strerror or exc, where))
        except BaseException as exc:  # re-raised in the main thread, below
            outcome[check.id] = exc
            return
        else:
            found = [f for f in found if f.id not in ignore and (not only or f.id in only)]
            run = CheckRun(check.id, "found" if found else "clean",
                           "; ".join(sorted({f.id for f in found})))
        run.seconds = round(time.monotonic() - t0, 3)
        outcome[check.id] = (run, found)

    # Checks that mostly wait for a subprocess (apt-cache) run beside the
    # ones that walk the file system.
    threads = []
    for check in selected:
        if check.background:
            t = threading.Thread(target=run_one, args=(check,), name="audit-" + check.id,
                                 daemon=True)
            t.start()
            threads.append(t)
    for check in selected:
        if not check.background:
            run_one(check)
    for t in threads:
        t.join()
    findings, runs = [], []
    for check in selected:
        result = outcome[check.id]
        if isinstance(result, BaseException):
            raise result
        runs.append(result[0])
        findings.extend(result[1])
    findings.sort(key=lambda f: (RANK[f.severity], -f.bytes, f.id))
    return Audit(root=img.source if img else root.path, findings=findings, checks=runs,
                 environment=ctx.env_description(), seconds=time.monotonic() - start,
                 image_root=root if img else None)


# -- environment (LANG) ----------------------------------------------------------

def parse_env(data):
    """Environment bytes -> {name: value}: NUL-separated (/proc/PID/environ) or
    one NAME=VALUE per line (`docker inspect`/`buildah inspect` Env, env(1),
    an env-file: blank lines and `#` comments ignored, `export ` and quotes allowed)."""
    text = data.decode("utf-8", "surrogateescape")
    items = text.split("\0") if "\0" in text else text.splitlines()
    env = {}
    for item in items:
        item = item.strip() if "\0" not in text else item
        if not item or item.startswith("#"):
            continue
        if item.startswith("export "):
            item = item[len("export "):].lstrip()
        name, sep, value = item.partition("=")
        if not sep or not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[name] = value
    return env


def _same_root_as_pid1():
    """True when PID 1 runs in this process's root (a container's init, not the host's)."""
    try:
        a, b = os.stat("/proc/1/root"), os.stat("/")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_env(root, env_file=None):
    """(env dict or None, description of its source).

    env_file (--env FILE) first. An image (an ImageRoot): its config's Env.
    Inside the image (--root /): PID 1's environment when
    PID 1 shares this root (`docker run IMAGE pyimgtools audit`), otherwise
    this process's own (a RUN step: the image's ENV plus build arguments).
    From outside (--root DIR) the image's environment cannot be seen.
    """
    if env_file:
        try:
            with open(env_file, "rb") as f:
                return parse_env(f.read()), "--env %s" % display_path(env_file)
        except OSError as exc:
            raise UsageError("--env %s: %s" % (display_path(env_file), exc.strerror or exc)) from None
    from pyimgtools.audit.layers import image_of
    img = image_of(root)     # audit IMAGE: the image view's ImageRoot
    if img is not None:
        # literal NAME=VALUE items: no quotes or comments to strip, unlike an env-file
        return dict(e.partition("=")[::2] for e in img.env if "=" in e), "the image config's Env"
    if not root.is_host:
        return None, "not visible from outside (--root); give --env FILE"
    if _same_root_as_pid1():
        try:
            with open("/proc/1/environ", "rb") as f:
                return parse_env(f.read()), "/proc/1/environ"
        except OSError:
            pass
    # /proc/self/environ is the environment this process was started with:
    # os.environ may hold LC_CTYPE=C.UTF-8 added by Python's own C-locale
    # coercion (PEP 538), which the image's other programs never see.
    try:
        with open("/proc/self/environ", "rb") as f:
            return parse_env(f.read()), "this process's environment"
    except OSError:
        return dict(os.environ), "this process's environment"


# -- rendering ----------------------------------------------------------------------

def document(result, fail_on, code):
    """The --json document of an Audit (exit status `code` for --fail-on `fail_on`)."""
    findings = result.findings
    extra = {}
    if result.image_root is not None:
        from pyimgtools.audit import layers
        from pyimgtools.report import to_jsonable
        attribution = layers.Attribution(result.image_root)
        findings = [layers.annotate(to_jsonable(f), f, attribution) for f in result.findings]
        img = result.image_root.image
        extra = {"layers": layers.layers_doc(img), "image": layers.image_doc(img)}
    own = {
        "root": result.root,
        "fail_on": fail_on,
        "exit_code": code,
        "reclaimable_bytes": result.reclaimable(),
        "findings": findings,
        "checks": result.checks,
        "environment": result.environment,
    }
    counts = dict(result.counts(), reclaimable_bytes=result.reclaimable())
    # a check that failed (OSError) is a partial failure: the others ran
    failures = [{"item": c.id, "error": c.note} for c in result.checks if c.status == "failed"]
    # read-only: never a dry run
    return envelope(NAME, dry_run=False, seconds=result.seconds, counts=counts,
                    results=dict(own, counts=result.counts(), **extra), failures=failures, **own)


def render(result, out, fail_on, code):
    """The report: findings by severity with evidence and fixes (-v: all of it), the
    JSON document in --json mode, and the summary line."""
    counts = result.counts()
    summary = "pyimgtools audit: %s, %s, %s; %s reclaimable; %s in %.2f s" % (
        format_count(counts["error"], "error"), format_count(counts["warn"], "warning"),
        format_count(counts["info"], "info", "info"), format_bytes(result.reclaimable()),
        display_path(result.root), result.seconds)
    if out.json_mode:
        out.data(document(result, fail_on, code))
        out.summary(summary)
        return
    width = max([len(f.id) for f in result.findings] + [10])
    if result.image_root is not None:
        _render_layers(result, out, width)
    else:
        for severity in SEVERITIES:
            group = [f for f in result.findings if f.severity == severity]
            if not group:
                continue
            total = sum(f.bytes for f in group)
            out.line("%s (%d%s)" % (severity.upper(), len(group),
                                    ", %s" % format_bytes(total) if total else ""))
            for f in group:
                _render_finding(out, f, width)
            out.line()
    skipped = [c for c in result.checks if c.status in ("skipped", "failed")
               and c.note != IMAGE_ONLY]
    for c in skipped:
        out.line("not checked: %s (%s)" % (c.id, c.note))
    if not result.findings:
        out.line("no findings (%s)" % format_count(len(result.checks), "check"))
    out.summary(summary + ("" if code == EXIT_OK else "; exit %d (--fail-on %s)" % (code, fail_on)))


def _render_finding(out, f, width, severity=False):
    size = format_bytes(f.bytes) if f.bytes else "-"
    lead = "%-5s " % f.severity.upper() if severity else ""
    pad = width + 10 + len(lead)
    out.line("  %s%-*s %10s  %s" % (lead, width, f.id, size, f.title))
    shown = f.evidence if out.verbose else f.evidence[:_SHOWN]
    for line in shown:
        out.line("  %*s   %s" % (pad, "", line))
    if len(shown) < len(f.evidence):
        out.line("  %*s   ... %d more (-v or --json)" % (pad, "", len(f.evidence) - len(shown)))
    out.line("  %*s   fix: %s" % (pad, "", f.fix))


def _render_layers(result, out, width):
    """audit IMAGE: a heading per layer with the findings whose paths it brought,
    then the findings of no single layer under "whole image"."""
    from pyimgtools.audit.layers import Attribution
    img = result.image_root.image
    attribution = Attribution(result.image_root)
    by_layer = {}
    for f in result.findings:
        by_layer.setdefault(attribution.of_finding(f)[0], []).append(f)
    out.line("image %s%s: %s, %s in layers, %s wasted, efficiency %.3f" % (
        display_path(img.source), " (%s)" % img.platform if img.platform else "",
        format_count(len(img.layers), "layer"), format_bytes(img.total_bytes),
        format_bytes(img.wasted_bytes), img.efficiency))
    out.line()
    for layer in img.layers:
        digest = layer.digest.split(":", 1)[-1][:12]
        out.line("LAYER %d %s  %s, %s wasted  %s" % (
            layer.index, digest, format_bytes(layer.bytes_added), format_bytes(layer.wasted_bytes),
            (layer.created_by or "(no history entry)")[:160]))
        for f in by_layer.get(layer.index, ()):
            _render_finding(out, f, width, severity=True)
        out.line()
    rest = by_layer.get(None, ())
    if rest:
        out.line("WHOLE IMAGE (findings of no single layer)")
        for f in rest:
            _render_finding(out, f, width, severity=True)
        out.line()
