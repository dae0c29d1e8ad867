"""Human and JSON rendering shared by every command.

Human mode writes plain lines to stdout (a build log); ``--json`` writes exactly
one JSON document to stdout and sends every other line to stderr.
"""

import os
import sys

from pyimgtools import __version__


def format_bytes(n):
    """1536 -> '1.5 KiB'; binary units, one decimal, as in the summary lines."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return "%d B" % n if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024
    return "%.1f TiB" % n  # pragma: no cover - unreachable


def format_count(n, noun, plural=None):
    """format_count(1204, 'file') -> '1,204 files'."""
    word = noun if n == 1 else (plural or noun + "s")
    return "{:,} {}".format(n, word)


def display_path(path):
    """A path (str or bytes) as printable text; undecodable bytes become \\xNN escapes."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_CONTROLS = {c: "\\x%02x" % c for c in list(range(32)) + [127]}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def display_line(text):
    """display_path, and control characters (a newline in a file name) escaped
    too, so that one message stays one line of a build log."""
    return display_path(text).translate(_CONTROLS)


def json_path(path):
    """A lossless JSON form of a path: text when it is valid UTF-8, else {"bytes_hex": ...}."""
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"bytes_hex": raw.hex()}


def to_jsonable(value):
    """Dataclasses, records (an `as_json()` method), paths (bytes) and sets turned
    into plain JSON values."""
    as_json = getattr(value, "as_json", None)
    if callable(as_json) and not isinstance(value, type):
        return to_jsonable(as_json())
    import dataclasses  # here: it imports inspect (~9 ms), and most runs print no JSON
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return json_path(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a path decoded with surrogateescape
            return json_path(value)
        return value
    if isinstance(value, dict):
        return {_json_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(value, key=str)]
    return value


# The envelope every --json document starts with (docs/json.md), in this order.
ENVELOPE_KEYS = ("command", "version", "dry_run", "seconds", "counts", "warnings", "failures",
                 "results")


class Envelope(dict):
    """A --json document built by envelope(): Output.data adds the warnings it printed."""


def envelope(command, *, dry_run, seconds, counts, results, warnings=(), failures=(), **legacy):
    """The one --json document shape of every command (docs/json.md).

    command: the words after `pyimgtools` ("prune", "build-deps purge");
    dry_run: False for read-only runs; counts: {name: int}, the numbers of the
    summary line; warnings: the command's own warnings that are not printed
    as `pyimgtools: warning:` lines before the document (Output.data puts the
    printed ones first); failures: [{"path" or "item": ..., "error": text,
    ...}], what failed while the rest went on; results: the command's own
    content. legacy: the top-level keys of the documents before the
    envelope, kept for one release after it (docs/json.md lists them).
    """
    doc = Envelope(command=command, version=__version__, dry_run=bool(dry_run),
                   seconds=round(seconds, 3), counts=dict(counts), warnings=list(warnings),
                   failures=list(failures), results=results)
    clash = sorted(set(legacy) & set(doc))
    if clash:
        raise ValueError("legacy keys shadow the envelope: %s" % ", ".join(clash))
    doc.update(legacy)
    return doc


def with_warnings(document, printed):
    """`document` with the warning lines `printed` first in its warnings (each
    of its own warnings that was printed too, once); other documents as they are."""
    if not isinstance(document, Envelope):
        return document
    own = [w for w in document["warnings"] if w not in printed]
    return Envelope((k, list(printed) + own if k == "warnings" else v)
                    for k, v in document.items())


def _json_key(key):
    """Object keys must be text: undecodable path keys get their escaped display form."""
    return display_path(key) if isinstance(key, (str, bytes)) else str(key)


class Output:
    """Where a command's lines go, according to --json / -q / -v."""

    def __init__(self, json_mode=False, quiet=False, verbose=False, stdout=None, stderr=None):
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.warnings = []      # every warning() text, for the JSON envelope

    @property
    def _log(self):
        return self.stderr if self.json_mode else self.stdout

    def line(self, text=""):
        """A normal line of human output (suppressed by -q)."""
        if not self.quiet:
            print(text, file=self._log)

    def detail(self, text):
        """A line shown only with -v."""
        if self.verbose:
            print(text, file=self._log)

    def summary(self, text):
        """The one summary line every command ends with; -q keeps it, --json moves it to stderr."""
        print(text, file=self._log)

    def warn(self, text):
        """A `pyimgtools: warning:` line on stderr, recorded for the JSON document."""
        self.warnings.append(text)
        print("pyimgtools: warning: " + text, file=self.stderr)

    def data(self, document):
        """The JSON document (only in --json mode)."""
        if self.json_mode:
            import json  # here: most runs print no JSON, and start-up counts in RUN lines
            document = with_warnings(document, self.warnings)
            json.dump(to_jsonable(document), self.stdout, indent=2, sort_keys=False)
            self.stdout.write("\n")

    @property
    def is_tty(self):
        try:
            return self.stderr.isatty()
        except (AttributeError, ValueError):
            return False
