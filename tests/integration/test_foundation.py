"""The harness itself on the real thing: buildah image from the debootstrapped
base, the pyz inside it, and the rootfs configured like the slim images (the unit
and system layers under trixie's Python 3.13 run in scripts/test's trixie rootfs run)."""

import os

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
