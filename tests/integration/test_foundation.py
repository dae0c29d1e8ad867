"""The harness itself on the real thing: buildah image from the debootstrapped
base, the pyz inside it, and the unit tests under trixie's Python 3.13."""

import os
import shutil

from pyimgtools import __version__
from tests.conftest import REPO


def test_pyz_runs_in_an_image_built_by_buildah(builder, pyz):
    image = builder.build(os.path.join(REPO, "examples", "hello"),
                          extra_files={"pyimgtools.pyz": pyz})
    proc = builder.run(image, "pyimgtools --version && python3 --version")
    assert proc.stdout.splitlines()[0] == "pyimgtools " + __version__
    # The base really is the debootstrapped bookworm, not a registry image.
    proc = builder.run(image, ". /etc/os-release && echo $VERSION_CODENAME; ls /var/lib/apt/lists | wc -l")
    assert proc.stdout.split() == ["bookworm", "0"]


def test_rootfs_is_configured_like_the_slim_images(chroot_factory):
    root = chroot_factory("bookworm")
    for name in ("docker-clean", "docker-gzip-indexes", "docker-no-languages",
                 "docker-autoremove-suggests"):
        assert os.path.exists(root.host("/etc/apt/apt.conf.d/" + name))
    assert os.listdir(root.host("/var/lib/apt/lists")) in ([], ["partial"], ["lock"], ["lock", "partial"],
                                                         ["partial", "lock"])
    suites = root.run("apt-get indextargets --format '$(RELEASE)' 2>/dev/null; "
                      "grep -h '^Suites' /etc/apt/sources.list.d/*.sources").stdout.split()
    assert {"bookworm", "bookworm-updates", "bookworm-security"} <= set(suites)
    # /usr/share/doc keeps only copyright files
    docs = root.run("find /usr/share/doc -type f ! -name copyright | wc -l").stdout.strip()
    assert docs == "0"
    # dpkg and apt work inside, and the cache of .debs is cleaned after each dpkg run
    root.apt_install("less")
    assert root.run("dpkg-query -W -f '${Status}' less").stdout == "install ok installed"
    assert not [n for n in os.listdir(root.host("/var/cache/apt/archives")) if n.endswith(".deb")]


def test_unit_tests_pass_under_trixie_python(chroot_factory):
    root = chroot_factory("trixie")
    root.apt_install("python3", "python3-pytest", "python3-hypothesis")
    dest = root.host("/src")
    os.makedirs(dest)
    for part in ("pyimgtools", "tests", "setup.cfg", "README.md"):
        src = os.path.join(REPO, part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, part),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(src, dest)
    version = root.run("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").stdout.strip()
    assert version == "3.13"
    proc = root.run("python3 -m pytest -q -p no:cacheprovider -m unit tests", cwd="/src", check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
