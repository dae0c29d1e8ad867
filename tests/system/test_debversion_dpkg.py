"""debversion against `dpkg --compare-versions` on 10,000+ real version pairs.

Versions come from this machine: the dpkg database (`dpkg-query -W`), the apt
lists (`apt-cache dumpavail`, when present), every version named in
/usr/share/doc/*/changelog.Debian.gz, and the cached test rootfs' dpkg status.
Pairs: all neighbours in our sorted order (the hardest pairs, and by
transitivity a check of the whole order) plus random pairs, each checked by
one dpkg call; the calls run in two batched shell processes.
"""

import functools
import glob
import gzip
import os
import random
import re
import shutil
import subprocess
import tarfile

import pytest

from pyimgtools import debversion
from tests.harness.prereq import CACHE_DIR, require

pytestmark = pytest.mark.main_only

MIN_PAIRS = 10000
NEIGHBOUR_SAMPLE = 8000  # neighbours of a sorted sample; random pairs fill up to MIN_PAIRS
VALID = re.compile(r"\A(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*\Z")
CHANGELOG_HEAD = re.compile(rb"^[a-z0-9][a-z0-9.+-]+ \(([^)\s]+)\)", re.M)


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              env=dict(os.environ, LC_ALL="C")).stdout
    except OSError:
        return ""


def real_versions():
    found = set()
    found.update(_run(["dpkg-query", "-W", "-f", "${Version}\n"]).split())
    for line in _run(["apt-cache", "dumpavail"]).splitlines():
        if line.startswith("Version:"):
            found.add(line.split(":", 1)[1].strip())
    for path in glob.glob("/usr/share/doc/*/changelog.Debian.gz"):
        try:
            with gzip.open(path, "rb") as f:
                data = f.read(1 << 20)
        except (OSError, EOFError):
            continue
        found.update(m.decode("ascii", "replace") for m in CHANGELOG_HEAD.findall(data))
    for tarball in glob.glob(os.path.join(CACHE_DIR, "rootfs", "*.tar")):
        try:
            with tarfile.open(tarball) as tar:
                member = tar.extractfile("./var/lib/dpkg/status")
                text = member.read().decode("utf-8", "replace") if member else ""
        except (OSError, KeyError, tarfile.TarError):
            continue
        for line in text.splitlines():
            if line.startswith("Version:"):
                found.add(line.split(":", 1)[1].strip())
    return sorted(v for v in found if VALID.match(v) and not v.endswith("-"))


def dpkg_agrees(triples):
    """For each (a, op, b): True when `dpkg --compare-versions a op b` succeeds."""
    shards = [triples[0::2], triples[1::2]]
    procs = []
    for shard in shards:
        script = "".join("dpkg --compare-versions '%s' %s '%s' 2>/dev/null; echo $?\n" % t
                         for t in shard)
        procs.append(subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True))
        procs[-1].stdin.write(script)
        procs[-1].stdin.close()
    results = [p.stdout.read().split() for p in procs]
    for p in procs:
        p.wait()
    merged = [None] * len(triples)
    merged[0::2] = [r == "0" for r in results[0]]
    merged[1::2] = [r == "0" for r in results[1]]
    return merged


def test_agrees_with_dpkg_compare_versions_on_10000_real_pairs():
    require(shutil.which("dpkg") is not None, "needs dpkg (the oracle)")
    versions = real_versions()
    require(len(versions) >= 500, "needs at least 500 real versions on this machine, found %d"
            % len(versions))
    rng = random.Random(20261128)
    sample = rng.sample(versions, min(len(versions), NEIGHBOUR_SAMPLE))
    ordered = sorted(sample, key=functools.cmp_to_key(debversion.compare))
    pairs = list(zip(ordered, ordered[1:]))
    while len(pairs) < MIN_PAIRS:
        pairs.append((rng.choice(versions), rng.choice(versions)))
    ops = {-1: "lt", 0: "eq", 1: "gt"}
    triples = [(a, ops[debversion.compare(a, b)], b) for a, b in pairs]
    verdicts = dpkg_agrees(triples)
    wrong = [t for t, ok in zip(triples, verdicts) if not ok]
    assert len(triples) >= MIN_PAIRS
    assert not wrong, "dpkg disagrees on %d of %d pairs, e.g. %r" % (
        len(wrong), len(triples), wrong[:10])
    # The neighbours really were close: many share the package's upstream part.
    assert sum(1 for a, _op, b in triples[:len(ordered) - 1]
               if debversion.parse(a)[1] == debversion.parse(b)[1]) > 100
