"""`audit IMAGE`: the image view (pyimgtools/image/view.py), the CLI, the layer findings.

Images are built with tarfile (tests/harness/imagearchive.py, laid out as the
specs say); expected trees, bytes and efficiencies are worked out by hand
from what the layers hold, never taken from audit's output.
"""

import importlib.util
import io
import json
import os
import stat
import sys
import tarfile

import pytest

from pyimgtools.audit import needs
from pyimgtools.audit.checks_bytecode import pyc_status
from pyimgtools.commands.audit import parse_size
from pyimgtools.fs import Root
from pyimgtools.image import ImageError, Peek, read_image, view
from tests.conftest import run_cli
from tests.harness.imagearchive import (D, F, L, S, config_for, docker_save, layer_tar, oci_dir,
                                        tar_dir)
from tests.harness.json_envelope import validate

MTIME_NS = 1700000000 * 10**9     # layer_tar's mtime
ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4
PYC = b"\x55\x0d\x0d\x0a" + b"\0" * 4 + b"\x01\x02\x03\x04" + b"\x10\0\0\0" + b"code" * 100
PAYLOAD = b"not read by any check " * 1000

BASE = layer_tar([
    D("etc"), F("etc/os-release", b"ID=debian\nVERSION_ID=12\n"),
    D("usr"), D("usr/bin"), F("usr/bin/tool", ELF, 0o4755), S("usr/bin/alias", "tool"),
    L("usr/bin/tool-link", "usr/bin/tool"),
    D("usr/share"), F("usr/share/payload.bin", PAYLOAD, 0o640),
    D("usr/lib"), D("usr/lib/python3.11"), F("usr/lib/python3.11/os.py", b"import sys\n"),
    D("usr/lib/python3.11/__pycache__"), F("usr/lib/python3.11/__pycache__/os.cpython-311.pyc", PYC),
    D("srv", 0o700), F("srv/empty", b""),
])


def expected_view():
    """path -> (type, size, mode) from the BASE layer's entries (by hand)."""
    return {
        "/etc": ("dir", 0o755), "/etc/os-release": ("file", 24, 0o644),
        "/usr": ("dir", 0o755), "/usr/bin": ("dir", 0o755),
        "/usr/bin/tool": ("file", len(ELF), 0o4755), "/usr/bin/alias": ("symlink", "tool"),
        "/usr/bin/tool-link": ("file", len(ELF), 0o4755),
        "/usr/share": ("dir", 0o755), "/usr/share/payload.bin": ("file", len(PAYLOAD), 0o640),
        "/usr/lib": ("dir", 0o755), "/usr/lib/python3.11": ("dir", 0o755),
        "/usr/lib/python3.11/os.py": ("file", 11, 0o644),
        "/usr/lib/python3.11/__pycache__": ("dir", 0o755),
        "/usr/lib/python3.11/__pycache__/os.cpython-311.pyc": ("file", len(PYC), 0o644),
        "/srv": ("dir", 0o700), "/srv/empty": ("file", 0, 0o644),
    }


def listing(top):
    out = {}
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            path = "/" + os.path.relpath(p, top)
            if stat.S_ISLNK(st.st_mode):
                out[path] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[path] = ("file", st.st_size, stat.S_IMODE(st.st_mode))
    return out


def read(top, path):
    with open(top + path, "rb") as f:
        return f.read()


