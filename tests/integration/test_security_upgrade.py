"""security-upgrade in debootstrapped bookworm and trixie chroots and a buildah image.

The expected updates are computed by the test from apt's own output
(`apt list --upgradable`, `apt list -a`, `dpkg --compare-versions`), never
from pyimgtools. pyimgtools runs inside the chroot, under the chroot's python3.
"""

import fcntl
import hashlib
import json
import os
import shutil

import pytest

from tests.conftest import REPO, run_cli
from tests.harness.json_envelope import key_order_errors, validate

pytestmark = pytest.mark.main_only

RUN = "PYTHONPATH=/opt/pyimgtools python3 -m pyimgtools security-upgrade "


def prepare(c):
    """python3 inside, this checkout's pyimgtools at /opt/pyimgtools; the lists stay."""
    c.run("apt-get update -qq && apt-get install -y -qq --no-install-recommends python3")
    shutil.copytree(os.path.join(REPO, "pyimgtools"), c.host("/opt/pyimgtools/pyimgtools"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def lists(c):
    return sorted(os.listdir(c.host("/var/lib/apt/lists")))


def installed_versions(c):
    out = c.run(["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]).stdout
    return {name: version for name, version, status in
            (line.split("\t") for line in out.splitlines()) if status[1:2] == "i"}


def upgradable(c):
    """{name: (candidate, [suites], installed)} from `apt list --upgradable`."""
    found = {}
    for line in c.run("apt list --upgradable 2>/dev/null").stdout.splitlines():
        if "[upgradable from:" not in line:
            continue
        head, version = line.split()[:2]
        name, suites = head.split("/", 1)
        old = line.rsplit("[upgradable from: ", 1)[1].rstrip("]")
        found[name] = (version, suites.split(","), old)
    return found


def dpkg_gt(c, a, b):
    return c.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def expected_security(c):
    """{name: version}: what apt shows upgradable from a -security suite; plus, for a
    package whose candidate comes from another suite, a -security version newer than
    the installed one if apt lists one (`apt list -a`)."""
    expected = {}
    for name, (version, suites, old) in upgradable(c).items():
        if any(s.endswith("-security") for s in suites):
            expected[name] = version
            continue
        best = None
        for line in c.run(["apt", "list", "-a", name], check=False).stdout.splitlines():
            parts = line.split()
            if len(parts) < 2 or "/" not in parts[0]:
                continue
            if any(s.endswith("-security") for s in parts[0].split("/", 1)[1].split(",")):
                if dpkg_gt(c, parts[1], old) and (best is None or dpkg_gt(c, parts[1], best)):
                    best = parts[1]
        if best:
            expected[name] = best
    return expected


def security_upgradable(c):
    return sorted(n for n, (_v, suites, _o) in upgradable(c).items()
                  if any(s.endswith("-security") for s in suites))


def add_local_non_security_update(c):
    """pyimgtools-dummy 1.0 installed, 2.0 in a local flat repository (not security)."""
    for version, dest in (("1.0", "/tmp"), ("2.0", "/srv/repo")):
        c.run("mkdir -p /tmp/pkg-%s/DEBIAN %s && printf 'Package: pyimgtools-dummy\\nVersion: %s\\n"
              "Architecture: all\\nMaintainer: Test <test@example.org>\\nDescription: test\\n' "
              "> /tmp/pkg-%s/DEBIAN/control && dpkg-deb -b /tmp/pkg-%s %s/pyimgtools-dummy_%s_all.deb"
              " >/dev/null" % (version, dest, version, version, version, dest, version))
    c.run("dpkg -i /tmp/pyimgtools-dummy_1.0_all.deb >/dev/null")
    deb = c.host("/srv/repo/pyimgtools-dummy_2.0_all.deb")
    with open(deb, "rb") as f:
        data = f.read()
    with open(c.host("/srv/repo/Packages"), "w") as f:
        f.write("Package: pyimgtools-dummy\nVersion: 2.0\nArchitecture: all\n"
                "Maintainer: Test <test@example.org>\nFilename: ./pyimgtools-dummy_2.0_all.deb\n"
                "Size: %d\nSHA256: %s\nDescription: test\n\n"
                % (len(data), hashlib.sha256(data).hexdigest()))
    with open(c.host("/etc/apt/sources.list.d/local.list"), "w") as f:
        f.write("deb [trusted=yes] file:/srv/repo ./\n")


def run_json(c, args, user=None):
    proc = c.run(RUN + args + " --json", check=False, user=user)
    doc = json.loads(proc.stdout) if proc.stdout.strip() else None
    if doc is not None:     # the documented envelope (docs/json.md)
        assert validate(doc) + key_order_errors(doc) == []
    return proc, doc


def check_applies_exactly_the_security_updates(c, hold=None):
    c.run("apt-get update -qq")
    expected = expected_security(c)
    assert upgradable(c)["pyimgtools-dummy"][0] == "2.0"
    held = hold if hold in expected else None
    if held:
        c.run(["apt-mark", "hold", held])

    # --check as root (refreshes the lists it found, keeps them)
    proc, doc = run_json(c, "--check")
    assert proc.returncode == (100 if expected else 0), proc.stderr
    assert {u["package"]: u["candidate"] for u in doc["pending"] + doc["held"]} == expected
    assert [u["package"] for u in doc["held"]] == ([held] if held else [])
    assert all(u["suite"].endswith("-security") for u in doc["pending"])
    # --check without root, on the lists that are there
    proc, doc = run_json(c, "--check --no-update", user=65534)
    assert proc.returncode == (100 if expected else 0), proc.stderr
    assert {u["package"] for u in doc["pending"]} == set(expected) - {held}
    # applying needs root
    proc = c.run(RUN, check=False, user=65534)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("pyimgtools: error: security-upgrade (applying updates) needs "
                                   "root (run it as root, e.g. in a Dockerfile RUN step)")

    before = installed_versions(c)
    auto_before = set(c.run(["apt-mark", "showauto"]).stdout.split())
    proc, doc = run_json(c, "")
    assert proc.returncode == 0, proc.stderr
    after = installed_versions(c)
    extras = {e["package"] for e in doc["extras"]}
    assert {u["package"] for u in doc["applied"]} == set(expected) - {held}
    for name, version in expected.items():
        assert after[name] == (before[name] if name == held else version), name
    for name, version in before.items():
        if name not in expected and name not in extras:
            assert after.get(name) == version, name  # non-security upgrades untouched
    assert after["pyimgtools-dummy"] == "1.0"
    assert set(after) - set(before) <= extras       # nothing else was installed
    assert lists(c) == []
    assert "pyimgtools security-upgrade: installed" in proc.stderr.splitlines()[-1]
    auto_after = set(c.run(["apt-mark", "showauto"]).stdout.split())
    assert auto_after & set(before) == auto_before   # no auto package became manual

    c.run("apt-get update -qq")
    assert security_upgradable(c) == ([held] if held else [])
    proc = c.run(RUN + "--check", check=False)      # a second run has nothing to do
    assert proc.returncode == 0, proc.stdout + proc.stderr  # held ones are listed, not pending
    assert "0 security updates pending" in proc.stdout
    assert lists(c) != []                            # --check keeps the lists it found
    return expected


def test_bookworm_applies_exactly_the_pending_security_updates(chroot_factory):
    c = chroot_factory("bookworm")
    prepare(c)
    add_local_non_security_update(c)
    expected = check_applies_exactly_the_security_updates(c, hold="tzdata")
    assert expected, "bookworm's debootstrapped rootfs has pending security updates today"


def test_trixie_adds_a_temporary_security_source_when_none_is_configured(chroot_factory):
    c = chroot_factory("trixie")
    prepare(c)
    add_local_non_security_update(c)
    path = c.host("/etc/apt/sources.list.d/debian.sources")
    with open(path) as f:
        original = f.read()
    # Only the main and -updates stanza: the security stanza is the second one.
    with open(path, "w") as f:
        f.write(original.split("\n\n")[0] + "\n")
    proc = c.run(RUN + "--check --no-add-source", check=False)
    assert proc.returncode == 1
    assert "no trixie security source configured" in proc.stderr
    proc = c.run(RUN + "--dry-run", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "adding 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] " \
           "http://deb.debian.org/debian-security trixie-security main' for this run only" \
        in proc.stdout or "trixie-security main' for this run only" in proc.stdout
    assert sorted(os.listdir(c.host("/etc/apt/sources.list.d"))) == ["debian.sources", "local.list"]
    # The full acceptance, with the security source configured again.
    with open(path, "w") as f:
        f.write(original)
    check_applies_exactly_the_security_updates(c)


def dpkg_db_digest(c):
    h = hashlib.sha256()
    top = c.host("/var/lib/dpkg")
    for dirpath, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            h.update(os.path.relpath(p, top).encode() + b"\0")
            if not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def test_errors_unreachable_mirror_lock_held_interrupted_dpkg_alpine(chroot_factory):
    """Run from the host with --root (apt runs through chroot): no python3 needed inside."""
    c = chroot_factory("bookworm")
    with open(c.host("/etc/apt/sources.list.d/debian.sources"), "w") as f:
        f.write("Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm\nComponents: main\n")
    with open(c.host("/etc/apt/apt.conf.d/99test-no-retries"), "w") as f:
        f.write('Acquire::Retries "0";\n')
    digest = dpkg_db_digest(c)
    proc = run_cli("security-upgrade", "--root", c.path)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyimgtools: error: cannot refresh the apt lists: "
                               "http://127.0.0.1:9/debian")
    assert "no security source configured: adding 'deb http://127.0.0.1:9/debian-security " \
           "bookworm-security main' for this run only" in proc.stdout
    assert dpkg_db_digest(c) == digest
    assert sorted(os.listdir(c.host("/etc/apt/sources.list.d"))) == ["debian.sources"]
    # --no-update with an added source refreshes only that source (restricted source
    # list, APT::Get::List-Cleanup off): the error names the security mirror only.
    proc = run_cli("security-upgrade", "--root", c.path, "--no-update")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyimgtools: error: cannot refresh the apt lists: "
                                  "http://127.0.0.1:9/debian-security bookworm-security ")
    assert "(and" not in proc.stderr
    assert dpkg_db_digest(c) == digest
    assert sorted(os.listdir(c.host("/etc/apt/sources.list.d"))) == ["debian.sources"]

    # The apt lists lock held by another process: waits --lock-timeout, then says so.
    lock = c.host("/var/lib/apt/lists/lock")
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with open(lock, "a") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = run_cli("security-upgrade", "--root", c.path, "--lock-timeout", "2")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyimgtools: error: apt-get update: the apt/dpkg lock is still "
                                  "held after 2 s")
    assert len(proc.stderr.splitlines()) == 1
    # An interrupted dpkg: nothing is tried, the fix is named.
    with open(c.host("/var/lib/dpkg/updates/0001"), "w") as f:
        f.write("Package: bash\n")
    proc = run_cli("security-upgrade", "--root", c.path)
    assert proc.returncode == 1
    assert "dpkg was interrupted" in proc.stderr and "dpkg --configure -a" in proc.stderr
    # The dry run refuses alike (issue 14 item 10: it said "would install").
    dry = run_cli("security-upgrade", "--root", c.path, "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (proc.returncode, proc.stdout, proc.stderr)
    os.unlink(c.host("/var/lib/dpkg/updates/0001"))
    assert dpkg_db_digest(c) == digest

    os.unlink(c.host("/etc/os-release"))
    with open(c.host("/etc/os-release"), "w") as f:
        f.write('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n')
    proc = run_cli("security-upgrade", "--root", c.path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("pyimgtools: error: unsupported distribution Alpine Linux v3.20 "
                                  "(ID=alpine)")
    assert "apk upgrade" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert dpkg_db_digest(c) == digest


def test_buildah_image_has_no_pending_security_updates(builder, pyz):
    image = builder.build(os.path.join(REPO, "examples", "security-upgrade"),
                          extra_files={"pyimgtools.pyz": pyz})
    proc = builder.run(image, "ls /var/lib/apt/lists | wc -l; ls /var/cache/apt/archives/*.deb "
                              "2>/dev/null | wc -l")
    assert proc.stdout.split() == ["0", "0"]
    proc = builder.run(image, "apt-get update -qq && apt list --upgradable 2>/dev/null")
    pending = [l for l in proc.stdout.splitlines() if "-security" in l.split(" ")[0]]
    assert pending == []
