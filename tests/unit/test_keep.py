"""keep on a small image root made by the test: tiny ELF files compiled with gcc
(-nostdlib: no libc needed), a hand-written dpkg database, usrmerge links.

The layout and the expected package set are written out by hand in
tests/harness/keepimage.py; every expectation follows from the DT_NEEDED
entries the test links in.
"""

import json
import os
import shutil
import subprocess

import pytest

from pyimgtools.dpkg import Database
from pyimgtools.fs import Root
from pyimgtools import keep
from tests.conftest import run_cli
from tests.harness.keepcli import keep_cli
from tests.harness.keepimage import (LIBDIR, STATUS, image, image_template,  # noqa: F401 (fixtures)
                                     program, shlib, stale_cache_image)
from tests.harness.prereq import require


def test_print_lists_the_closure_packages(image):
    proc = keep_cli(image, "--print")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]
    # the library no package owns is reported, and nothing else is said on stdout
    assert "libstray.so.0" not in proc.stdout


def test_readelf_agrees_with_the_fixture(image):
    """The fixture really has the DT_NEEDED entries the expectations assume."""
    require(shutil.which("readelf") is not None, "needs readelf")
    out = subprocess.run(["readelf", "-d", str(image / "usr/local/lib/libinternal.so.1")],
                         capture_output=True, text=True).stdout
    assert "[libbaz.so.3]" in out and "[libstray.so.0]" in out
    out = subprocess.run(["readelf", "-d", str(image / "usr/local/bin/prog")],
                         capture_output=True, text=True).stdout
    assert "[libfoo.so.1]" in out and "RUNPATH" in out