def test_the_view_is_the_final_tree_with_the_contents_the_checks_read(tmp_path):
    archive = docker_save(str(tmp_path / "img.tar"), [BASE])
    with needs.image_view(archive, tmpdir=str(tmp_path)) as root:
        top = root.path
        assert listing(top) == expected_view()
        # contents the checks read, byte for byte; the rest sparse of its size
        assert read(top, "/usr/bin/tool") == ELF
        assert read(top, "/etc/os-release") == b"ID=debian\nVERSION_ID=12\n"
        # a .py and a .pyc header: answered from memory, the files are sparse
        src, pyc = top + "/usr/lib/python3.11/os.py", top + "/usr/lib/python3.11/__pycache__/os.cpython-311.pyc"
        assert root.source_hash(src) == importlib.util.source_hash(b"import sys\n")
        assert root.read_head(pyc, 16) == PYC[:16] and root.read_head(pyc, 4) == PYC[:4]
        with pytest.raises(ValueError):
            root.read_head(pyc, 17)      # more than needs.py keeps: an error, not zeros
        for path in (src, pyc):
            assert read(top, path[len(top):]) == bytes(os.lstat(path).st_size)
            assert os.lstat(path).st_blocks == 0
        payload = os.lstat(top + "/usr/share/payload.bin")
        assert read(top, "/usr/share/payload.bin") == bytes(len(PAYLOAD))
        assert payload.st_blocks == 0
        # one inode for a hard link and its target, as on a mount
        a, b = os.lstat(top + "/usr/bin/tool"), os.lstat(top + "/usr/bin/tool-link")
        assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
        for path in expected_view():
            assert os.lstat(top + path).st_mtime_ns == MTIME_NS, path
        assert root.entry("/usr/bin/tool").layer == 0
        assert root.realpath("/usr/bin/alias") == "/usr/bin/tool"
    assert os.listdir(str(tmp_path)) == ["img.tar"]


def test_owners_are_the_images_when_running_as_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lchown needs root")
    layer = layer_tar([D("home"), F("home/app.txt", b"x", uid=1234, gid=2345), S("lnk", "home")])
    with needs.image_view(docker_save(str(tmp_path / "img.tar"), [layer])) as root:
        st = os.lstat(root.host("/home/app.txt"))
        assert (st.st_uid, st.st_gid) == (1234, 2345)


def test_a_later_layer_replaces_content_and_deleted_files_leave_no_trace(tmp_path):
    layers = [BASE,
              layer_tar([D("etc"), F("etc/os-release", b"ID=other\n"), D("usr"), D("usr/bin"),
                         F("usr/bin/.wh.tool")]),
              layer_tar([D("usr"), D("usr/bin"), F("usr/bin/tool", b"#!/bin/sh\n", 0o755)])]
    with needs.image_view(oci_dir(tmp_path / "oci", layers), tmpdir=str(tmp_path)) as root:
        assert read(root.path, "/etc/os-release") == b"ID=other\n"
        # the ELF was deleted, a script put in its place; the hard link keeps the ELF's bytes
        assert read(root.path, "/usr/bin/tool") == bytes(10)
        assert read(root.path, "/usr/bin/tool-link") == ELF
        contents = os.path.join(os.path.dirname(root.path), "contents")
        assert os.listdir(contents) == []       # nothing stale left besides the tree


def test_the_temporary_directory_goes_after_errors_and_interrupts(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = docker_save(str(tmp_path / "img.tar"), [BASE])
    with open(archive, "rb") as f:
        data = f.read()
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError):
        with needs.image_view(str(truncated), tmpdir=str(work)):
            pass
    assert os.listdir(str(work)) == []
    with pytest.raises(KeyboardInterrupt):
        with needs.image_view(archive, tmpdir=str(work)) as root:
            os.chmod(root.host("/srv"), 0o500)
            raise KeyboardInterrupt
    assert os.listdir(str(work)) == []


TAG = "cpython-%d%d" % sys.version_info[:2]
GOOD, OLD = b"A = 1\n", b"A = 0\n"


def hash_pyc(source):
    """A checked-hash .pyc of `source` for the running interpreter (PEP 552)."""
    return importlib._bootstrap_external._code_to_hash_pyc(
        compile(source, "m.py", "exec"), importlib.util.source_hash(source), True)


def timestamp_pyc(source, mtime):
    return importlib._bootstrap_external._code_to_timestamp_pyc(
        compile(source, "m.py", "exec"), mtime, len(source))


def pyc(module):
    return "lib/pkg/__pycache__/%s.%s.pyc" % (module, TAG)


