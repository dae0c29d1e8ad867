"""audit on hand-made image trees: every check's finding, evidence and bytes.

Expected values are computed here from what the fixture writes (sizes of the
bytes written, names planted), or by the real tools (py_compile, compileall),
never read back from audit's output.
"""

import importlib.util
import json
import os
import py_compile
import stat

import pytest

from pyimgtools import audit
from pyimgtools.audit import checks as audit_checks
from pyimgtools.fs import Root
from tests.conftest import run_cli
from tests.unit.test_elf import build_elf

TAG = "cpython-%d%d" % __import__("sys").version_info[:2]


def write(root, path, data=b"", mode=0o644):
    host = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(host), exist_ok=True)
    with open(host, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(host, mode)
    return host


def stanza(name, version="1.0", size=None, depends=None, arch="amd64", multi_arch=None,
           provides=None, status="install ok installed"):
    lines = ["Package: " + name, "Status: " + status, "Architecture: " + arch,
             "Version: " + version]
    if multi_arch:
        lines.append("Multi-Arch: " + multi_arch)
    if size is not None:
        lines.append("Installed-Size: %d" % size)
    if depends:
        lines.append("Depends: " + depends)
    if provides:
        lines.append("Provides: " + provides)
    return "\n".join(lines) + "\n"


def dpkg_status(root, *stanzas, auto=()):
    write(root, "/var/lib/dpkg/status", "\n".join(stanzas))
    os.makedirs(os.path.join(str(root), "var/lib/dpkg/info"), exist_ok=True)
    if auto is not None:
        write(root, "/var/lib/apt/extended_states", "".join(
            "Package: %s\nArchitecture: amd64\nAuto-Installed: 1\n\n" % n for n in auto))


def run_audit(root, env=None, **kw):
    return audit.plan(Root(str(root)), env=env, env_source="test", **kw)


def by_id(result):
    return {f.id: f for f in result.findings}


def fake_python(root, prefix, version, modules=("os", "json/__init__", "email/parser"),
                ssl=False):
    stdlib = "%s/lib/python%s" % (prefix, version)
    for m in modules:
        write(root, "%s/%s.py" % (stdlib, m), "# %s\nX = 1\n" % m)
    write(root, "%s/bin/python%s" % (prefix, version), b"\x7fELF", 0o755)
    if ssl:
        write(root, "%s/lib-dynload/_ssl.cpython-%s-x86_64-linux-gnu.so"
              % (stdlib, version.replace(".", "")), b"\x7fELF")
    return stdlib


# -- frame -----------------------------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    (b"LANG=C\0PATH=/usr/bin\0", {"LANG": "C", "PATH": "/usr/bin"}),
    (b"# comment\nexport LANG='C.UTF-8'\n\nFOO=a=b\nbad line\n", {"LANG": "C.UTF-8", "FOO": "a=b"}),
    (b'LC_ALL="en_US.UTF-8"\r\n', {"LC_ALL": "en_US.UTF-8"}),
    (b"", {}),
])
def test_parse_env(data, expected):
    assert audit.parse_env(data) == expected


def test_exit_code_follows_fail_on():
    warn = audit.Finding("x", "warn", "t", "f")
    info = audit.Finding("y", "info", "t", "f")
    err = audit.Finding("z", "error", "t", "f")
    assert audit.exit_code([warn, info], "error") == 0
    assert audit.exit_code([warn, info], "warn") == 100
    assert audit.exit_code([info], "warn") == 0
    assert audit.exit_code([info], "info") == 100
    assert audit.exit_code([err], "never") == 0
    assert audit.exit_code([err], "error") == 100
    assert audit.exit_code([], "info") == 0


def test_empty_root_has_no_findings_and_exits_0(tmp_path):
    proc = run_cli("audit", "--root", tmp_path, "--fail-on", "info")
    assert proc.returncode == 0, proc.stderr
    assert "no findings" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("pyimgtools audit: 0 errors, 0 warnings, 0 info")


def test_unknown_ignore_id_is_a_usage_error(tmp_path):
    proc = run_cli("audit", "--root", tmp_path, "--ignore", "no-such-check")
    assert proc.returncode == 2
    assert proc.stderr.startswith("pyimgtools: error: --ignore: unknown id no-such-check")


