"""`pyimgtools audit --format sarif`: an Audit as a SARIF 2.1.0 log, for GitHub
code scanning and other SARIF readers.

    log = document(result, fail_on, code, warnings=out.warnings)   # plain JSON data
    render(result, out, fail_on, code)      # the log on stdout, the summary line on stderr

One rule per finding id of the registered checks (`audit.checks.CHECKS`: their
ids, their check and its docstring), one result per finding. A result's level
is its finding's severity (error -> error, warn -> warning, info -> note) and
so is its rule's defaultConfiguration.level, when the run has a finding of
that id; the registry declares no severities and a few checks choose theirs
per finding, so a rule with no finding in the run has no default level.

Locations. A root directory (--root, or inside the image): the finding's first
path is the location, the next ones (up to RELATED) related locations, as a
URI relative to the uriBaseId ROOTFS (the root, declared in
run.originalUriBaseIds); a finding without paths points at the root itself.
An image (`audit IMAGE`: `image` is its reference): the image is the artifact,
and where a finding's bytes came from one layer, that layer (its Dockerfile
instruction, `created_by`) is a logical location and named in the message.
Every physical location has region.startLine 1: GitHub needs a line, and
a file of an image has none that means anything.

The log is the same bytes for the same image: no times, no durations, no host
paths except the root's own URI; partialFingerprints hash the rule id and the
in-image path only, so a result keeps its alert when the root is mounted
somewhere else next time.
"""

import hashlib
import os
import re
from urllib.parse import quote

