"""audit on real images built with buildah from examples/audit/.

Dockerfile.dirty plants one instance of every check; Dockerfile.clean finishes
the same /usr/local Python with pyimgtools' own commands. The expected values
come from the image itself (dpkg-query, apt list, find, ldd run inside it),
from what the Dockerfile planted, never from audit's output.
"""

import hashlib
import json
import os
import stat

import pytest

from tests.conftest import run_cli
from tests.harness.auditimage import NO_PYC, comparable, context_with_python, image_env_file

STDLIB = "/usr/local/lib/python3.12"

# Every id the dirty image plants (security-updates-unknown is the absence of
# lists, the opposite of the planted apt-lists).
PLANTED = {
    "two-pythons", "stdlib-missing-pyc", "stdlib-stale-pyc", "security-updates", "apt-lists",
    "apt-debs", "apt-pkgcache", "pip-cache", "uv-cache", "build-tools", "unresolved-libs",
    "dead-weight", "broken-dist-info", "dangling-symlinks", "no-ca-certificates", "locale-not-utf8",
}

pytestmark = pytest.mark.main_only

def findings(doc):
    return {f["id"]: f for f in doc["findings"]}


def tree_state(top):
    """Every entry's (type, size, mtime_ns, mode) under `top`, and sha256 of the
    files of dpkg's and apt's databases."""
    listing, sums = {}, {}
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            listing[p] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, st.st_mode)
    for sub in ("var/lib/dpkg", "var/lib/apt", "var/cache/apt", "etc/apt"):
        for d, _dirs, files in os.walk(os.path.join(top, sub)):
            for name in files:
                p = os.path.join(d, name)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        sums[p] = hashlib.sha256(f.read()).hexdigest()
    return listing, sums


FACTS = r"""
set -u
echo "== build-tools"; dpkg-query -W -f '${Package} ${Installed-Size}\n' gcc-12 libc6-dev cpp-12 binutils
echo "== manual"; apt-mark showmanual | tr '\n' ' '; echo
echo "== lists"; find /var/lib/apt/lists -type f ! -name lock -printf '%s\n' | awk '{s+=$1} END {print NR, s}'
echo "== debs"; find /var/cache/apt/archives -name '*.deb' -type f -printf '%s %p\n' | sort -k2
echo "== bins"; find /var/cache/apt -maxdepth 1 -name '*.bin' -type f -printf '%s %p\n' | sort -k2
echo "== missing-pyc"
for lib in /usr/local/lib/python3.12:312 /usr/lib/python3.11:311; do
  dir=${lib%:*}; tag=${lib#*:}
  find "$dir" \( -name test -o -name tests -o -name idle_test -o -name site-packages \
      -o -name dist-packages -o -name __pycache__ -o -name 'config-*' \) -prune -o -name '*.py' -type f -print |
  while read -r f; do
    d=${f%/*}; b=${f##*/}; b=${b%.py}
    [ -e "$d/__pycache__/$b.cpython-$tag.pyc" ] || echo "$f"
  done
done | sort | awk '{n++} END {print n+0}'
echo "== security"; apt list --upgradable 2>/dev/null | grep -- '-security' | cut -d/ -f1 | sort | tr '\n' ' '; echo
echo "== ca"; dpkg-query -W -f '${Status}\n' ca-certificates 2>&1 | head -1; ls /etc/ssl/certs/ca-certificates.crt 2>&1 | head -1
echo "== idle_test"; find /usr/local/lib/python3.12/idlelib/idle_test -type f -printf '%s\n' | awk '{s+=$1} END {print s}'
echo "== end"
"""


def parse_facts(text):
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    return sections