def test_missing_env_file_is_one_line_usage_error(tmp_path):
    proc = run_cli("audit", "--root", tmp_path, "--env", tmp_path / "nope")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_every_check_id_is_documented_in_the_command_reference():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "commands.md")).read()
    for check in audit_checks.CHECKS:
        for fid in check.ids:
            assert "`%s`" % fid in readme, fid


# -- package-manager leftovers ---------------------------------------------------------

def test_package_manager_leftovers_with_bytes(tmp_path):
    write(tmp_path, "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", b"r" * 1000)
    write(tmp_path, "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4",
          b"p" * 5000)
    write(tmp_path, "/var/lib/apt/lists/lock", b"")
    os.makedirs(str(tmp_path / "var/lib/apt/lists/partial"))
    write(tmp_path, "/var/cache/apt/archives/gcc-12_12.2.0-14_amd64.deb", b"d" * 3000)
    write(tmp_path, "/var/cache/apt/archives/partial/make_4.3-4.1_amd64.deb", b"d" * 100)
    write(tmp_path, "/var/cache/apt/archives/lock", b"")
    write(tmp_path, "/var/cache/apt/pkgcache.bin", b"b" * 700)
    write(tmp_path, "/var/cache/apt/srcpkgcache.bin", b"b" * 300)
    write(tmp_path, "/root/.cache/pip/http-v2/a/b/c", b"x" * 2048)
    write(tmp_path, "/root/.cache/pip/selfcheck.json", b"{}")
    write(tmp_path, "/home/app/.cache/uv/wheels/x.whl", b"w" * 4096)
    found = by_id(run_audit(tmp_path))
    assert found["apt-lists"].bytes == 6000
    assert len(found["apt-lists"].paths) == 2          # not the lock
    assert found["apt-debs"].bytes == 3100
    assert sorted(found["apt-debs"].paths) == ["/var/cache/apt/archives/gcc-12_12.2.0-14_amd64.deb",
                                               "/var/cache/apt/archives/partial/make_4.3-4.1_amd64.deb"]
    assert found["apt-pkgcache"].bytes == 1000
    assert found["pip-cache"].bytes == 2050
    assert found["pip-cache"].paths == ["/root/.cache/pip"]
    assert found["uv-cache"].bytes == 4096
    assert found["uv-cache"].paths == ["/home/app/.cache/uv"]
    for fid in ("apt-lists", "apt-debs", "apt-pkgcache", "pip-cache", "uv-cache"):
        assert found[fid].severity == "warn" and found[fid].reclaimable and found[fid].fix


def test_pip_cache_dir_from_the_environment(tmp_path):
    write(tmp_path, "/cache/pip/x", b"x" * 10)
    env = {"PIP_CACHE_DIR": "/cache/pip", "LANG": "C.UTF-8"}
    found = by_id(run_audit(tmp_path, env=env))
    assert found["pip-cache"].paths == ["/cache/pip"]
    assert found["pip-cache"].bytes == 10


# -- build tools -------------------------------------------------------------------------

def test_build_tools_from_dpkg_status(tmp_path):
    dpkg_status(tmp_path,
                stanza("gcc-12", "12.2.0-14", 70000), stanza("gcc-12-base", "12.2.0-14", 100),
                stanza("make", "4.3-4.1", 1500), stanza("libc6", "2.36-9", 12000),
                stanza("libc6-dev", "2.36-9", 18000, multi_arch="same"),
                stanza("libyaml-dev", "0.2.5-1", 120, status="deinstall ok config-files"),
                stanza("binutils-x86-64-linux-gnu", "2.40-2", 10000),
                stanza("python3", "3.11.2-1", 100),
                auto=["gcc-12", "binutils-x86-64-linux-gnu"])
    f = by_id(run_audit(tmp_path))["build-tools"]
    got = {p["package"]: (p["installed_bytes"], p["manual"]) for p in f.data["packages"]}
    assert got == {"gcc-12": (70000 * 1024, False), "make": (1500 * 1024, True),
                   "libc6-dev:amd64": (18000 * 1024, True),
                   "binutils-x86-64-linux-gnu": (10000 * 1024, False)}
    assert f.bytes == (70000 + 1500 + 18000 + 10000) * 1024
    assert f.evidence[0].startswith("gcc-12 12.2.0-14: 68.4 MiB")   # largest first
    assert "make" in f.fix and "libc6-dev:amd64" in f.fix          # the manual ones


