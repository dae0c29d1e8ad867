"""Loader-wide warnings (no or malformed ld.so.cache) reach the output once (issue 14 item 12)."""

import os
import shutil

from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.prereq import require
from tests.harness.keepcli import keep_cli
from tests.harness.keepimage import image_template  # noqa: F401 (a fixture)
from tests.harness.loaderimage import Image


def test_missing_cache_warning_is_carried_by_the_first_tree_only(tmp_path):
    img = Image(tmp_path / "root", cache=False)
    loader = Loader(Root(img.base))
    first = loader.load_tree(img.exe("/usr/bin/a"))
    second = loader.load_tree(img.exe("/usr/bin/b"))
    assert [w for w in first.warnings if "ld.so.cache" in w] == [
        "no /etc/ld.so.cache: searching the directories of /etc/ld.so.conf instead, "
        "as ldconfig would cache them"]
    assert not [w for w in second.warnings if "ld.so.cache" in w]


def test_malformed_cache_warning_reaches_the_tree(tmp_path):
    img = Image(tmp_path / "root")
    with open(img.host("/etc/ld.so.cache"), "wb") as f:
        f.write(b"glibc-ld.so.cache1.1 truncated")
    tree = Loader(Root(img.base)).load_tree(img.exe("/usr/bin/prog"))
    assert any(w.startswith("/etc/ld.so.cache: ") and w.endswith("; searching without it")
               for w in tree.warnings)


def test_keep_prints_the_missing_cache_warning(image_template, tmp_path):
    require(shutil.which("gcc") is not None, "needs gcc")
    root = tmp_path / "root"
    shutil.copytree(str(image_template), str(root), symlinks=True)
    assert not os.path.exists(str(root / "etc/ld.so.cache"))
    proc = keep_cli(root, "--print")
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if "ld.so.cache" in l]
    assert len(lines) == 1 and lines[0].startswith("pyimgtools: warning: no /etc/ld.so.cache")