PYTHON_LAYER = [
    D("lib"), D("lib/pkg"), D("lib/pkg/__pycache__"),
    F("lib/pkg/__init__.py", b"from pkg import tests\n"),     # prune's import check reads it
    F("lib/pkg/hashed.py", GOOD), F(pyc("hashed"), hash_pyc(GOOD)),
    F("lib/pkg/edited.py", GOOD), F(pyc("edited"), hash_pyc(OLD)),
    F("lib/pkg/stamped.py", GOOD), F(pyc("stamped"), timestamp_pyc(GOOD, 1700000000)),  # layer_tar's mtime
    F("lib/pkg/touched.py", GOOD), F(pyc("touched"), timestamp_pyc(GOOD, 1600000000)),
    F("lib/pkg/alias.py", GOOD), S(pyc("alias"), "hashed.%s.pyc" % TAG),
]
PYTHON_STATUS = {"hashed": "ok", "edited": "stale", "stamped": "ok", "touched": "stale", "alias": "ok"}


def statuses(root):
    """pyc_status of each PYTHON_LAYER module, read through `root` as the bytecode checks read."""
    out = {}
    for module in PYTHON_STATUS:
        src = root.host("/lib/pkg/%s.py" % module)
        out[module] = pyc_status(root.host("/" + pyc(module)), os.stat(src), sys.version_info[:2],
                                 src, root)
    return out


def test_bytecode_answers_of_the_view_are_those_of_the_unpacked_tree(tmp_path):
    layer = layer_tar(PYTHON_LAYER)
    top = tmp_path / "tree"
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        tar.extractall(str(top))
    assert statuses(Root(str(top))) == PYTHON_STATUS          # what --root sees
    with needs.image_view(docker_save(str(tmp_path / "img.tar"), [layer]),
                          tmpdir=str(tmp_path)) as root:
        assert statuses(root) == PYTHON_STATUS
        # no file's bytes written for any of it but the .py prune's import check may read
        written = {p for p, (kind, *rest) in listing(root.path).items()
                   if kind == "file" and os.lstat(root.path + p).st_blocks}
        assert written == {"/lib/pkg/__init__.py"}
        assert read(root.path, "/lib/pkg/__init__.py") == b"from pkg import tests\n"


def test_a_later_layers_py_and_pyc_are_the_ones_answered(tmp_path):
    layers = [layer_tar(PYTHON_LAYER),
              layer_tar([D("lib"), D("lib/pkg"), D("lib/pkg/__pycache__"),
                         F(pyc("hashed"), hash_pyc(OLD)),          # hashed: now stale
                         F("lib/pkg/edited.py", OLD)])]            # edited: now matches
    with needs.image_view(oci_dir(tmp_path / "oci", layers), tmpdir=str(tmp_path)) as root:
        got = statuses(root)
    assert got == dict(PYTHON_STATUS, hashed="stale", edited="ok", alias="stale")


def test_a_large_py_is_written_and_hashed_from_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(view, "SOURCE_CAP", 4)
    with needs.image_view(docker_save(str(tmp_path / "img.tar"), [layer_tar(PYTHON_LAYER)]),
                          tmpdir=str(tmp_path)) as root:
        assert read(root.path, "/lib/pkg/hashed.py") == GOOD
        assert statuses(root) == PYTHON_STATUS


def test_want_peeks_at_the_first_bytes(tmp_path):
    asked = []

    def want(path, size, mode, head=None):
        asked.append((path, head))
        return Peek(4) if head is None else head == b"\x7fELF"

    chunks = []
    read_image(docker_save(str(tmp_path / "img.tar"), [BASE]), want=want,
               on_chunk=lambda layer, path, offset, data: chunks.append((path, offset, data)))
    assert ("/usr/bin/tool", ELF[:4]) in asked and ("/etc/os-release", b"ID=d") in asked
    assert [(p, o, d) for p, o, d in chunks] == [("/usr/bin/tool", 0, ELF)]