@pytest.mark.parametrize("name,expected", [
    ("gcc", True), ("gcc-12", True), ("g++-12", True), ("cpp-12", True), ("make", True),
    ("libssl-dev", True), ("python3-dev", True), ("binutils-common", True), ("clang-16", True),
    ("gcc-12-base", False), ("libgcc-s1", False), ("makedev", False), ("libc6", False),
    ("cmake-data", False), ("libdevmapper1.02.1", False),
])
def test_is_build_tool(name, expected):
    assert audit_checks.is_build_tool(name) is expected


# -- two Python installations -------------------------------------------------------------

def test_two_pythons_names_what_pulled_debians_in(tmp_path):
    fake_python(tmp_path, "/usr/local", "3.12")
    fake_python(tmp_path, "/usr", "3.11")
    os.makedirs(str(tmp_path / "usr/local/lib/python3.11/dist-packages"))   # no os.py: not an install
    dpkg_status(tmp_path,
                stanza("python3.11-minimal", "3.11.2-6", 5000),
                stanza("libpython3.11-stdlib", "3.11.2-6", 8000),
                stanza("python3.11", "3.11.2-6", 600, depends="python3.11-minimal (= 3.11.2-6), "
                       "libpython3.11-stdlib (= 3.11.2-6)"),
                stanza("python3", "3.11.2-1", 100, depends="python3.11 (>= 3.11.2-1~)"),
                stanza("python3-yaml", "6.0-3", 700, depends="python3 (<< 3.12), python3:any"),
                stanza("dh-python", "5", 400, depends="python3:any | python3-minimal",
                       arch="all"),
                stanza("ansible-core", "2.14", 9000, depends="python3-yaml, dh-python"),
                stanza("curl", "7.88", 500),
                auto=["python3.11-minimal", "libpython3.11-stdlib", "python3.11", "python3",
                      "python3-yaml", "dh-python"])
    f = by_id(run_audit(tmp_path))["two-pythons"]
    assert f.severity == "warn"
    assert f.data["pulled_in_by"] == ["ansible-core"]
    assert sorted(f.paths) == ["/usr/bin/python3.11", "/usr/local/bin/python3.12"]
    assert f.data["debian_python_packages"] == ["libpython3.11-stdlib", "python3", "python3-yaml",
                                                "python3.11", "python3.11-minimal"]
    assert f.bytes == (8000 + 100 + 700 + 600 + 5000) * 1024
    assert "ansible-core" in f.fix


def test_without_extended_states_the_tops_of_the_chains_are_named(tmp_path):
    fake_python(tmp_path, "/usr/local", "3.12")
    fake_python(tmp_path, "/usr", "3.11")
    dpkg_status(tmp_path,
                stanza("python3.11", "3.11.2-6", 600),
                stanza("python3", "3.11.2-1", 100, depends="python3.11"),
                stanza("gdb", "13", 9000, depends="libpython3.11 (>= 3.11), python3"),
                stanza("libpython3.11", "3.11.2-6", 100, depends="python3.11"),
                auto=None)
    f = by_id(run_audit(tmp_path))["two-pythons"]
    assert f.data["pulled_in_by"] == ["gdb"]


def test_one_python_is_no_finding_and_venvs_do_not_count(tmp_path):
    fake_python(tmp_path, "/usr/local", "3.12")
    write(tmp_path, "/opt/venv/lib/python3.12/site-packages/x.py", "")
    write(tmp_path, "/opt/venv/pyvenv.cfg", "home = /usr/local/bin\n")
    result = run_audit(tmp_path)
    assert "two-pythons" not in by_id(result)
    assert [i.prefix for i in audit_checks.find_pythons(audit_checks.Context(Root(str(tmp_path))))] \
        == ["/usr/local"]


