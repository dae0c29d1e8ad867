"""The schema of every command's --json document (docs/json.md shows it), and
a small validator for the JSON Schema keywords it uses (stdlib only).

validate(document) -> [] or the list of what is wrong, each "where: what".
The envelope's key order (the first keys of the document) is checked by
key_order_errors(): JSON Schema cannot say it.
"""

import re

ENVELOPE_KEYS = ["command", "version", "dry_run", "seconds", "counts", "warnings", "failures",
                 "results"]

# The commands as `command` names them: the words after `pyimgtools`.
COMMANDS = ["compile", "prune", "keep", "build-deps install", "build-deps purge",
            "security-upgrade", "finalize", "audit"]

# The counts each command always has (docs/json.md lists the ones some modes add).
COUNTS = {
    "compile": ["files", "up_to_date", "skipped", "failed"],
    "prune": ["files", "dirs", "bytes"],
    "keep": ["packages", "elf_files"],
    "build-deps install": ["requested"],
    "build-deps purge": ["removed", "bytes", "kept"],
    "security-upgrade": ["updates", "held"],
    "finalize": ["steps", "skipped"],
    "audit": ["error", "warn", "info", "reclaimable_bytes"],
}

# Read-only commands: dry_run is always false.
READ_ONLY = ["audit"]