def test_the_predicate():
    assert needs.wanted("/etc/passwd", 10, 0o644) is True
    assert needs.wanted("/var/lib/dpkg/info/libc6.list", 10, 0o644) is True
    assert needs.wanted("/var/lib/apt/lists/x_Packages", 10, 0o644) is True
    assert needs.wanted("/usr/lib/os-release", 10, 0o644) is True
    assert needs.wanted("/usr/lib/python3/x.py", 10, 0o644) is True
    assert needs.wanted("/usr/lib/python3/__pycache__/x.cpython-311.pyc", 900, 0o644) == 16
    assert needs.wanted("/x/y-1.0.dist-info/RECORD", 10, 0o644) is True
    assert isinstance(needs.wanted("/usr/share/doc/x", 10, 0o644), Peek)
    assert needs.wanted("/usr/share/doc/x", 10, 0o644, b"\x7fELF") is True
    assert needs.wanted("/usr/share/doc/x", 10, 0o644, b"GIF8") is False


@pytest.mark.parametrize("text, value", [("4096", 4096), ("10M", 10 << 20), ("1G", 1 << 30),
                                         ("512KiB", 512 << 10), ("1.5m", 3 << 19)])
def test_sizes(text, value):
    assert parse_size(text) == value


# -- the command line ---------------------------------------------------------------