def test_dry_run_marks_only_what_is_not_manual(image):
    proc = keep_cli(image, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [l for l in lines if l.startswith("would mark")] == [
        "would mark manual: libbar2:amd64", "would mark manual: libc6:amd64",
        "would mark manual: libfoo1"]
    assert "4 packages needed by 2 ELF files" in lines[-1]
    assert "libstray.so.0" in proc.stderr and "belongs to no package" in proc.stderr


def test_json_says_why(image):
    proc = keep_cli(image, "--json", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    pkgs = {p["name"]: p for p in doc["packages"]}
    # as ld.so opens them: its first built-in directory is /lib/x86_64-linux-gnu
    assert pkgs["libbar2:amd64"]["libraries"] == ["/lib/x86_64-linux-gnu/libbar.so.2"]
    assert pkgs["libbar2:amd64"]["needed_by"] == [LIBDIR + "/libfoo.so.1"]   # canonical
    assert pkgs["libbaz3"]["needed_by"] == ["/usr/local/lib/libinternal.so.1"]
    assert pkgs["libbaz3"]["manual"] is True
    assert doc["to_mark"] == ["libbar2:amd64", "libc6:amd64", "libfoo1"]
    assert doc["unowned"] == [{"library": "/lib/x86_64-linux-gnu/libstray.so.0",
                               "needed_by": ["/usr/local/lib/libinternal.so.1"]}]
    assert doc["elf_files"] == 2 and doc["missing"] == []


def test_why(image):
    proc = keep_cli(image, "--why", "libbaz3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "libbaz3 (already manual):", "  /lib/x86_64-linux-gnu/libbaz.so.3",
        "  needed by 1 file:", "    /usr/local/lib/libinternal.so.1"]
    proc = keep_cli(image, "--why", "libunused0")
    assert "libunused0: not needed" in proc.stdout


def test_non_executable_shared_objects_are_scanned(image):
    # libinternal.so.1 has mode 0644 and is the only way to reach libbaz3
    assert not os.access(str(image / "usr/local/lib/libinternal.so.1"), os.X_OK) or os.geteuid() == 0
    assert "libbaz3" in keep_cli(image, "--print", "/usr/local/lib").stdout.split()


def test_exclude_drops_files(image):
    proc = keep_cli(image, "--print", "--exclude", "prog")
    assert proc.stdout.splitlines() == ["libbaz3", "libc6:amd64"]
    proc = keep_cli(image, "--print", "--exclude", "/usr/local/lib/*")
    assert proc.stdout.splitlines() == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]


def test_libraries_inside_the_scanned_paths_are_not_mapped(image):
    # list libinternal.so.1 in a package: it still is not kept, it lies under /usr/local
    (image / "var/lib/dpkg/info/libunused0.list").write_text("/.\n/usr/local/lib/libinternal.so.1\n")
    assert "libunused0" not in keep_cli(image, "--print").stdout.split()
    # scanning only bin/, the library is outside the paths and is mapped
    assert "libunused0" in keep_cli(image, "--print", "/usr/local/bin").stdout.split()


def test_missing_library_is_an_error(image):
    # link against a library that then goes away
    tmp = image / "tmp-libgone"
    tmp.mkdir()
    shlib(tmp / "libgone.so.7", "libgone.so.7")
    program(image / "usr/local/bin/broken", str(tmp / "libgone.so.7"))
    shutil.rmtree(str(tmp))
    proc = keep_cli(image, "--print")
    assert proc.returncode == 1
    assert "libgone.so.7: needed by /usr/local/bin/broken: not found" in proc.stderr
    assert "1 needed library cannot be found" in proc.stderr
    proc = keep_cli(image, "--dry-run")
    assert proc.returncode == 1 and "would mark" not in proc.stdout
    proc = keep_cli(image, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["marked"] == [] and doc["missing"] == [
        {"needer": "/usr/local/bin/broken", "name": "libgone.so.7",
         "roots": ["/usr/local/bin/broken"]}]
    proc = keep_cli(image, "--dry-run", "--allow-missing")
    assert proc.returncode == 0
    assert "warning: libgone.so.7: needed by /usr/local/bin/broken" in proc.stderr


def test_symlink_out_of_the_paths_keeps_its_target(image):
    os.symlink(LIBDIR + "/libunused.so.0", str(image / "usr/local/lib/libunused.so.0"))
    assert "libunused0" in keep_cli(image, "--print").stdout.split()


def test_need_resolved_only_in_context_is_not_an_error(image):
    """auditwheel's layout: x.libs/liba needs libb (same directory, no RUNPATH);
    alone it is "not found", loaded by the extension module it resolves."""
    libs = image / "usr/local/site/pkg.libs"
    libs.mkdir(parents=True)
    shlib(libs / "libb-1234.so", "libb-1234.so")
    shlib(libs / "liba-5678.so", "liba-5678.so", str(libs / "libb-1234.so"))
    ext = image / "usr/local/site/pkg"
    ext.mkdir()
    shlib(ext / "_ext.so", "_ext.so", str(libs / "liba-5678.so"), str(libs / "libb-1234.so"),
          extra=["-Wl,-rpath,$ORIGIN/../pkg.libs", "-Wl,--enable-new-dtags"])
    proc = keep_cli(image, "--json", "--print")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["missing"] == []
    assert [(m["needer"], m["name"]) for m in doc["resolved_in_context"]] == [
        ("/usr/local/site/pkg.libs/liba-5678.so", "libb-1234.so")]


def test_never_executes_the_interpreter(image, tmp_path):
    """A program whose PT_INTERP writes a marker: executing it creates the
    marker (control), keep reading it does not."""
    marker = tmp_path / "MARKER"
    interp_src = tmp_path / "interp.c"
    interp_src.write_text(
        'static long sys3(long n, long a, long b, long c) { long r; __asm__ volatile ("syscall"'
        ' : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory"); return r; }\n'
        'void _start(void) { sys3(2, (long)"%s", 0101, 0644); sys3(60, 0, 0, 0); for (;;); }\n'
        % marker)
    interp = image / "usr/local/bin/interp"
    proc = subprocess.run(["gcc", "-nostdlib", "-static", "-fno-stack-protector", "-O1", "-o",
                           str(interp), str(interp_src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    prog = image / "usr/local/bin/trap"
    # PT_INTERP is a host path, so that the control can run it
    program(prog, str(image / LIBDIR.lstrip("/") / "libbaz.so.3"), interp=str(interp))
    for args in (["--print", "--allow-missing"], ["--dry-run", "--allow-missing"], ["--json"]):
        keep_cli(image, *args)
    assert not marker.exists()
    subprocess.run([str(prog)], capture_output=True)      # control: the kernel runs PT_INTERP
    assert marker.exists()


def test_malformed_elf_is_a_warning(image):
    (image / "usr/local/lib/libtrunc.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 20)
    with open(str(image / "usr/local/bin/prog"), "rb") as f:
        head = f.read(200)
    (image / "usr/local/bin/cut").write_bytes(head)
    os.chmod(str(image / "usr/local/bin/cut"), 0o755)
    proc = keep_cli(image, "--print")
    assert proc.returncode == 0, proc.stderr
    assert "libtrunc.so" in proc.stderr and "/usr/local/bin/cut" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines() == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]


def test_bad_path_is_a_clear_error(image):
    proc = keep_cli(image, "--print", "/nonexistent")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "pyimgtools: error: /nonexistent: no such file or directory in %s" % image


def test_odd_file_names(image):
    odd = os.fsencode(str(image / "usr/local/lib")) + b"/lib\xff odd\nname.so"
    shutil.copy(str(image / "usr/local/lib/libinternal.so.1"), odd)
    proc = keep_cli(image, "--print")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]


def test_skip_suffixes_and_scan_all(image):
    # an ELF file named like Python source is skipped unless --scan-all
    shutil.copy(str(image / "usr/lib/x86_64-linux-gnu/libfoo.so.1"),
                str(image / "usr/local/lib/not-really.py"))
    os.unlink(str(image / "usr/local/bin/prog"))
    # libinternal.so.1 needs libbaz3 and, having no PT_INTERP, the standard loader (libc6)
    assert keep_cli(image, "--print").stdout.split() == ["libbaz3", "libc6:amd64"]
    assert keep_cli(image, "--print", "--scan-all").stdout.split() == [
        "libbar2:amd64", "libbaz3", "libc6:amd64"]


def test_pycache_is_not_walked_unless_scan_all(image):
    cache = image / "usr/local/lib/__pycache__"
    cache.mkdir()
    shutil.copy(str(image / "usr/lib/x86_64-linux-gnu/libfoo.so.1"), str(cache / "odd.so"))
    os.unlink(str(image / "usr/local/bin/prog"))
    assert keep_cli(image, "--print").stdout.split() == ["libbaz3", "libc6:amd64"]
    assert keep_cli(image, "--print", "--scan-all").stdout.split() == [
        "libbar2:amd64", "libbaz3", "libc6:amd64"]


def test_plan_api(image):
    root = Root(str(image))
    kp = keep.plan(root, ["/usr/local"], db=Database(root))
    assert kp.package_names == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]
    assert kp.to_mark == ["libbar2:amd64", "libc6:amd64", "libfoo1"]
    assert kp.scanned == 2 and kp.files_seen == 4


def test_parse_ldd_output():
    text = ("\tlinux-vdso.so.1 (0x00007ffd)\n"
            "\tlibfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x00007f)\n"
            "\tlibgone.so.7 => not found\n"
            "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n")
    edges = keep._parse_ldd("/x", text)
    assert [(e.name, e.path) for e in edges] == [
        ("libfoo.so.1", "/lib/x86_64-linux-gnu/libfoo.so.1"), ("libgone.so.7", None),
        ("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2")]


def test_ld_library_path_only_when_given(image, monkeypatch):
    extra = image / "opt/extra"
    extra.mkdir(parents=True)
    shlib(extra / "libextra.so.5", "libextra.so.5")
    program(image / "usr/local/bin/uses-extra", str(extra / "libextra.so.5"))
    (image / "var/lib/dpkg/info/libunused0.list").write_text("/.\n/opt/extra/libextra.so.5\n")
    # the environment's LD_LIBRARY_PATH is never used
    proc = run_cli("--root", str(image), "keep", "--print", env={"LD_LIBRARY_PATH": "/opt/extra"})
    assert proc.returncode == 1
    assert "libextra.so.5: needed by /usr/local/bin/uses-extra: not found" in proc.stderr
    proc = keep_cli(image, "--print", "--ld-library-path", "/nonexistent:/opt/extra")
    assert proc.returncode == 0, proc.stderr
    assert "libunused0" in proc.stdout.split()


def test_mount_points_below_the_paths_are_not_walked(image, monkeypatch):
    from pyimgtools.mounts import MountTable, Mount
    other = image / "usr/local/mnt"
    other.mkdir()
    shutil.copy(str(image / "usr/local/bin/prog"), str(other / "prog2"))
    os.unlink(str(image / "usr/local/bin/prog"))
    table = MountTable([Mount(1, 0, b"/", b"/", b"ext4", b"x"),
                        Mount(2, 1, b"/", os.fsencode(str(other)), b"tmpfs", b"t")])
    monkeypatch.setattr(MountTable, "load", classmethod(lambda cls: table))
    warnings = []
    found = keep.scan(Root(str(image)), ["/usr/local"], warnings=warnings)
    assert found.files == ["/usr/local/lib/libinternal.so.1"]
    assert warnings == ["/usr/local/mnt: another file system, not scanned"]
    # the mount point itself, given as a path, is scanned
    assert keep.scan(Root(str(image)), ["/usr/local/mnt"]).files == ["/usr/local/mnt/prog2"]


# --- a stale ld.so.cache (make install into /usr/local/lib, no ldconfig) -----------

def test_stale_cache_dry_run_says_ldconfig_and_resolves_as_after_it(image):
    stale_cache_image(image)
    proc = keep_cli(image, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    notice = [l for l in lines if "ldconfig" in l]
    assert len(notice) == 1, proc.stdout
    assert notice[0].startswith("/etc/ld.so.cache lacks 1 library of the /etc/ld.so.conf "
                                "directories (/usr/local/lib/libinternal.so.1): would run ")
    assert notice[0].endswith("ldconfig -r %s" % image)
    assert [l for l in lines if l.startswith("would mark")] == [
        "would mark manual: libbar2:amd64", "would mark manual: libc6:amd64",
        "would mark manual: libfoo1"]
    assert "4 packages needed by 3 ELF files" in lines[-1]
    doc = json.loads(keep_cli(image, "--json", "--dry-run").stdout)
    assert doc["uncached"] == ["/usr/local/lib/libinternal.so.1"]
    assert doc["ldconfig"][1:] == ["-r", str(image)] and doc["missing"] == []


def test_stale_cache_print_resolves_and_warns_on_stderr(image):
    stale_cache_image(image)
    proc = keep_cli(image, "--print")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["libbar2:amd64", "libbaz3", "libc6:amd64", "libfoo1"]
    assert "/etc/ld.so.cache lacks 1 library" in proc.stderr
    assert "nothing run" in proc.stderr


def test_stale_cache_after_ldconfig_is_not_stale(image):
    """Running the command the dry run names makes the next dry run quiet, same packages."""
    require(os.geteuid() == 0, "ldconfig -r needs root")
    stale_cache_image(image)
    doc = json.loads(keep_cli(image, "--json", "--dry-run").stdout)
    subprocess.run(doc["ldconfig"], check=True, capture_output=True)
    after = json.loads(keep_cli(image, "--json", "--dry-run").stdout)
    assert after["uncached"] == [] and after["ldconfig"] is None
    assert [p["name"] for p in after["packages"]] == [p["name"] for p in doc["packages"]]


def test_unowned_library_is_a_warning_in_print_and_why(image):
    for args in (["--print"], ["--why", "libbaz3"]):
        proc = keep_cli(image, *args)
        assert proc.returncode == 0, proc.stderr
        assert ("pyimgtools: warning: /lib/x86_64-linux-gnu/libstray.so.0 (needed by "
                "/usr/local/lib/libinternal.so.1) belongs to no package") in proc.stderr, args


@pytest.mark.parametrize("garbage", [
    b"\x00\x13\xff garbage, not deb822\n",
    b"Package: libfoo1\nStatus install ok installed\n",
    STATUS.encode() + b"\nStatus: install ok installed\nArchitecture: amd64\n",
])
def test_unparseable_status_is_an_error_in_the_dry_run_as_in_the_real_run(image, garbage):
    """issue 14 item 10: --dry-run used to read such a file as "0 already manual"."""
    status = image / "var/lib/dpkg/status"
    status.write_bytes(garbage)
    if shutil.which("dpkg-query"):      # dpkg itself refuses the file (independent of us)
        proc = subprocess.run(["dpkg-query", "--admindir", str(status.parent), "-W"],
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "parsing file" in proc.stderr, proc.stderr
    results = [keep_cli(image, *args) for args in (["--dry-run"], [])]
    for proc in results:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stderr.splitlines()
        assert lines[-1].startswith(
            "pyimgtools: error: cannot parse dpkg's /var/lib/dpkg/status in ")
        assert "Traceback" not in proc.stderr and "already" not in proc.stdout
    assert len({p.stderr.splitlines()[-1] for p in results}) == 1
