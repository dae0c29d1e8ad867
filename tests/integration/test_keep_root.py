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
from tests.harness import keepref
from tests.harness.elfwalk import elf_files
from tests.harness.ldd import resolved_and_missing

pytestmark = pytest.mark.main_only

SCANNED = ("/usr/lib/python3/dist-packages", "/usr/bin")


def expected_inside(root, tops):
    links = keepref.outside_link_targets(root, tops)
    files = [f for top in tops for f in elf_files(root.host(top), root.path)] + links
    script = 'for f in "$@"; do ldd "$f" 2>/dev/null; done'
    resolved, _missing = resolved_and_missing(root.run(["sh", "-c", script, "ldd-all"] + files).stdout)
    libs = {l for l in resolved if not any(l.startswith(t + "/") for t in tops)} | set(links)
    owners = keepref.chroot_owners(root, sorted(libs))
    return set().union(*owners.values())


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_root_from_outside_equals_ldd_inside(chroot_factory, suite):
    root = chroot_factory(suite)
    root.apt_install("python3", "python3-yaml")     # python3-yaml: an extension module + libyaml
    expected = expected_inside(root, SCANNED)
    assert any(p.startswith("libyaml-0-2") for p in expected)
    assert "/sbin/killall5" in keepref.outside_link_targets(root, SCANNED) or \
        "/usr/sbin/killall5" in keepref.outside_link_targets(root, SCANNED)
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