def test_a_malformed_archive_is_one_error_line_and_exit_1(tmp_path):
    archive = docker_save(str(tmp_path / "img.tar"), [BASE])
    with open(archive, "rb") as f:
        data = f.read()
    (tmp_path / "cut.tar").write_bytes(data[:len(data) // 2])
    for bad in (str(tmp_path / "cut.tar"), str(tmp_path / "missing.tar"), str(tmp_path)):
        proc = run_cli("audit", bad, "--tmpdir", str(tmp_path))
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("pyimgtools: error: ") and len(proc.stderr.splitlines()) == 1
        assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(str(tmp_path))) == ["cut.tar", "img.tar"]


def test_image_and_root_together_are_a_usage_error(tmp_path):
    archive = docker_save(str(tmp_path / "img.tar"), [BASE])
    proc = run_cli("audit", archive, "--root", str(tmp_path))
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc = run_cli("audit", "--root", str(tmp_path), "--max-waste", "1M")
    assert proc.returncode == 2 and "needs an IMAGE" in proc.stderr
    proc = run_cli("audit", archive, "--max-waste", "lots")
    assert proc.returncode == 2


MIB = 1 << 20
HISTORY = [{"created_by": "ADD base.tar /"},
           {"created_by": "RUN head -c 1048576 /dev/urandom > /big"},
           {"created_by": "RUN rm /big"}]


def planted(tmp_path, form="docker"):
    """BASE, + /big (1 MiB), - /big: 1 MiB of waste, efficiency base / (base + 1 MiB)."""
    layers = [BASE, layer_tar([F("big", b"\1" * MIB)]), layer_tar([F(".wh.big")])]
    config = config_for(layers, history=HISTORY, env=("PATH=/usr/bin", "LANG=C.UTF-8"))
    if form == "docker":
        return docker_save(str(tmp_path / "img.tar"), layers, config=config)
    top = oci_dir(tmp_path / "oci", layers, config=config, compress=True)
    return tar_dir(top, str(tmp_path / "oci.tar")) if form == "oci-archive" else top


BASE_BYTES = 24 + len(ELF) + len(PAYLOAD) + 11 + len(PYC)


def audit_doc(*args):
    proc = run_cli("audit", *args, "--json", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert validate(doc) == []
    return doc, {f["id"]: f for f in doc["findings"]}


@pytest.mark.parametrize("form", ["docker", "oci-archive", "oci"])
def test_layer_waste_and_efficiency_of_a_planted_image(tmp_path, form):
    source = planted(tmp_path, form)
    doc, got = audit_doc(source)
    waste = got["layer-waste"]
    assert (waste["severity"], waste["bytes"], waste["paths"]) == ("info", MIB, ["/big"])
    assert "RUN head -c 1048576" in waste["evidence"][0] and "RUN rm /big" in waste["evidence"][0]
    assert waste["layer"] == {"index": 1, "digest": doc["results"]["layers"][1]["digest"],
                              "created_by": HISTORY[1]["created_by"]}
    eff = got["layer-efficiency"]
    assert eff["data"]["efficiency"] == pytest.approx(BASE_BYTES / (BASE_BYTES + MIB), abs=1e-6)
    assert eff["bytes"] == MIB and eff["layer"] is None
    assert [(l["index"], l["size"], l["bytes_wasted"], l["created_by"])
            for l in doc["results"]["layers"]] == [
        (0, BASE_BYTES, 0, HISTORY[0]["created_by"]), (1, MIB, MIB, HISTORY[1]["created_by"]),
        (2, 0, 0, HISTORY[2]["created_by"])]
    image = doc["results"]["image"]
    assert (image["total_bytes"], image["wasted_bytes"]) == (BASE_BYTES + MIB, MIB)
    # LANG=C.UTF-8 came from the image config: no locale finding
    assert "locale-not-utf8" not in got and "image config" in doc["environment"]


def test_thresholds(tmp_path):
    source = planted(tmp_path)
    _doc, got = audit_doc(source, "--max-waste", "512K", "--min-efficiency", "0")
    assert got["layer-waste"]["severity"] == "warn" and "layer-efficiency" not in got
    _doc, got = audit_doc(source, "--max-waste", "1M")        # at the limit: info
    assert got["layer-waste"]["severity"] == "info"
    others = ("--ignore", "stdlib-stale-pyc", "--ignore", "layer-efficiency", "--fail-on", "warn")
    assert run_cli("audit", source, "--max-waste", "1K", *others).returncode == 100
    assert run_cli("audit", source, *others).returncode == 0        # info: not at warn
    assert run_cli("audit", source, "--ignore", "layer-waste", *others).returncode == 0


def test_stdin_and_the_text_report_by_layer(tmp_path):
    source = planted(tmp_path)
    with open(source, "rb") as f:
        data = f.read()
    import subprocess
    from tests.conftest import REPO
    proc = subprocess.run([sys.executable, "-m", "pyimgtools", "audit", "-", "--tmpdir", str(tmp_path)],
                          input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, PYTHONPATH=REPO))
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    lines = out.splitlines()
    heads = [i for i, l in enumerate(lines) if l.startswith("LAYER ")]
    assert len(heads) == 3 and "RUN head -c 1048576" in lines[heads[1]]
    waste_line = next(i for i, l in enumerate(lines) if "layer-waste" in l)
    assert heads[1] < waste_line < heads[2]
    assert sorted(os.listdir(str(tmp_path))) == ["img.tar"]


def test_root_mode_skips_the_layer_checks_and_names_no_layer(tmp_path):
    top = tmp_path / "tree"
    top.mkdir()
    archive = docker_save(str(tmp_path / "img.tar"), [BASE])
    with tarfile.open(archive) as outer:
        inner = [m for m in outer.getmembers() if m.name.endswith("layer.tar")][0]
        with tarfile.open(fileobj=outer.extractfile(inner)) as layer:
            layer.extractall(str(top))
    env = tmp_path / "env.txt"
    env.write_text("PATH=/usr/bin\n")     # config_for's Env
    doc, got = audit_doc("--root", str(top), "--env", str(env))
    runs = {c["id"]: c for c in doc["checks"]}
    assert runs["layer-waste"]["status"] == runs["layer-efficiency"]["status"] == "skipped"
    assert "layers" not in doc["results"] and "image" not in doc["results"]
    assert all("layer" not in f and "path_layers" not in f for f in doc["findings"])
    # and the same findings from the image (its layer findings aside)
    image_doc, image_got = audit_doc(archive)

    def same(findings):
        return {k: (f["severity"], f["paths"], f["bytes"]) for k, f in findings.items()
                if not k.startswith("layer-")}
    assert same(image_got) == same(got)
    text = run_cli("audit", "--root", str(top)).stdout
    assert "layer-waste" not in text


def test_not_as_root_the_owner_may_read_and_the_other_bits_are_the_images(tmp_path, monkeypatch):
    layer = layer_tar([D("data", 0o555), F("data/secret", b"s", 0o000, uid=1234, gid=2345),
                       F("data/shared", b"t", 0o604)])
    archive = docker_save(str(tmp_path / "img.tar"), [layer])
    chowned = []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "lchown", lambda *a: chowned.append(a))
    work = tmp_path / "work"
    work.mkdir()
    with needs.image_view(archive, tmpdir=str(work)) as root:
        modes = {p: stat.S_IMODE(os.lstat(root.host(p)).st_mode)
                 for p in ("/data", "/data/secret", "/data/shared")}
        assert modes == {"/data": 0o755, "/data/secret": 0o400, "/data/shared": 0o604}
        assert (root.entry("/data/secret").uid, root.entry("/data/secret").gid) == (1234, 2345)
    assert chowned == [] and os.listdir(str(work)) == []


