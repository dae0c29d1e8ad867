"""keep --root: a Debian rootfs analysed from outside equals ldd + dpkg-query run inside it.

The chroot (bookworm, trixie) has Debian's python3; keep runs on the host with
--root pointing at the chroot, so its ld.so.cache, dpkg database and symlinks
(usrmerge /lib -> usr/lib) must all be read inside it. The expected set comes
from `ldd` and `dpkg-query --search` run inside the chroot.
"""

import os
import shutil

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.main_only

SCANNED = ("/usr/lib/python3/dist-packages", "/usr/bin")


def elf_files(root, top):
    found = []
    for dirpath, dirnames, filenames in os.walk(root.host(top)):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append("/" + os.path.relpath(path, root.path))
    return sorted(found)


def outside_link_targets(root, tops):
    """Targets (resolved inside the chroot) of symlinks under tops to ELF files
    outside them, e.g. /usr/bin/pidof -> /sbin/killall5: keep keeps those."""
    out = root.run(["sh", "-c", 'find "$@" -type l -exec readlink -f {} +', "links"]
                   + list(tops)).stdout
    found = set()
    for target in out.splitlines():
        if any(target.startswith(t + "/") for t in tops) or not os.path.isfile(root.host(target)):
            continue
        with open(root.host(target), "rb") as f:
            if f.read(4) == b"\x7fELF":
                found.add(target)
    return sorted(found)


def expected_inside(root, tops):
    links = outside_link_targets(root, tops)
    files = [f for top in tops for f in elf_files(root, top)] + links
    script = 'for f in "$@"; do ldd "$f" 2>/dev/null; done'
    out = root.run(["sh", "-c", script, "ldd-all"] + files).stdout
    libs = set()
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            rest = line.partition("=>")[2].strip()
            if rest.startswith("/"):
                libs.add(rest.rsplit(" (", 1)[0])
        elif line.startswith("/"):
            libs.add(line.rsplit(" (", 1)[0])
    libs = {l for l in libs if not any(l.startswith(t + "/") for t in tops)} | set(links)
    asked = set()
    for l in libs:
        asked.add(l)
        for merged in ("/usr/lib", "/usr/bin", "/usr/sbin"):      # /lib*, /bin, /sbin
            if l.startswith(merged):
                asked.add(l[4:])
            elif l.startswith(merged[4:]):
                asked.add("/usr" + l)
    out = root.run(["dpkg-query", "--search"] + sorted(asked), check=False).stdout
    packages = set()
    for line in out.splitlines():
        if line.startswith("diversion by"):
            continue
        pkgs, sep, _ = line.partition(": /")
        if sep:
            packages.update(p.strip() for p in pkgs.split(","))
    return packages


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_root_from_outside_equals_ldd_inside(chroot_factory, suite):
    root = chroot_factory(suite)
    root.apt_install("python3", "python3-yaml")     # python3-yaml: an extension module + libyaml
    expected = expected_inside(root, SCANNED)
    assert any(p.startswith("libyaml-0-2") for p in expected)
    assert "/sbin/killall5" in outside_link_targets(root, SCANNED) or \
        "/usr/sbin/killall5" in outside_link_targets(root, SCANNED)
    proc = run_cli("--root", root.path, "keep", "--print", *SCANNED)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == expected

    # the same run inside the image, with its own python3
    shutil.copytree(os.path.join(REPO, "pyimgtools"), root.host("/opt/pyimgtools-src/pyimgtools"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    inside = root.run("PYTHONPATH=/opt/pyimgtools-src python3 -m pyimgtools keep --print "
                      + " ".join(SCANNED))
    assert set(inside.stdout.split()) == expected

    # a real run from outside marks them manual inside (apt-mark through chroot)
    root.run("apt-mark auto $(apt-mark showmanual)")
    proc = run_cli("--root", root.path, "keep", *SCANNED)
    assert proc.returncode == 0, proc.stderr
    manual = set(root.run("apt-mark showmanual").stdout.split())
    assert {p.split(":")[0] for p in expected} == manual