def _per_command(command, counts):
    rule = {"if": {"properties": {"command": {"const": command}}},
            "then": {"properties": {"counts": {"required": counts}}}}
    if command in READ_ONLY:
        rule["then"]["properties"]["dry_run"] = {"const": False}
    return rule


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pyimgtools --json document",
    "type": "object",
    "required": ENVELOPE_KEYS,
    "properties": {
        "command": {"enum": COMMANDS},
        "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
        "dry_run": {"type": "boolean"},
        "seconds": {"type": "number", "minimum": 0},
        "counts": {"type": "object",
                   "additionalProperties": {"type": "integer", "minimum": 0}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "failures": {"type": "array", "items": {"$ref": "#/$defs/failure"}},
        "results": {"type": "object"},
    },
    "allOf": [_per_command(c, COUNTS[c]) for c in COMMANDS] + [
        {"if": {"properties": {"command": {"const": "finalize"}}},
         "then": {"properties": {"results": {"properties": {"steps": {
             "type": "array", "items": {"$ref": "#/$defs/step"}}}}}}},
        # audit IMAGE: the layers, the image, and each finding's layer
        {"if": {"properties": {"command": {"const": "audit"}}},
         "then": {"properties": {"results": {"properties": {
             "layers": {"type": "array", "items": {"$ref": "#/$defs/layer"}},
             "image": {"$ref": "#/$defs/image"},
             "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}}}}}}},
    ],
    "$defs": {
        "path": {"anyOf": [
            {"type": "string"},
            {"type": "object", "required": ["bytes_hex"],
             "properties": {"bytes_hex": {"type": "string", "pattern": "^([0-9a-f]{2})*$"}}},
        ]},
        "failure": {
            "type": "object",
            "required": ["error"],
            "properties": {"path": {"$ref": "#/$defs/path"}, "item": {"type": "string"},
                           "error": {"type": "string"}, "message": {"type": "string"}},
            "oneOf": [{"required": ["path"]}, {"required": ["item"]}],
        },
        "layer_ref": {
            "type": "object",
            "required": ["index", "digest", "created_by"],
            "properties": {"index": {"type": "integer", "minimum": 0},
                           "digest": {"type": "string", "pattern": "^[a-z0-9]+:[0-9a-f]+$"},
                           "created_by": {"type": "string"}},
        },
        "layer": {
            "type": "object",
            "required": ["index", "digest", "media_type", "size", "created_by", "bytes_wasted"],
            "properties": {"index": {"type": "integer", "minimum": 0},
                           "digest": {"type": "string", "pattern": "^[a-z0-9]+:[0-9a-f]+$"},
                           "media_type": {"type": "string"},
                           "size": {"type": "integer", "minimum": 0},
                           "created_by": {"type": "string"},
                           "bytes_wasted": {"type": "integer", "minimum": 0}},
        },
        "image": {
            "type": "object",
            "required": ["source", "platform", "efficiency", "total_bytes", "wasted_bytes"],
            "properties": {"source": {"type": "string"},
                           "platform": {"type": ["string", "null"]},
                           "efficiency": {"type": "number", "minimum": 0},
                           "total_bytes": {"type": "integer", "minimum": 0},
                           "wasted_bytes": {"type": "integer", "minimum": 0}},
        },
        "finding": {
            "type": "object",
            "required": ["id", "severity", "title", "fix", "paths", "bytes"],
            "properties": {
                "severity": {"enum": ["error", "warn", "info"]},
                "bytes": {"type": "integer", "minimum": 0},
                "layer": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/layer_ref"}]},
                "path_layers": {"type": "array", "items": {
                    "type": "object", "required": ["path", "layer"],
                    "properties": {"path": {"$ref": "#/$defs/path"},
                                   "layer": {"anyOf": [{"type": "null"},
                                                       {"$ref": "#/$defs/layer_ref"}]}}}}},
        },
        "step": {
            "type": "object",
            "required": ["command", "skipped"],
            "properties": {"command": {"enum": ["security-upgrade", "prune", "compile"]},
                           "skipped": {"type": "boolean"},
                           "result": {"anyOf": [{"type": "null"}, {"$ref": "#"}]}},
        },
    },
}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(document, schema=None):
    """What is wrong with `document` under `schema` (default SCHEMA): a list of texts."""
    errors = []
    _check(document, SCHEMA if schema is None else schema, "$", errors,
           SCHEMA if schema is None else schema)
    return errors


def key_order_errors(document):
    """The envelope's keys come first, in ENVELOPE_KEYS' order."""
    first = list(document)[:len(ENVELOPE_KEYS)]
    return [] if first == ENVELOPE_KEYS else ["$: first keys %s, not %s" % (first, ENVELOPE_KEYS)]


def _resolve(ref, top):
    assert ref.startswith("#"), ref
    node = top
    for part in [p for p in ref[1:].split("/") if p]:
        node = node[part]
    return node


def _check(value, schema, where, errors, top):
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], top), where, errors, top)
    kind = schema.get("type")
    if kind is not None and not any(_TYPES[k](value) for k in
                                    ([kind] if isinstance(kind, str) else kind)):
        errors.append("%s: %r is not of type %s" % (where, value, kind))
        return
    if "const" in schema and value != schema["const"]:
        errors.append("%s: %r is not %r" % (where, value, schema["const"]))
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r is not one of %s" % (where, value, schema["enum"]))
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        errors.append("%s: %r is below %r" % (where, value, schema["minimum"]))
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append("%s: %r does not match %s" % (where, value, schema["pattern"]))
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append("%s: %s is missing" % (where, key))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                _check(item, props[key], "%s.%s" % (where, key), errors, top)
            elif extra is False:
                errors.append("%s: unexpected key %s" % (where, key))
            elif isinstance(extra, dict):
                _check(item, extra, "%s.%s" % (where, key), errors, top)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], "%s[%d]" % (where, i), errors, top)
    for sub in schema.get("allOf", ()):
        _check(value, sub, where, errors, top)
    if "anyOf" in schema and not any(_ok(value, s, top) for s in schema["anyOf"]):
        errors.append("%s: %r matches none of anyOf" % (where, value))
    if "oneOf" in schema and sum(_ok(value, s, top) for s in schema["oneOf"]) != 1:
        errors.append("%s: %r does not match exactly one of oneOf" % (where, value))
    if "if" in schema and _ok(value, schema["if"], top):
        _check(value, schema.get("then", {}), where, errors, top)


def _ok(value, schema, top):
    errors = []
    _check(value, schema, "$", errors, top)
    return not errors