from pyimgtools import __version__, audit
from pyimgtools.audit import checks as audit_checks
from pyimgtools.report import display_line, display_path, format_bytes, to_jsonable

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
VERSION = "2.1.0"
LEVELS = {"error": "error", "warn": "warning", "info": "note"}
ROOT_BASE = "ROOTFS"
FINGERPRINT = "pyimgtoolsFinding/v1"
RELATED = 99        # related locations per result; properties.paths has every path
_SHOWN = 4          # evidence lines in a message, as in the text report
_SENTENCE = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z`])")   # a docstring's first sentence ends here


def _uri(path):
    """An in-image path as a URI reference relative to ROOTFS: no leading slash,
    every byte outside RFC 3986's unreserved set and "/" percent-encoded (file
    names are bytes: a surrogate-escaped name keeps its own bytes); the root is "."."""
    raw = (path if isinstance(path, bytes) else os.fsencode(path)).lstrip(b"/")
    return quote(raw, safe="/") if raw else "."


def _root_uri(root):
    """The file: URI of a root directory, ending in "/" as originalUriBaseIds needs."""
    raw = os.fsencode(os.path.abspath(root))
    return "file://" + quote(raw.rstrip(b"/") + b"/", safe="/")


def _text(text):
    """Message text: one clean string (undecodable bytes as \\xNN, no surrogates)."""
    return display_path(text)


def _rules(findings):
    """[reportingDescriptor] in the registry's order (ids no check registers, last,
    sorted), and {id: its index}."""
    checks_of = {}
    for check in audit_checks.CHECKS:
        for fid in check.ids:
            checks_of.setdefault(fid, []).append(check)
    order = list(checks_of) + sorted({f.id for f in findings} - set(checks_of))
    seen = {}
    for f in findings:
        worst = seen.get(f.id)
        if worst is None or audit.RANK[f.severity] < audit.RANK[worst.severity]:
            seen[f.id] = f
    rules = []
    for fid in order:
        checks = checks_of.get(fid, [])
        if len(checks) == 1 and checks[0].run.__doc__:
            full = " ".join(checks[0].run.__doc__.split())
        elif checks:
            full = "Reported by the audit check%s %s." % (
                "s" if len(checks) > 1 else "", ", ".join(c.id for c in checks))
        else:
            full = "Reported by pyimgtools audit."
        short = "%s: %s" % (fid, _SENTENCE.split(full)[0].rstrip("."))
        rule = {"id": fid, "shortDescription": {"text": short}, "fullDescription": {"text": full}}
        first = seen.get(fid)
        help_text = full
        if first is not None:
            rule["defaultConfiguration"] = {"level": LEVELS[first.severity]}
            help_text += "\nFix: " + _text(first.fix)
        rule["help"] = {"text": help_text + "\nSee docs/commands.md (audit) for every finding id."}
        rule["properties"] = {"checks": [c.id for c in checks],
                              "tags": ["pyimgtools", "container-image"] + [c.id for c in checks]}
        rules.append(rule)
    return rules, {r["id"]: i for i, r in enumerate(rules)}


def _physical(uri, base=None):
    where = {"uri": uri}
    if base:
        where["uriBaseId"] = base
    return {"physicalLocation": {"artifactLocation": where, "region": {"startLine": 1}}}


def _layer_location(ref):
    """A layer (index, digest, created_by) as a logical location."""
    return {"name": "layer %d" % ref["index"],
            "fullyQualifiedName": _text(ref.get("created_by") or "layer %d" % ref["index"]),
            "kind": "layer",
            "properties": {"index": ref["index"], "digest": ref.get("digest", ""),
                           "created_by": _text(ref.get("created_by") or "")}}


def _message(f, layer, path_layers):
    lines = [_text(f.title) + (" [%s]" % format_bytes(f.bytes) if f.bytes else "")]
    lines += [display_line(e) for e in f.evidence[:_SHOWN]]
    if len(f.evidence) > _SHOWN:
        lines.append("... %d more (properties.evidence)" % (len(f.evidence) - _SHOWN))
    if layer:
        lines.append("layer %d: %s" % (layer["index"], display_line(layer.get("created_by") or "")))
    elif path_layers:
        lines.append("from several layers (properties.path_layers)")
    lines.append("Fix: " + _text(f.fix))
    return "\n".join(lines)


def _result(f, rule_index, image, layers, counts):
    info = (layers(f) if layers else None) or {}
    layer, path_layers = info.get("layer"), info.get("path_layers")
    primary = f.paths[0] if f.paths else ""
    if image is not None:
        location = _physical(quote(os.fsencode(image), safe="/"))
        if layer:
            location["logicalLocations"] = [_layer_location(layer)]
        related = []
    else:
        location = _physical(_uri(primary), ROOT_BASE)
        related = [dict(_physical(_uri(p), ROOT_BASE), id=i)
                   for i, p in enumerate(f.paths[1:RELATED + 1], 1)]
    key = "%s\0%s" % (f.id, display_path(primary))
    counts[key] = counts.get(key, 0) + 1
    if counts[key] > 1:     # a second finding of one id at one path: its own alert
        key += "\0%d" % counts[key]
    properties = {"severity": f.severity, "bytes": f.bytes, "reclaimable": f.reclaimable,
                  "fix": f.fix, "evidence": f.evidence, "paths": f.paths, "data": f.data}
    if image is not None:
        properties.update(info)
    result = {"ruleId": f.id, "ruleIndex": rule_index, "level": LEVELS[f.severity],
              "message": {"text": _message(f, layer, path_layers)},
              "locations": [location]}
    if related:
        result["relatedLocations"] = related
    result["partialFingerprints"] = {FINGERPRINT: hashlib.sha256(
        key.encode("utf-8", "surrogateescape")).hexdigest()}
    result["properties"] = to_jsonable(properties)
    return result


def _notifications(result, warnings):
    """Checks that were skipped or failed, and the run's warning lines."""
    levels = {"skipped": "note", "failed": "error"}
    found = [{"level": levels[c.status],
              "message": {"text": _text("check %s %s: %s" % (c.id, c.status, c.note))},
              "properties": {"check": c.id, "status": c.status}}
             for c in result.checks if c.status in levels]
    return found + [{"level": "warning", "message": {"text": _text(w)}} for w in warnings]


def document(result, fail_on, code, *, image=None, layers=None, warnings=()):
    """The SARIF log (plain JSON data) of an Audit whose exit status is `code`
    under --fail-on `fail_on`.

    image: the IMAGE argument of `audit IMAGE` (None: a root directory, result.root).
    layers: for an image, finding -> {"layer": {"index", "digest", "created_by"}
    or None} or {"path_layers": [{"path", "layer"}]} (the keys --json gives a
    finding), or None. warnings: the run's warning lines.
    """
    rules, index = _rules(result.findings)
    counts = {}
    results = [_result(f, index[f.id], image, layers, counts) for f in result.findings]
    run = {"tool": {"driver": {"name": "pyimgtools", "version": __version__,
                               "semanticVersion": __version__, "rules": rules}}}
    if image is None:
        run["originalUriBaseIds"] = {ROOT_BASE: {
            "uri": _root_uri(result.root),
            "description": {"text": "the image's root file system (%s)" % _text(result.root)}}}
    run["invocations"] = [{"executionSuccessful": True, "exitCode": code,
                           "toolExecutionNotifications": _notifications(result, warnings)}]
    run["results"] = results
    run["properties"] = {"fail_on": fail_on, "counts": result.counts(),
                         "reclaimable_bytes": result.reclaimable(),
                         "environment": _text(result.environment),
                         "target": _text(image if image is not None else result.root)}
    return {"$schema": SCHEMA, "version": VERSION, "runs": [run]}


class _SarifOut:
    """An Output whose JSON document is the SARIF log: audit.render in --json
    mode then prints the log in place of the envelope, and its summary line."""

    def __init__(self, out, log):
        self._out, self._log = out, log

    def __getattr__(self, name):
        return getattr(self._out, name)

    def data(self, document):
        self._out.data(self._log)


def render(result, out, fail_on, code, *, image=None, layers=None):
    """The SARIF log on stdout and audit's summary line on stderr (`out` in
    JSON mode: stdout holds the one document)."""
    log = document(result, fail_on, code, image=image, layers=layers, warnings=out.warnings)
    audit.render(result, _SarifOut(out, log), fail_on, code)