def test_dirty_image_reports_every_planted_check(builder, pyz, tmp_path):
    context = context_with_python(tmp_path)
    image = builder.build(context, dockerfile="Dockerfile.dirty",
                          extra_files={"pyimgtools.pyz": pyz})

    # -- inside the image ---------------------------------------------------------
    proc = builder.run(image, "pyimgtools audit --json", check=False, env=NO_PYC)
    assert proc.returncode == 100, proc.stderr[-3000:]
    inside = json.loads(proc.stdout)
    got = findings(inside)
    assert PLANTED <= set(got), sorted(PLANTED - set(got))
    assert set(got) - PLANTED == set(), "unexpected findings: %s" % sorted(set(got) - PLANTED)
    human = builder.run(image, "pyimgtools audit", check=False, env=NO_PYC)
    assert human.returncode == 100
    for fid in PLANTED:
        assert fid in human.stdout
    assert human.stdout.strip().splitlines()[-1].startswith(
        "pyimgtools audit: 2 errors, %d warnings, 0 info;" % (len(PLANTED) - 2))
    assert builder.run(image, "pyimgtools audit --fail-on never -q", check=False,
                       env=NO_PYC).returncode == 0

    facts = parse_facts(builder.run(image, FACTS).stdout)

    # severities
    for fid in ("security-updates", "unresolved-libs"):
        assert got[fid]["severity"] == "error"
    for fid in PLANTED - {"security-updates", "unresolved-libs"}:
        assert got[fid]["severity"] == "warn", fid

    # two Pythons: /usr/local's and Debian's, Debian's pulled in by the manual python3
    two = got["two-pythons"]
    assert sorted(two["paths"]) == ["/usr/bin/python3.11", "/usr/local/bin/python3.12"]
    manual = facts["manual"][0].split()
    assert "python3" in manual
    debian_python = {"python3", "python3.11", "python3.11-minimal", "libpython3.11-stdlib",
                     "libpython3.11-minimal", "libpython3.11"}
    assert two["data"]["pulled_in_by"] == sorted(debian_python & set(manual))

    # build tools with dpkg's Installed-Size
    sizes = dict(line.split() for line in facts["build-tools"])
    tools = {p["package"].split(":")[0]: p for p in got["build-tools"]["data"]["packages"]}
    for name, kib in sizes.items():
        assert tools[name]["installed_bytes"] == int(kib) * 1024, name
    assert tools["gcc"]["manual"] is True and tools["gcc-12"]["manual"] is False

    # apt leftovers, byte for byte
    nfiles, nbytes = map(int, facts["lists"][0].split())
    assert (len(got["apt-lists"]["paths"]), got["apt-lists"]["bytes"]) == (nfiles, nbytes)
    debs = [line.split(" ", 1) for line in facts["debs"]]
    assert debs, "the dirty image should keep its .debs"
    assert sorted(got["apt-debs"]["paths"]) == sorted(p for _, p in debs)
    assert got["apt-debs"]["bytes"] == sum(int(s) for s, _ in debs)
    bins = [line.split(" ", 1) for line in facts["bins"]]
    assert sorted(got["apt-pkgcache"]["paths"]) == sorted(p for _, p in bins)
    assert got["apt-pkgcache"]["bytes"] == sum(int(s) for s, _ in bins)
    assert (got["pip-cache"]["paths"], got["pip-cache"]["bytes"]) == (["/root/.cache/pip"], 65536)
    assert (got["uv-cache"]["paths"], got["uv-cache"]["bytes"]) == (["/root/.cache/uv"], 32768)

    # bytecode: every .py without a .pyc, counted by find; the planted stale one
    assert got["stdlib-missing-pyc"]["data"]["modules"] == int(facts["missing-pyc"][0])
    assert got["stdlib-missing-pyc"]["data"]["modules"] > 500
    assert all(p.startswith(STDLIB + "/") for p in got["stdlib-missing-pyc"]["paths"])
    assert got["stdlib-stale-pyc"]["paths"] == [STDLIB + "/json/decoder.py"]

    # pending security updates: apt's own list is contained, the planted ones are in it
    pending = {p["package"].split(":")[0] for p in got["security-updates"]["data"]["pending"]}
    apt_says = set(facts["security"][0].split())
    assert apt_says, "no pending security update for the planted point-release packages"
    assert apt_says <= pending
    assert {"python3.11", "libssl3"} & pending

    # the purged library, confirmed by ldd inside the image; every reported miss too
    missing = {(m["needer"], m["library"]) for m in got["unresolved-libs"]["data"]["missing"]}
    assert ("/usr/local/lib/libplanted.so", "libyaml-0.so.2") in missing
    for needer, library in sorted(missing):
        out = builder.run(image, "ldd '%s'" % needer, check=False).stdout
        assert "%s => not found" % library in out, (needer, library, out)

    # dead weight: idle_test (size by find), nothing that is not dead weight
    dead = got["dead-weight"]
    assert STDLIB + "/idlelib/idle_test" in dead["paths"]
    assert dead["data"]["by_rule"]["tests"]["bytes"] >= int(facts["idle_test"][0])
    for p in dead["paths"]:
        base = p.rsplit("/", 1)[-1]
        assert base in ("test", "tests", "idle_test") or base.endswith(".a") \
            or "/share/" in p, p

    assert got["broken-dist-info"]["paths"] == [STDLIB + "/site-packages/planted-1.0.dist-info"]
    assert got["dangling-symlinks"]["paths"] == ["/usr/local/bin/python-planted"]
    assert "no packages found" in facts["ca"][0] or "not-installed" in facts["ca"][0]
    assert "No such file" in facts["ca"][1]
    assert sorted(p.rsplit("/", 1)[0] for p in got["no-ca-certificates"]["paths"]) == [
        "/usr/lib/python3.11/lib-dynload", STDLIB + "/lib-dynload"]
    assert got["locale-not-utf8"]["data"] == {"variable": "LANG", "value": "C"}

    # -- from outside, on the mounted image; and nothing changes -------------------------
    env_file = image_env_file(image, str(tmp_path / "env.txt"))
    with builder.mounted(image) as mnt:
        before = tree_state(mnt)
        proc = run_cli("audit", "--root", mnt, "--env", env_file, "--json")
        after = tree_state(mnt)
    assert proc.returncode == 100, proc.stderr[-3000:]
    outside = json.loads(proc.stdout)
    assert comparable(outside) == comparable(inside)
    assert before[1] == after[1], "dpkg/apt database changed"
    changed = sorted(p for p in set(before[0]) | set(after[0]) if before[0].get(p) != after[0].get(p))
    assert changed == [], changed[:20]
    assert len(before[0]) > 5000 and any(p.endswith("var/lib/dpkg/status") for p in before[1])


