"""Dry runs and real runs agree (issue 14's acceptance) in bookworm chroots.

For `build-deps install`, `keep`, `build-deps purge` and `security-upgrade`:
the dry run (--json and text) first, then the real run; the package lists
each announced must be what changed in the chroot's own database (the
reference: `dpkg-query` before and after, `apt-mark showmanual` for keep's
marks), and the byte totals the dry run announced must be within 5 % of the
change in Installed-Size that dpkg-query shows. Names are compared without
the `:arch` dpkg adds to Multi-Arch: same packages.

pyimgtools runs from the host with --root (apt runs through chroot), so the
chroot needs no python3. A local flat repository (apt's [trusted=yes] file:
source) holds a newer version of a small package that is installed: an
upgrade that does not depend on what the archive has today; for
security-upgrade its Release file carries Debian-Security's label.
"""

import hashlib
import json
import os

import pytest

from tests.conftest import run_cli
from tests.harness.json_envelope import key_order_errors, validate

pytestmark = pytest.mark.main_only

DUMMY = "pyimgtools-dummy"


def dpkg_state(root):
    """{name without :arch: (version, Installed-Size in bytes)} of installed packages."""
    out = root.run(["dpkg-query", "-W", "-f",
                    "${binary:Package}\\t${Version}\\t${Installed-Size}\\t${db:Status-Abbrev}\\n"])
    state = {}
    for line in out.stdout.splitlines():
        name, version, size, status = line.split("\t")
        if status[1:2] != "i":
            continue
        bare = name.split(":")[0]
        assert bare not in state, "two architectures of %s: compare by dpkg name" % bare
        state[bare] = (version, int(size or 0) * 1024)
    return state


def changed(before, after):
    """(new, other version, gone) name sets and their byte totals, from dpkg-query."""
    new = set(after) - set(before)
    other = {n for n in set(after) & set(before) if after[n][0] != before[n][0]}
    gone = set(before) - set(after)
    return {"new": new, "other": other, "gone": gone,
            "new_bytes": sum(after[n][1] for n in new),
            "other_bytes": sum(after[n][1] for n in other),
            "gone_bytes": sum(before[n][1] for n in gone),
            "change_bytes": sum(s for _v, s in after.values()) - sum(s for _v, s in before.values())}


def bare(names):
    return {n.split(":")[0] for n in names}


def near(announced, real):
    """Within 5 % of the real change (exact when the real change is 0)."""
    return abs(announced - real) <= 0.05 * abs(real)


def local_repo(root, label=None):
    """DUMMY 1.0 installed, 2.0 in a flat repository at /srv/repo with a Release file
    (Label/Suite `label` when given)."""
    for version, dest in (("1.0", "/tmp"), ("2.0", "/srv/repo")):
        # a file of some size and an Installed-Size (dpkg-deb -b adds none): the
        # upgrade changes the total
        kib = 40 if version == "1.0" else 90
        root.run("mkdir -p /tmp/pkg-{v}/DEBIAN /tmp/pkg-{v}/usr/share/{p} {d} && "
                 "head -c {n} /dev/zero > /tmp/pkg-{v}/usr/share/{p}/data && "
                 "printf 'Package: {p}\\nVersion: {v}\\nArchitecture: all\\nInstalled-Size: {k}\\n"
                 "Maintainer: Test <test@example.org>\\nDescription: test\\n' "
                 "> /tmp/pkg-{v}/DEBIAN/control && "
                 "dpkg-deb -b /tmp/pkg-{v} {d}/{p}_{v}_all.deb >/dev/null".format(
                     v=version, d=dest, p=DUMMY, n=kib * 1000, k=kib))
    root.run("dpkg -i /tmp/%s_1.0_all.deb >/dev/null" % DUMMY)
    deb = "/srv/repo/%s_2.0_all.deb" % DUMMY
    with open(root.host(deb), "rb") as f:
        data = f.read()
    size = root.run(["dpkg-deb", "-f", deb, "Installed-Size"]).stdout.strip()
    assert size == "90"
    with open(root.host("/srv/repo/Packages"), "w") as f:
        f.write("Package: %s\nVersion: 2.0\nArchitecture: all\nInstalled-Size: %s\n"
                "Maintainer: Test <test@example.org>\nFilename: ./%s\nSize: %d\nSHA256: %s\n"
                "Description: test\n\n" % (DUMMY, size, os.path.basename(deb), len(data),
                                           hashlib.sha256(data).hexdigest()))
    if label:
        with open(root.host("/srv/repo/Release"), "w") as f:
            f.write("Origin: Debian\nLabel: %s\nSuite: bookworm-security\n"
                    "Codename: bookworm-security\n" % label)
    with open(root.host("/etc/apt/sources.list.d/local.list"), "w") as f:
        f.write("deb [trusted=yes] file:/srv/repo ./\n")


def cli_json(*args):
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    # every real and dry run of the root-only commands: the documented envelope (docs/json.md)
    assert validate(doc) + key_order_errors(doc) == []
    return doc


def cli_lines(*args):
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def prefixed(lines, prefix):
    return {l[len(prefix):].split()[0] for l in lines if l.startswith(prefix)}


