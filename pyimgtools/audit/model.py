"""The model of `pyimgtools audit`: findings, check runs, the report.

Its own module so that the checks (checks_*.py) and the command (audit/__init__.py)
both import it and neither imports the other's model: the import graph of
pyimgtools/ has no cycle (tests/unit/test_import_graph.py).
"""

from dataclasses import dataclass, field
from typing import Any, List

SEVERITIES = ("error", "warn", "info")   # most severe first
RANK = {"error": 0, "warn": 1, "info": 2}


@dataclass
class Finding:
    """One problem a check found: what, how bad, the evidence and the fix."""
    id: str                     # stable check id, e.g. "apt-lists"
    severity: str               # error | warn | info
    title: str                  # one line: what is wrong
    fix: str                    # one line: what to do
    evidence: List[str] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)
    bytes: int = 0              # bytes at stake (what a fix frees, for waste)
    reclaimable: bool = False   # bytes count towards the "reclaimable" total
    data: dict = field(default_factory=dict)   # check-specific details (JSON only)


@dataclass
class CheckRun:
    id: str
    status: str                 # "clean", "found", "skipped", "failed"
    note: str = ""
    seconds: float = 0.0


@dataclass
class Audit:
    """The result of one audit: every finding, how each check ran, where the
    environment came from, and how long it took."""
    root: str
    findings: List[Finding]
    checks: List[CheckRun]
    environment: str            # where LANG was read, or why it was not
    seconds: float = 0.0
    image_root: Any = None      # audit IMAGE: the image view (an ImageRoot), else None

    def counts(self):
        result = {s: 0 for s in SEVERITIES}
        for f in self.findings:
            result[f.severity] += 1
        return result

    def reclaimable(self):
        return sum(f.bytes for f in self.findings if f.reclaimable)


def at_or_above(severity, threshold):
    """Is `severity` at or above `threshold` (a FAIL_ON choice; "never": nothing is)?"""
    if threshold == "never":
        return False
    return RANK[severity] <= RANK[threshold]