def test_clean_image_has_nothing_at_warn_or_error(builder, pyz, tmp_path):
    context = context_with_python(tmp_path)
    # The Dockerfile's last step is `pyimgtools audit --fail-on warn`: the build
    # itself fails on any warning.
    image = builder.build(context, dockerfile="Dockerfile.clean",
                          extra_files={"pyimgtools.pyz": pyz})
    proc = builder.run(image, "pyimgtools audit --json --fail-on warn", check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert [(f["id"], f["severity"]) for f in doc["findings"]] == [("security-updates-unknown", "info")]
    # every check really looked, but the image-only ones (they need the layers)
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert {status.pop("layer-waste"), status.pop("layer-efficiency")} == {"skipped"}
    assert set(status.values()) == {"clean", "found"}, status
    # the same from outside
    env_file = image_env_file(image, str(tmp_path / "env.txt"))
    with builder.mounted(image) as mnt:
        out = run_cli("audit", "--root", mnt, "--env", env_file, "--json", "--fail-on", "warn")
    assert out.returncode == 0, out.stdout[-3000:]
    assert comparable(json.loads(out.stdout)) == comparable(doc)
    # and the image works: Python starts, ssl verifies against the bundle
    check = builder.run(image, "python3 -c 'import ssl, sqlite3, readline, ctypes; "
                               "print(ssl.create_default_context().cert_store_stats()[\"x509_ca\"] > 0)'")
    assert check.stdout.strip() == "True"