def no_lists(root):
    return [n for n in os.listdir(root.host("/var/lib/apt/lists")) if "_Packages" in n] == []


def test_build_deps_install_keep_and_purge(chroot_factory):
    root = chroot_factory("bookworm")
    local_repo(root)
    # libpq-dev: new packages, some Multi-Arch: same (libpq5, libssl-dev);
    # DUMMY: an upgrade; bash: installed already. No apt lists in the rootfs:
    # the dry run fetches them for its simulation as the real run does, and
    # removes them again.
    install = ["--root", root.path, "build-deps", "install", "libpq-dev", DUMMY, "bash"]
    start = dpkg_state(root)
    dry = cli_json(*install, "--dry-run")
    text = cli_lines(*install, "--dry-run")
    assert dpkg_state(root) == start and no_lists(root)
    assert not os.path.exists(root.host("/var/lib/pyimgtools"))
    assert prefixed(text, "would install: ") == set(dry["install"])
    assert prefixed(text, "would upgrade: ") == set(dry["upgrade"])
    real = cli_json(*install)
    ref = changed(start, dpkg_state(root))
    assert "libpq-dev" in ref["new"] and ref["other"] >= {DUMMY} and not ref["gone"]
    assert "bash" not in ref["new"] | ref["other"]
    assert ref["other_bytes"] >= 90 * 1024       # the upgrade is sized too
    assert bare(dry["install"]) == ref["new"]
    assert bare(dry["upgrade"]) == ref["other"]
    assert (dry["install"], dry["upgrade"]) == (real["installed"], real["upgraded"])
    assert near(dry["install_bytes"], ref["new_bytes"]), (dry["install_bytes"], ref)
    assert near(dry["upgrade_bytes"], ref["other_bytes"]), (dry["upgrade_bytes"], ref)
    assert near(dry["change_bytes"], ref["change_bytes"]), (dry["change_bytes"], ref)

    # keep: the load tree of a copy of libpq.so.5 outside any package; libpq5's
    # dependencies are auto-installed, so keep marks them manual.
    root.run("mkdir -p /opt/app && cp /usr/lib/x86_64-linux-gnu/libpq.so.5 /opt/app/libcopy.so")
    keep = ["--root", root.path, "keep", "/opt/app"]
    manual = set(root.run("apt-mark showmanual").stdout.split())
    dry = cli_json(*keep, "--dry-run")
    text = cli_lines(*keep, "--dry-run")
    assert set(root.run("apt-mark showmanual").stdout.split()) == manual
    assert prefixed(text, "would mark manual: ") == set(dry["to_mark"])
    real = cli_json(*keep)
    marked = set(root.run("apt-mark showmanual").stdout.split()) - manual
    assert "libssl3" in bare(marked)
    assert bare(dry["to_mark"]) == bare(marked)
    assert real["marked"] == dry["to_mark"]

    # build-deps purge with the state the install saved, keeping what /opt/app needs
    purge = ["--root", root.path, "build-deps", "purge", "--keep-runtime", "/opt/app"]
    start = dpkg_state(root)
    dry = cli_json(*purge, "--dry-run")
    text = cli_lines(*purge, "--dry-run")
    assert dpkg_state(root) == start
    assert prefixed(text, "would remove: ") == set(dry["remove"])
    real = cli_json(*purge)
    ref = changed(start, dpkg_state(root))
    assert {"libpq-dev", "libpq5", "libssl-dev"} <= ref["gone"]
    assert "libssl3" not in ref["gone"] and not ref["new"] and not ref["other"]
    assert bare(dry["remove"]) == ref["gone"]
    assert dry["remove"] == real["removed"]
    assert near(dry["remove_bytes"], ref["gone_bytes"]), (dry["remove_bytes"], ref)


def test_security_upgrade(chroot_factory):
    root = chroot_factory("bookworm")
    local_repo(root, label="Debian-Security")   # one pending security update for sure
    upgrade = ["--root", root.path, "security-upgrade"]
    start = dpkg_state(root)
    dry = cli_json(*upgrade, "--dry-run")
    text = cli_lines(*upgrade, "--dry-run")
    assert dpkg_state(root) == start and no_lists(root)
    announced = {u["package"] for u in dry["pending"]} | {e["package"] for e in dry["extras"]}
    assert (prefixed(text, "would upgrade ") | prefixed(text, "would install extra from another "
                                                                "suite: ")) == announced
    assert DUMMY in announced
    real = cli_json(*upgrade)
    ref = changed(start, dpkg_state(root))
    assert not ref["gone"]
    assert bare(announced) == ref["new"] | ref["other"]
    assert bare(e["package"] for e in dry["extras"] if not e["installed"]) == ref["new"]
    assert {u["package"] for u in real["applied"]} == {u["package"] for u in dry["pending"]}
    assert near(dry["install_bytes"], ref["new_bytes"] + ref["other_bytes"]), (dry, ref)
    assert near(dry["change_bytes"], ref["change_bytes"]), (dry["change_bytes"], ref)
    assert (real["installed_bytes"], real["change_bytes"]) == (dry["install_bytes"],
                                                               dry["change_bytes"])
