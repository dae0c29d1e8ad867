"""`compile --root R`: the image's own interpreter (`--python` is a path in the image),
run by the image's own loader, with in-image file names in the code objects.

The image here is made from the interpreter running the tests: its binary at
/usr/bin/python3 and the objects the loader maps for it (glibc's loader, libc, ...)
at their own paths, hard links where the file system allows. It finds no stdlib
inside the image and falls back to its build prefix on the host, which is enough
to compile explicit PATHs. The real thing (sid's python3.14 on a bookworm host):
tests/integration/test_compile_sid.py.
"""

import json
import marshal
import os
import shutil
import sys

import pytest

from pyimgtools import image_python
from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.compile_support import pyc
from tests.harness.inprocess import in_process


def _put(image, src, dest):
    dest = os.path.join(str(image), dest.lstrip("/"))
    if os.path.exists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        os.link(os.path.realpath(src), dest)
    except OSError:
        shutil.copy2(os.path.realpath(src), dest)


@pytest.fixture
def image(tmp_path):
    root = tmp_path / "image"
    real = os.path.realpath(sys.executable)
    _put(root, real, "/usr/bin/python3")
    for dep in Loader(Root("/")).load_tree(real).dependencies:
        if dep.path:
            _put(root, dep.path, dep.path)
    return root


def compile_in(image, *args):
    proc = in_process("--json", "compile", "--root", str(image), *args)
    return proc, json.loads(proc.stdout) if proc.stdout.strip() else None


def test_root_compiles_image_paths_and_never_writes_outside(image, tmp_path):
    app = image / "srv" / "app"
    app.mkdir(parents=True)
    (app / "real.py").write_text("def g():\n    return 1\n")
    os.symlink("/srv/app/real.py", str(app / "alias.py"))  # absolute: resolved inside the root
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = image / "srv" / "evil"
    evil.mkdir()
    (evil / "e.py").write_text("E = 1\n")
    os.symlink(str(outside), str(evil / "__pycache__"))
    proc, doc = compile_in(image, "--python", "/usr/bin/python3", "/srv")
    assert proc.returncode == 1
    assert [f["path"] for f in doc["failures"]] == ["/srv/evil/e.py"]
    assert os.listdir(str(outside)) == []
    assert sorted(doc["compiled"]) == ["/srv/app/alias.py", "/srv/app/real.py"]
    assert doc["python"]["executable"] == "/usr/bin/python3"
    with open(pyc(app / "alias.py"), "rb") as f:
        code = marshal.loads(f.read()[16:])
    assert code.co_filename == "/srv/app/alias.py"
    # PATH relative to nothing in the image: a usage error
    assert in_process("compile", "--root", str(image), "--python", "/usr/bin/python3", "srv").returncode == 2


def test_python_defaults_to_the_images_python3(image):
    (image / "srv").mkdir()
    (image / "srv" / "m.py").write_text("M = 1\n")
    proc, doc = compile_in(image, "/srv")
    assert proc.returncode == 0, proc.stderr
    assert doc["python"]["executable"] == "/usr/bin/python3"
    assert doc["compiled"] == ["/srv/m.py"]


def test_python_is_a_path_in_the_image(image):
    (image / "srv").mkdir()
    # the host path of the image's interpreter is not a path in the image
    host_path = str(image / "usr" / "bin" / "python3")
    proc = in_process("compile", "--root", str(image), "--python", host_path, "/srv")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "pyimgtools: error: --python %s: no such file in the image %s" % (
        host_path, image)
    assert in_process("compile", "--root", str(image), "--python", "usr/bin/python3", "/srv").returncode == 2
    (image / "usr" / "bin" / "wrapper").write_text("#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n")
    os.chmod(str(image / "usr" / "bin" / "wrapper"), 0o755)
    proc = in_process("compile", "--root", str(image), "--python", "/usr/bin/wrapper", "/srv")
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert "a script, not the interpreter" in proc.stderr
    empty = image.parent / "empty"
    empty.mkdir()
    proc = in_process("compile", "--root", str(empty), "/")
    assert proc.returncode == 2 and "no python3 in the image" in proc.stderr


def test_a_loader_failure_is_reported_as_such(image):
    (image / "srv").mkdir()
    (image / "srv" / "m.py").write_text("M = 1\n")
    loader = image / "lib64" / "ld-linux-x86-64.so.2"
    loader.unlink()
    # An image whose loader cannot start the interpreter, in ld.so's own words.
    loader.write_text("#!/bin/sh\necho \"$5: error while loading shared libraries: libpython9.so: "
                      "cannot open shared object file: No such file or directory\" >&2\nexit 127\n")
    os.chmod(str(loader), 0o755)
    proc = in_process("compile", "--root", str(image), "--python", "/usr/bin/python3", "/srv")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyimgtools: error: --python /usr/bin/python3: the image's loader "
                               "/lib64/ld-linux-x86-64.so.2 could not start it: ")
    assert lines[0].endswith("libpython9.so: cannot open shared object file: No such file or directory")
    assert "Traceback" not in proc.stderr and not os.path.exists(pyc(image / "srv" / "m.py"))


def test_a_stdlib_outside_the_image_is_one_error_line(image):
    proc = in_process("compile", "--root", str(image), "--python", "/usr/bin/python3", "--dry-run")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "pyimgtools: error: --python /usr/bin/python3: its standard library is not inside the root %s"
        % image]


def test_paths_the_interpreter_reports_map_back_into_the_root(tmp_path):
    real = tmp_path / "real"
    (real / "usr" / "lib").mkdir(parents=True)
    os.symlink(str(real), str(tmp_path / "via-link"))
    root = Root(str(tmp_path / "via-link"))
    assert image_python.to_image(root, str(tmp_path / "via-link/usr/lib/python3.14")) == "/usr/lib/python3.14"
    assert image_python.to_image(root, str(real / "usr/lib/python3.14")) == "/usr/lib/python3.14"
    assert image_python.to_image(root, "/usr/lib/python3.14") is None
    assert image_python.to_image(root, str(real) + "x/usr") is None