def test_sarif_of_an_image_names_the_image_and_the_layer(tmp_path):
    source = planted(tmp_path)
    proc = run_cli("audit", source, "--format", "sarif", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)["runs"][0]
    waste = [r for r in run["results"] if r["ruleId"] == "layer-waste"]
    assert len(waste) == 1
    location = waste[0]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"].endswith("img.tar")
    assert location["logicalLocations"][0]["name"] == "layer 1"
    assert location["logicalLocations"][0]["fullyQualifiedName"] == HISTORY[1]["created_by"]


def test_the_projection_on_threads_is_the_projection_on_one(tmp_path, monkeypatch):
    many = [D("m")] + [F("m/f%04d" % i, b"x" * (i % 7), 0o600 + (i % 2) * 0o44) for i in range(3000)]
    archive = docker_save(str(tmp_path / "img.tar"), [BASE, layer_tar(many)])
    seen = []
    for workers in (1, 3):
        monkeypatch.setattr(view, "_workers", lambda: workers)
        with needs.image_view(archive, tmpdir=str(tmp_path)) as root:
            seen.append(listing(root.path))
    assert seen[0] == seen[1]
    assert seen[0]["/m/f0001"] == ("file", 1, 0o644) and len(seen[0]) == len(expected_view()) + 3001


def test_an_error_on_a_thread_stops_the_others_and_is_raised_after_they_end():
    import threading
    done = []

    def do(job):
        if job == 1234:
            raise OSError(28, "No space left on device")
        done.append(job)

    before = threading.active_count()
    with pytest.raises(OSError, match="No space"):
        view._in_threads(list(range(100000)), do, 3, chunk=100)
    assert threading.active_count() == before
    assert len(done) < 100000 - 1


def test_an_interrupt_while_the_view_is_removed_still_removes_it(tmp_path, monkeypatch):
    top = tmp_path / "view"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_bytes(b"x")

    def interrupted(*_args, **_kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(view, "_in_threads", interrupted)
    with pytest.raises(KeyboardInterrupt):
        view._remove(str(top))
    assert not top.exists()


def _a_shared_library():
    """A real, linker-made shared library of this machine (read, never run)."""
    for path in ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6",
                 "/usr/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6"):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return f.read()
    pytest.fail("no libc.so.6 on this machine")


@pytest.mark.parametrize("memory", [view.LOADER_MEMORY, 64 << 10])   # held, or spooled
def test_an_elf_file_is_kept_as_the_ranges_the_loader_reads(tmp_path, monkeypatch, memory):
    from pyimgtools.elf import read_elf
    monkeypatch.setattr(view, "LOADER_MEMORY", memory)
    lib = _a_shared_library()
    (tmp_path / "libc.so.6").write_bytes(lib)
    layer = layer_tar([D("usr"), D("usr/lib"), F("usr/lib/libc.so.6", lib, 0o755),
                       D("etc"), F("etc/elf-in-etc", lib)])
    with needs.image_view(docker_save(str(tmp_path / "img.tar"), [layer]),
                          tmpdir=str(tmp_path)) as root:
        kept = root.host("/usr/lib/libc.so.6")
        st = os.lstat(kept)
        assert st.st_size == len(lib) and stat.S_IMODE(st.st_mode) == 0o755
        assert read_elf(kept) == read_elf(str(tmp_path / "libc.so.6"))
        assert read_elf(kept).needed        # the dynamic segment and its strings are there
        assert st.st_blocks * 512 < 256 << 10 < len(lib)    # a few pages of a 2 MB library
        data = read(root.path, "/usr/lib/libc.so.6")
        assert data[:4096] == lib[:4096] and data.count(0) > len(lib) // 2
        assert read(root.path, "/etc/elf-in-etc") == lib     # /etc is kept whole
        assert os.listdir(os.path.join(os.path.dirname(root.path), "contents")) == []   # no spool
    assert sorted(os.listdir(str(tmp_path))) == ["img.tar", "libc.so.6"]


