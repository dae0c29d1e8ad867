"""prune refuses targets that are never one application's tree (issue 14 item 3)
and ends every failed run with a `pyimgtools: error:` line (item 12)."""

import errno
import os

import pytest

from pyimgtools import cli
from tests.harness.prune_support import make_tree, prune


@pytest.mark.parametrize("path", ["/", "/usr", "/etc", "/var", "/home", "/usr/local/..", "/usr/./",
                                  "//", "/lib64"])
def test_system_targets_are_refused_in_one_line(path):
    proc = prune("--dry-run", path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyimgtools: error: refusing to prune: ")
    assert "--allow-system-dirs" in lines[0]


def test_empty_path_and_a_working_directory_of_slash_are_refused(tmp_path):
    make_tree(tmp_path / "t", {"tests/x": b"x", "m.pyc": b"x", "m.py": b""})
    proc = prune("", cwd=str(tmp_path / "t"))
    assert proc.returncode == 2 and "empty path" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert (tmp_path / "t/tests/x").exists() and (tmp_path / "t/m.pyc").exists()
    proc = prune("--dry-run", ".", cwd="/")
    assert proc.returncode == 2 and "file-system root" in proc.stderr


def test_inside_a_root_the_image_root_and_links_to_it_are_refused(tmp_path):
    image = tmp_path / "img"
    make_tree(image, {"usr/local/lib/tests/x": b"x", "app/m.pyc": b"x", "app/m.py": b""})
    os.symlink("/", str(image / "everything"))
    for path in ("/", "/everything", "/usr"):
        proc = prune("--dry-run", "--root", image, path)
        assert proc.returncode == 2, (path, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1
    assert prune("--dry-run", "--root", image, "/usr/local").returncode == 0
    assert prune("--dry-run", "--root", image, "/app").returncode == 0
    proc = prune("--allow-system-dirs", "--root", image, "/")
    assert proc.returncode == 0, proc.stderr
    assert not (image / "usr/local/lib/tests").exists() and not (image / "app/m.pyc").exists()


def test_failed_removals_end_with_an_error_line(tmp_path, monkeypatch, capsys):
    top = tmp_path / "t"
    make_tree(top, {"a/tests/x": b"", "b/m.pyc": b"", "b/m.py": b""})
    real_unlink = os.unlink

    def unlink(path, *args, **kw):
        if os.fsdecode(path) == "x":
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), path)
        return real_unlink(path, *args, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    rc = cli.main(["prune", str(top)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1
    assert any(l.startswith("pyimgtools: warning: ") and "a/tests/x" in l for l in err)
    assert err[-1].startswith("pyimgtools: error: ") and "1 path" in err[-1]
    assert not (top / "b/m.pyc").exists()