def test_pyenv_and_uv_installations_are_found(tmp_path):
    fake_python(tmp_path, "/root/.pyenv/versions/3.9.18", "3.9")
    fake_python(tmp_path, "/home/app/.local/share/uv/python/cpython-3.12.4-linux-x86_64-gnu", "3.12")
    f = by_id(run_audit(tmp_path))["two-pythons"]
    assert sorted(f.paths) == [
        "/home/app/.local/share/uv/python/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12",
        "/root/.pyenv/versions/3.9.18/bin/python3.9"]
    assert f.bytes == 0 and not f.reclaimable


# -- standard library bytecode ------------------------------------------------------------

def test_pyc_status_against_py_compile(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("A = 1\n")
    version = __import__("sys").version_info[:2]
    pyc = str(tmp_path / "mod.pyc")
    py_compile.compile(str(src), pyc, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    assert audit_checks.pyc_status(pyc, os.stat(str(src)), version, str(src)) == "ok"
    os.utime(str(src), (1_600_000_000, 1_600_000_000))
    assert audit_checks.pyc_status(pyc, os.stat(str(src)), version, str(src)) == "stale"
    # importlib itself agrees: the recorded mtime no longer validates
    with open(pyc, "rb") as f:
        data = f.read()
    with pytest.raises(ImportError):
        importlib._bootstrap_external._validate_timestamp_pyc(
            data, int(os.stat(str(src)).st_mtime), os.stat(str(src)).st_size, "mod", {})
    py_compile.compile(str(src), pyc, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert audit_checks.pyc_status(pyc, os.stat(str(src)), version, str(src)) == "ok"
    src.write_text("A = 2  # edited after compiling\n")
    assert audit_checks.pyc_status(pyc, os.stat(str(src)), version, str(src)) == "stale"
    py_compile.compile(str(src), pyc, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    src.write_text("A = 3  # unchecked pycs are used anyway\n")
    assert audit_checks.pyc_status(pyc, os.stat(str(src)), version, str(src)) == "ok"
    assert audit_checks.pyc_status(str(tmp_path / "none.pyc"), os.stat(str(src)), version) == "missing"
    with open(pyc, "wb") as f:
        f.write(b"\x00\x01")
    assert audit_checks.pyc_status(pyc, os.stat(str(src)), version) == "stale"


def test_pyc_status_of_old_layouts(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("x = 1\n")
    st = os.stat(str(src))
    mtime = int(st.st_mtime).to_bytes(4, "little")
    size = st.st_size.to_bytes(4, "little")
    write(tmp_path, "/a.pyc", b"\x33\x0d\x0d\x0a" + mtime + size)          # 3.6: magic, mtime, size
    assert audit_checks.pyc_status(str(tmp_path / "a.pyc"), st, (3, 6)) == "ok"
    write(tmp_path, "/b.pyc", b"\x03\xf3\x0d\x0a" + mtime)                 # 2.7: magic, mtime
    assert audit_checks.pyc_status(str(tmp_path / "b.pyc"), st, (2, 7)) == "ok"
    write(tmp_path, "/c.pyc", b"\x03\xf3\x0d\x0a" + (int(st.st_mtime) - 5).to_bytes(4, "little"))
    assert audit_checks.pyc_status(str(tmp_path / "c.pyc"), st, (2, 7)) == "stale"


def test_stdlib_missing_and_stale_pycs(tmp_path):
    import compileall
    import sys
    version = "%d.%d" % sys.version_info[:2]
    mods = ("os", "json/__init__", "json/decoder", "email/parser", "email/mime/text",
            "test/test_os", "idlelib/idle_test/test_x", "site-packages/pkg/mod",
            "config-%s-x86_64-linux-gnu/python-config" % version)
    stdlib = fake_python(tmp_path, "/usr/local", version, modules=mods)
    host = str(tmp_path) + stdlib
    compileall.compile_file(os.path.join(host, "os.py"), quiet=2)
    compileall.compile_dir(os.path.join(host, "json"), quiet=2)
    compileall.compile_dir(os.path.join(host, "email"), quiet=2, maxlevels=0)  # not email/mime
    # json/decoder.py edited after compiling: a stale timestamp pyc
    os.utime(os.path.join(host, "json/decoder.py"), (1_500_000_000, 1_500_000_000))
    found = by_id(run_audit(tmp_path))
    missing = found["stdlib-missing-pyc"]
    assert missing.paths == [stdlib + "/email/mime/text.py"]
    assert missing.data["source_bytes"] == os.path.getsize(os.path.join(host, "email/mime/text.py"))
    assert "estimated start-up cost" in missing.evidence[-1]
    stale = found["stdlib-stale-pyc"]
    assert stale.paths == [stdlib + "/json/decoder.py"]
    pyc = os.path.join(host, "json/__pycache__/decoder.%s.pyc" % TAG)
    assert stale.bytes == os.path.getsize(pyc)
    assert stale.severity == missing.severity == "warn"
    assert missing.fix.startswith("pyimgtools compile")


# -- broken metadata ----------------------------------------------------------------------

def test_broken_dist_info_and_dangling_symlinks(tmp_path):
    sp = "/usr/local/lib/python3.12/site-packages"
    write(tmp_path, sp + "/good-1.0.dist-info/METADATA", "Name: good\n")
    write(tmp_path, sp + "/good-1.0.dist-info/RECORD", "")
    write(tmp_path, sp + "/norecord-1.0.dist-info/METADATA", "Name: norecord\n")
    os.makedirs(str(tmp_path) + sp + "/empty-2.0.dist-info")
    link = lambda target, path: os.symlink(target, str(tmp_path) + path)  # noqa: E731
    write(tmp_path, "/usr/lib/libfoo.so.1.2", b"x")
    link("libfoo.so.1.2", "/usr/lib/libfoo.so.1")            # fine
    link("/usr/lib/libfoo.so.1", "/usr/lib/libfoo.so")       # fine, absolute inside the root
    link("libbar.so.3", "/usr/lib/libbar.so")                # dangling
    link("../../etc/gone", "/usr/lib/gone-link")             # dangling
    link("loop-b", "/usr/lib/loop-a")                        # a loop
    link("loop-a", "/usr/lib/loop-b")
    os.makedirs(str(tmp_path / "etc"))
    link("../proc/self/mounts", "/etc/mtab")                 # run-time target: not counted
    write(tmp_path, "/etc/dpkg/dpkg.cfg.d/docker", "path-exclude /usr/share/man/*\n")
    link("/usr/share/man/man1/which.debianutils.1.gz", "/etc/alternatives-which.1.gz")  # excluded docs
    os.makedirs(str(tmp_path) + "/usr/share/man/html")
    link("../../javascript/x.js", "/usr/share/man/html/x.js")  # itself in excluded docs (trixie's pip)
    deb = "/usr/lib/python3/dist-packages"
    write(tmp_path, deb + "/pip-25.1.dist-info/METADATA", "Name: pip\n")  # Debian drops RECORD
    os.makedirs(str(tmp_path) + deb + "/nometa-1.0.dist-info")           # still broken
    os.makedirs(str(tmp_path / "proc"))
    link("/nowhere", "/proc/ignored")                        # /proc is not walked
    found = by_id(run_audit(tmp_path))
    f = found["broken-dist-info"]
    assert f.paths == [deb + "/nometa-1.0.dist-info", sp + "/empty-2.0.dist-info",
                       sp + "/norecord-1.0.dist-info"]
    assert f.data["missing"] == {deb + "/nometa-1.0.dist-info": ["METADATA", "RECORD"],
                                 sp + "/empty-2.0.dist-info": ["METADATA", "RECORD"],
                                 sp + "/norecord-1.0.dist-info": ["RECORD"]}
    d = found["dangling-symlinks"]
    assert d.paths == ["/usr/lib/gone-link", "/usr/lib/libbar.so", "/usr/lib/loop-a", "/usr/lib/loop-b"]
    assert "/usr/lib/libbar.so -> libbar.so.3 (/usr/lib/libbar.so.3 missing)" in d.evidence
    assert "/usr/lib/loop-a -> loop-b (symlink loop)" in d.evidence


def test_nested_roots_are_not_walked(tmp_path):
    nested = "/var/lib/containers/storage/vfs/dir/abc"
    for d in ("etc", "usr", "var", "bin"):
        os.makedirs(str(tmp_path) + nested + "/" + d)
    os.symlink("/usr/lib/nothing-here", str(tmp_path) + nested + "/etc/link")
    assert "dangling-symlinks" not in by_id(run_audit(tmp_path))


def test_any_byte_sequence_as_a_file_name(tmp_path):
    bad = os.fsencode(str(tmp_path)) + b"/usr/lib/bad-\xff\nname"
    os.makedirs(str(tmp_path / "usr/lib"))
    os.symlink(b"missing-\xfe", bad)
    proc = run_cli("audit", "--root", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (f,) = [f for f in doc["findings"] if f["id"] == "dangling-symlinks"]
    assert f["paths"] == [{"bytes_hex": b"/usr/lib/bad-\xff\nname".hex()}]
    proc = run_cli("audit", "--root", tmp_path)
    assert "bad-\\xff\nname" in proc.stdout


# -- runtime pieces -----------------------------------------------------------------------

def test_no_ca_certificates_while_ssl_is_present(tmp_path):
    fake_python(tmp_path, "/usr/local", "3.12", ssl=True)
    dpkg_status(tmp_path, stanza("libc6", "2.36", 100))
    f = by_id(run_audit(tmp_path))["no-ca-certificates"]
    assert f.paths == ["/usr/local/lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so"]
    assert "package ca-certificates is not installed" in f.evidence
    write(tmp_path, "/etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\n")
    assert "no-ca-certificates" not in by_id(run_audit(tmp_path))


def test_no_ssl_module_no_ca_finding(tmp_path):
    fake_python(tmp_path, "/usr/local", "3.12", ssl=False)
    assert "no-ca-certificates" not in by_id(run_audit(tmp_path))


@pytest.mark.parametrize("env,bad", [
    ({"LANG": "C"}, True), ({}, True), ({"LANG": "POSIX"}, True), ({"LANG": "en_US.ISO-8859-1"}, True),
    ({"LANG": "C.UTF-8"}, False), ({"LANG": "C", "LC_ALL": "en_US.utf8"}, False),
    ({"LANG": "C.UTF-8", "LC_ALL": "C"}, True),
])
def test_locale(tmp_path, env, bad):
    found = by_id(run_audit(tmp_path, env=env))
    assert ("locale-not-utf8" in found) is bad


def test_locale_not_checked_without_an_environment(tmp_path):
    result = run_audit(tmp_path, env=None)
    (run,) = [c for c in result.checks if c.id == "locale"]
    assert run.status == "skipped"
    proc = run_cli("audit", "--root", tmp_path)
    assert "not checked: locale" in proc.stdout


def test_env_file_from_the_command_line(tmp_path):
    envfile = tmp_path / "env.txt"
    envfile.write_text("PATH=/usr/local/bin:/usr/bin\nLANG=C\n")
    root = tmp_path / "root"
    root.mkdir()
    proc = run_cli("audit", "--root", root, "--env", envfile, "--json", "--fail-on", "warn")
    assert proc.returncode == 100
    doc = json.loads(proc.stdout)
    assert [f["id"] for f in doc["findings"]] == ["locale-not-utf8"]
    assert doc["findings"][0]["data"] == {"variable": "LANG", "value": "C"}


# -- planners of the other commands ----------------------------------------------------------

def test_unresolved_libraries_through_keeps_planner(tmp_path):
    dpkg_status(tmp_path, stanza("libc6", "2.36", 100))
    write(tmp_path, "/usr/lib/x86_64-linux-gnu/libc.so.6", build_elf(soname="libc.so.6"))
    write(tmp_path, "/lib64/ld-linux-x86-64.so.2", build_elf(soname="ld-linux-x86-64.so.2"))
    write(tmp_path, "/usr/local/lib/libplanted.so",
          build_elf(needed=("libyaml-0.so.2", "libc.so.6"), soname="libplanted.so"))
    write(tmp_path, "/usr/local/bin/tool", build_elf(etype=3, needed=("libplanted.so", "libc.so.6"),
                                                     runpath="$ORIGIN/../lib"), 0o755)
    f = by_id(run_audit(tmp_path))["unresolved-libs"]
    assert f.severity == "error"
    assert f.paths == ["/usr/local/lib/libplanted.so"]
    assert {(m["needer"], m["library"]) for m in f.data["missing"]} == {
        ("/usr/local/lib/libplanted.so", "libyaml-0.so.2")}
    assert f.evidence[0] == "/usr/local/lib/libplanted.so needs libyaml-0.so.2: not found"
    proc = run_cli("audit", "--root", tmp_path, "--json")
    assert proc.returncode == 100
    proc = run_cli("audit", "--root", tmp_path, "--ignore", "unresolved-libs")
    assert proc.returncode == 0


def test_unresolved_libraries_with_a_stale_cache_are_found_as_the_image_is(tmp_path):
    """keep runs ldconfig for a stale cache; audit judges the image as it is: the
    loader would not find the library, and the evidence says why."""
    from tests.unit.test_ldcache import new_cache
    dpkg_status(tmp_path, stanza("libc6", "2.36", 100))
    write(tmp_path, "/usr/lib/x86_64-linux-gnu/libc.so.6", build_elf(soname="libc.so.6"))
    write(tmp_path, "/lib64/ld-linux-x86-64.so.2", build_elf(soname="ld-linux-x86-64.so.2"))
    write(tmp_path, "/usr/local/lib/libplanted.so.1",
          build_elf(needed=("libc.so.6",), soname="libplanted.so.1"))
    write(tmp_path, "/usr/local/bin/tool", build_elf(etype=3, needed=("libplanted.so.1", "libc.so.6")),
          0o755)
    write(tmp_path, "/etc/ld.so.conf", "/usr/local/lib\n/usr/lib/x86_64-linux-gnu\n")
    write(tmp_path, "/etc/ld.so.cache",
          new_cache([("libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x303, 0)]))
    f = by_id(run_audit(tmp_path))["unresolved-libs"]
    assert f.paths == ["/usr/local/bin/tool"]
    assert f.evidence[-1] == ("/etc/ld.so.cache lacks 1 library of the /etc/ld.so.conf directories "
                              "(/usr/local/lib/libplanted.so.1): run ldconfig")


def test_dead_weight_through_prunes_planner_hard_links_once(tmp_path):
    sp = "/usr/local/lib/python3.12/site-packages"
    write(tmp_path, sp + "/pkg/__init__.py", "")
    write(tmp_path, sp + "/pkg/tests/__init__.py", "")
    write(tmp_path, sp + "/pkg/tests/test_a.py", b"t" * 3000)
    write(tmp_path, sp + "/pkg/__pycache__/__init__.%s.pyc" % TAG, b"c" * 50)   # bytecode stays
    host_a = write(tmp_path, "/usr/local/lib/libfoo.a", b"a" * 10000)
    os.link(host_a, str(tmp_path) + "/usr/local/lib/libfoo-copy.a")             # one inode, two names
    write(tmp_path, "/usr/local/share/doc/foo/README", b"r" * 400)
    write(tmp_path, "/usr/local/share/doc/foo/copyright", b"c" * 40)             # stays
    f = by_id(run_audit(tmp_path))["dead-weight"]
    assert f.severity == "warn" and f.reclaimable
    assert f.bytes == 3000 + 10000 + 400
    assert f.data["by_rule"]["static-libs"]["bytes"] == 10000
    assert f.data["hard_links"]["files"] == 2
    assert sorted(f.paths) == ["/usr/local/lib/libfoo-copy.a", "/usr/local/lib/libfoo.a",
                               sp + "/pkg/tests", "/usr/local/share/doc/foo/README"]


def test_audit_writes_nothing(tmp_path):
    fake_python(tmp_path, "/usr/local", "3.12", ssl=True)
    write(tmp_path, "/var/lib/apt/lists/x_InRelease", b"r")
    os.symlink("missing", str(tmp_path / "usr/local/dangling"))

    def listing():
        out = {}
        for d, dirs, files in os.walk(str(tmp_path)):
            for n in dirs + files:
                st = os.lstat(os.path.join(d, n))
                out[os.path.join(d, n)] = (st.st_mtime_ns, st.st_size, stat.S_IMODE(st.st_mode))
        return out

    before = listing()
    proc = run_cli("audit", "--root", tmp_path, "--fail-on", "warn")
    assert proc.returncode == 100
    assert listing() == before


# -- site-packages and venv bytecode --------------------------------------------------

def _site_fixture(tmp_path):
    """/usr/local Python of this version: one compiled package in site-packages, a
    venv at /opt/venv with an uncompiled one, Debian-like dist-packages."""
    import compileall
    import sys
    version = "%d.%d" % sys.version_info[:2]
    fake_python(tmp_path, "/usr/local", version)
    site = "/usr/local/lib/python%s/site-packages" % version
    for m in ("ok/__init__", "ok/core", "ok/tests/test_core"):
        write(tmp_path, "%s/%s.py" % (site, m), "X = 1\n")
    compileall.compile_dir(str(tmp_path) + site + "/ok", quiet=2)
    write(tmp_path, "/opt/venv/pyvenv.cfg", "home = /usr/local/bin\n")
    venv_site = "/opt/venv/lib/python%s/site-packages" % version
    write(tmp_path, venv_site + "/app/__init__.py", "import json\n" * 50)
    write(tmp_path, venv_site + "/app/tests/test_app.py", "X = 1\n")  # tests are not counted
    return site, venv_site


def test_a_venv_without_bytecode_is_a_warning_with_its_cost(tmp_path):
    site, venv_site = _site_fixture(tmp_path)
    result = run_audit(tmp_path)
    found = by_id(result)
    missing = found["site-missing-pyc"]
    assert missing.paths == [venv_site + "/app/__init__.py"]
    assert missing.severity == "warn"
    assert missing.data["source_bytes"] == len("import json\n" * 50)
    assert missing.data["trees"] == [venv_site]
    assert "venv /opt/venv" in missing.evidence[0] and "per non-root start" in missing.evidence[0]
    assert "site-stale-pyc" not in found and "pyc-unreadable" not in found
    assert audit.exit_code(result.findings, "warn") == 100


def test_site_packages_that_lost_their_bytecode(tmp_path):
    site, _ = _site_fixture(tmp_path)
    import shutil
    shutil.rmtree(str(tmp_path) + site + "/ok/__pycache__")
    missing = by_id(run_audit(tmp_path))["site-missing-pyc"]
    assert site + "/ok/core.py" in missing.paths
    assert site + "/ok/tests/test_core.py" not in missing.paths


def test_stale_and_unreadable_site_pycs(tmp_path):
    import importlib.util
    site, venv_site = _site_fixture(tmp_path)
    core = str(tmp_path) + site + "/ok/core.py"
    os.utime(core, (1_500_000_000, 1_500_000_000))
    init_pyc = importlib.util.cache_from_source(str(tmp_path) + site + "/ok/__init__.py")
    os.chmod(init_pyc, 0o600)
    found = by_id(run_audit(tmp_path))
    assert found["site-stale-pyc"].paths == [site + "/ok/core.py"]
    assert found["pyc-unreadable"].paths == [site + "/ok/__init__.py"]
    os.chmod(init_pyc, 0o644)
    os.chmod(os.path.dirname(init_pyc), 0o700)  # a __pycache__ others cannot enter
    found = by_id(run_audit(tmp_path))
    assert site + "/ok/__init__.py" in found["pyc-unreadable"].paths


def test_debians_dist_packages_are_checked_for_its_python3(tmp_path):
    import sys
    version = "%d.%d" % sys.version_info[:2]
    fake_python(tmp_path, "/usr", version)
    os.symlink("python" + version, str(tmp_path) + "/usr/bin/python3")
    write(tmp_path, "/usr/lib/python3/dist-packages/deb/__init__.py", "X = 1\n")
    write(tmp_path, "/usr/local/lib/python%s/dist-packages/piped/__init__.py" % version, "X = 1\n")
    missing = by_id(run_audit(tmp_path))["site-missing-pyc"]
    assert sorted(missing.paths) == ["/usr/lib/python3/dist-packages/deb/__init__.py",
                             "/usr/local/lib/python%s/dist-packages/piped/__init__.py" % version]