def test_the_tree_copied_to_another_file_system_is_the_tree_renamed(tmp_path, monkeypatch):
    lib = _a_shared_library()
    layers = [BASE, layer_tar([D("usr"), D("usr/lib"), F("usr/lib/libc.so.6", lib)])]
    archive = docker_save(str(tmp_path / "img.tar"), layers)
    seen = []
    for same in (True, False):
        monkeypatch.setattr(view, "_same_fs", lambda a, b, same=same: same)
        with needs.image_view(archive, tmpdir=str(tmp_path)) as root:
            seen.append((listing(root.path),
                         {p: read(root.path, p) for p in ("/usr/bin/tool", "/etc/os-release",
                                                          "/usr/lib/libc.so.6")},
                         os.lstat(root.host("/usr/lib/libc.so.6")).st_blocks))
            assert os.listdir(os.path.join(os.path.dirname(root.path), "contents")) == []
    assert seen[0] == seen[1]
    assert seen[1][1]["/usr/bin/tool"] == ELF


class _Mounts:
    def __init__(self, types):
        self.types = types

    def fstype_of(self, path):
        return self.types.get(path)


def _place_with(monkeypatch, tmp_path, types, env_tmpdir=None, tmpdir=None, free=None):
    from pyimgtools import mounts
    tmp_path = type(tmp_path)(os.path.realpath(str(tmp_path)))   # the paths as _tree_place sees them
    shm = tmp_path / "shm"
    shm.mkdir(exist_ok=True)
    default = str(tmp_path / "default-tmp")
    monkeypatch.setattr(view, "TREE_TMPFS", str(shm))
    monkeypatch.setattr(view.tempfile, "gettempdir", lambda: default)
    types = {{"shm": str(shm), "default": default}[k]: v for k, v in types.items()}
    monkeypatch.setattr(mounts.MountTable, "load", classmethod(lambda cls: _Mounts(types)))
    if env_tmpdir is None:
        monkeypatch.delenv("TMPDIR", raising=False)
    else:
        monkeypatch.setenv("TMPDIR", env_tmpdir)
    if free is not None:
        real = os.statvfs(str(shm))
        fake = os.statvfs_result((real.f_bsize, 4096, real.f_blocks, free // 4096, free // 4096,
                                  0, 0, 0, real.f_flag, real.f_namemax))
        monkeypatch.setattr(view.os, "statvfs", lambda p: fake)

    class Img:
        tree = dict.fromkeys(range(1000))

    class Contents:
        kept = {"/usr/lib/libx.so": 10000, "/etc/a": 1}
    return view._tree_place(tmpdir, Img, Contents), str(shm)


def test_the_tree_goes_to_a_tmpfs_only_where_no_place_was_chosen(tmp_path, monkeypatch):
    tmpfs, disk = {"shm": b"tmpfs", "default": b"ext4"}, {"shm": b"ext4", "default": b"ext4"}
    got, shm = _place_with(monkeypatch, tmp_path, tmpfs)
    assert got == shm
    assert _place_with(monkeypatch, tmp_path, disk)[0] is None            # /dev/shm no tmpfs
    assert _place_with(monkeypatch, tmp_path, {"shm": b"tmpfs", "default": b"tmpfs"})[0] is None
    assert _place_with(monkeypatch, tmp_path, tmpfs, tmpdir=str(tmp_path))[0] is None   # --tmpdir
    assert _place_with(monkeypatch, tmp_path, tmpfs, env_tmpdir=str(tmp_path))[0] is None
    # room: the contents' pages, a page per 16 entries, and the margin
    need = (3 + 1 + 1000 // 16) * 4096 + view.TREE_MARGIN
    assert _place_with(monkeypatch, tmp_path, tmpfs, free=need)[0] == shm
    assert _place_with(monkeypatch, tmp_path, tmpfs, free=need - 4096)[0] is None
