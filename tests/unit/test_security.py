"""security-upgrade planning on apt's real output formats (apt 2.6, copied from
`apt-cache policy` / `apt-get -s` on Debian 12), detection, and the CLI errors
that need no apt."""

import os

import pytest

from pyimgtools import cli, security
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root
from tests.conftest import run_cli

POLICY_FILES = """\
Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
     release v=12-updates,o=Debian,a=oldstable-updates,n=bookworm-updates,l=Debian,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
 500 http://security.debian.org buster/updates/main amd64 Packages
     release v=10,o=Debian,a=oldoldstable,n=buster,l=Debian-Security,c=main,b=amd64
     origin security.debian.org
 500 http://archive.ubuntu.com/ubuntu noble-security/main amd64 Packages
     release v=24.04,o=Ubuntu,a=noble-security,n=noble,l=Ubuntu,c=main,b=amd64
     origin archive.ubuntu.com
 500 https://packages.example.org/debian stable-security/main amd64 Packages
     release o=Example,a=stable-security,n=example-security,l=Example,c=main,b=amd64
     origin packages.example.org
Pinned packages:
"""

POLICY_PACKAGES = """\
tzdata:
  Installed: 2025b-0+deb12u2
  Candidate: 2026f-0+deb12u1
  Version table:
     2026f-0+deb12u1 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     2026b-0+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 2025b-0+deb12u2 100
        100 /var/lib/dpkg/status
     2025b-0+deb12u1 500
        500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
libc6:
  Installed: 2.36-9+deb12u14
  Candidate: 2.36-9+deb12u14
  Version table:
 *** 2.36-9+deb12u14 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
     2.36-9+deb12u7 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
openssh-client:
  Installed: 1:9.2p1-2+deb12u6
  Candidate: 1:9.2p1-2+deb12u10
  Version table:
     1:9.2p1-2+deb12u10 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1:9.2p1-2+deb12u9 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     1:9.2p1-2+deb12u7 500
        500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
 *** 1:9.2p1-2+deb12u6 100
        100 /var/lib/dpkg/status
libssl3:i386:
  Installed: 3.0.19-1~deb12u2
  Candidate: 3.0.22-1~deb12u2
  Version table:
     3.0.22-1~deb12u2 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     3.0.21-1~deb12u1 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 3.0.19-1~deb12u2 100
        100 /var/lib/dpkg/status
perl-base:
  Installed: 5.36.0-7+deb12u3
  Candidate: 5.36.0-7+deb12u4
  Version table:
     5.36.0-7+deb12u4 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
 *** 5.36.0-7+deb12u3 100
        100 /var/lib/dpkg/status
thirdparty:
  Installed: 1.0
  Candidate: 2.0
  Version table:
     2.0 500
        500 https://packages.example.org/debian stable-security/main amd64 Packages
 *** 1.0 100
        100 /var/lib/dpkg/status
"""

INSTALLED = [
    ("tzdata", "all", "2025b-0+deb12u2", "install", "installed"),
    ("bash", "amd64", "5.2.15-2+b8", "install", "installed"),
    ("libc6", "amd64", "2.36-9+deb12u14", "install", "installed"),
    ("openssh-client", "amd64", "1:9.2p1-2+deb12u6", "install", "installed"),
    ("libssl3", "i386", "3.0.19-1~deb12u2", "install", "installed"),
    ("perl-base", "amd64", "5.36.0-7+deb12u3", "hold", "installed"),
    ("thirdparty", "amd64", "1.0", "install", "installed"),
    ("removed", "amd64", "1.0", "deinstall", "config-files"),
]


def test_policy_files_and_security_judgement():
    files = security.parse_policy_files(POLICY_FILES)
    assert len(files) == 7
    sec = {k for k, f in files.items() if security.is_security_file(f.release)}
    assert sec == {
        "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages",
        "http://security.debian.org buster/updates/main amd64 Packages",   # Label
        "http://archive.ubuntu.com/ubuntu noble-security/main amd64 Packages",  # Suite
    }  # Example's "stable-security" is not the distribution's origin
    f = files["http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"]
    assert f.suite == "bookworm-security"
    assert f.release["a"] == "oldstable-security"


def test_compute_updates_picks_highest_security_version_newer_than_installed():
    files = security.parse_policy_files(POLICY_FILES)
    tables = security.parse_policy_packages(POLICY_PACKAGES)
    assert [v for v, _ in tables["openssh-client"]][0] == "1:9.2p1-2+deb12u10"
    pending, held = security.compute_updates(INSTALLED, files, tables, "amd64")
    got = [(u.package, u.installed, u.candidate, u.suite) for u in pending]
    assert got == [
        ("libssl3:i386", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "bookworm-security"),
        # the security version, not the newer point-release candidate
        ("openssh-client", "1:9.2p1-2+deb12u6", "1:9.2p1-2+deb12u9", "bookworm-security"),
        ("tzdata", "2025b-0+deb12u2", "2026f-0+deb12u1", "bookworm-security"),
    ]  # bash: only main has newer; libc6: security is older; thirdparty: not the distro
    assert [(u.package, u.candidate) for u in held] == [("perl-base", "5.36.0-7+deb12u4")]


SIMULATION = """\
Reading package lists...
Building dependency tree...
The following packages will be upgraded:
  libssl3 openssl
Inst libssl-dev [3.0.19-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64]) []
Inst libssl3 [3.0.19-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Inst libnew1 (1.2-3 Debian:12.15/oldstable, Debian:12-updates/oldstable-updates [amd64])
Conf libssl3 (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Remv python3-jwt [2.6.0-1]
"""


def test_parse_simulation():
    installs, removals = security.parse_simulation(SIMULATION)
    assert [(e.package, e.installed, e.version, e.origin) for e in installs] == [
        ("libssl-dev", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "Debian-Security:12/oldstable-security"),
        ("libssl3", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "Debian-Security:12/oldstable-security"),
        ("libnew1", "", "1.2-3", "Debian:12.15/oldstable, Debian:12-updates/oldstable-updates"),
    ]
    assert removals == ["python3-jwt"]


def _source(kind, uri, suite, comps=("main",), options=None, enabled=True):
    from pyimgtools.apt import Source
    return Source(kind, uri, suite, list(comps), options or {}, "f", 1, enabled)


def test_security_sources_and_temporary_source():
    deb = security.Distro("debian", "bookworm", "Debian 12")
    assert security.is_security_source(_source("deb", "http://x/debian-security", "bookworm-security"), deb)
    assert not security.is_security_source(_source("deb-src", "http://x", "bookworm-security"), deb)
    assert not security.is_security_source(
        _source("deb", "http://x", "bookworm-security", enabled=False), deb)
    assert not security.is_security_source(_source("deb", "http://x", "bookworm-updates"), deb)
    buster = security.Distro("debian", "buster", "Debian 10")
    assert security.is_security_source(_source("deb", "http://s", "buster/updates"), buster)
    main = _source("deb", "http://127.0.0.1:9/debian", "bookworm", ["main", "contrib"],
                   {"signed-by": "/usr/share/keyrings/debian-archive-keyring.gpg"})
    assert security.temporary_source([main], deb) == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://127.0.0.1:9/debian-security bookworm-security main contrib\n")
    assert security.temporary_source([], buster) == (
        "deb http://deb.debian.org/debian-security buster/updates main\n")
    noble = security.Distro("ubuntu", "noble", "Ubuntu 24.04")
    ub = _source("deb", "http://archive.ubuntu.com/ubuntu/", "noble", ["main", "universe"])
    assert security.is_security_source(_source("deb", "http://a/ubuntu", "noble-security"), noble)
    assert security.temporary_source([ub], noble) == (
        "deb http://archive.ubuntu.com/ubuntu/ noble-security main universe\n")


def _image(tmp_path, os_release, dpkg=True):
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    if os_release is not None:
        (tmp_path / "etc/os-release").write_text(os_release)
    if dpkg:
        (tmp_path / "var/lib/dpkg").mkdir(parents=True)
        (tmp_path / "var/lib/dpkg/status").write_text("")
        (tmp_path / "usr/bin").mkdir(parents=True)
        (tmp_path / "usr/bin/apt-get").write_text("")
    return Root(str(tmp_path))


@pytest.mark.parametrize("text, dpkg, expected", [
    ('ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n', False,
     "unsupported distribution Alpine Linux v3.20 (ID=alpine)"),
    ("ID=fedora\nVERSION_ID=40\n", False, "dnf upgrade --security"),
    ('ID=debian\nVERSION_ID="9"\nVERSION="9 (stretch)"\n', True, "Debian buster (10) and newer"),
    ('ID=ubuntu\nVERSION_ID="18.04"\nVERSION_CODENAME=bionic\n', True, "focal (20.04)"),
    ('ID=debian\nPRETTY_NAME="Debian GNU/Linux trixie/sid"\nVERSION_CODENAME=sid\n', True,
     "no security suite"),
    ('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Distroless"\n', False, "distroless"),
    (None, False, "no /etc/os-release and no dpkg database"),
])
def test_unsupported(tmp_path, text, dpkg, expected):
    with pytest.raises(PyimgtoolsError) as exc:
        security.detect(_image(tmp_path, text, dpkg))
    assert expected in str(exc.value)


def test_supported(tmp_path):
    d = security.detect(_image(tmp_path, 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n'))
    assert (d.id, d.codename) == ("debian", "trixie")


def test_cli_alpine_root_says_what_to_use(tmp_path):
    _image(tmp_path, "ID=alpine\nVERSION_ID=3.20.3\n", dpkg=False)
    proc = run_cli("security-upgrade", "--root", str(tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyimgtools: error: unsupported distribution")
    assert "apk upgrade" in lines[0]
    assert proc.stdout == ""


def test_cli_not_root_refuses_before_touching_anything(tmp_path, monkeypatch, capsys):
    _image(tmp_path, 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    rc = cli.main(["security-upgrade", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip() == ("pyimgtools: error: security-upgrade (applying updates) needs root "
                           "(run it as root, e.g. in a Dockerfile RUN step)")
    assert os.listdir(str(tmp_path / "etc")) == ["os-release"]


def test_cli_check_without_security_source_and_no_add_source(tmp_path, monkeypatch, capsys):
    _image(tmp_path, 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (tmp_path / "etc/apt").mkdir()
    (tmp_path / "etc/apt/sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    rc = cli.main(["security-upgrade", "--check", "--no-add-source", "--root", str(tmp_path)])
    assert rc == 1
    assert "no bookworm security source configured (/etc/apt/sources.list)" in capsys.readouterr().err


def test_help_has_examples():
    proc = run_cli("security-upgrade", "--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout and "--check" in proc.stdout


def test_apply_failing_half_way_says_what_was_applied(monkeypatch):
    from pyimgtools import apt
    plan = security.Plan("debian", "bookworm", [], "", [
        security.Update("libssl3", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "bookworm-security"),
        security.Update("tzdata", "2025b-0+deb12u2", "2026f-0+deb12u1", "bookworm-security"),
    ], [])
    marked = []
    monkeypatch.setattr(apt, "apt_mark_showauto", lambda root=None: ["libssl3", "other"])
    monkeypatch.setattr(apt, "apt_mark", lambda mode, pkgs, root=None: marked.append((mode, pkgs)))
    monkeypatch.setattr(apt, "native_architecture", lambda root=None: "amd64")
    out = ("Get:1 http://deb.debian.org/debian-security bookworm-security/main amd64 libssl3\n"
           "E: Failed to fetch http://deb.debian.org/debian-security/pool/updates/main/t/tzdata/"
           "tzdata_2026f-0+deb12u1_all.deb  Connection failed [IP: 151.101.2.132 80]\n")
    monkeypatch.setattr(apt, "apt_get", lambda args, **kw: apt.AptResult(
        list(args), 100, out, [out.splitlines()[1][3:]], []))
    monkeypatch.setattr(security, "read_status", lambda root: [
        ("libssl3", "amd64", "3.0.22-1~deb12u2", "install", "installed"),
        ("tzdata", "all", "2025b-0+deb12u2", "install", "installed")])
    with pytest.raises(PyimgtoolsError) as exc:
        security.apply(Root("/"), plan, 60, None)
    msg = str(exc.value)
    assert msg.startswith("apt-get install failed: Failed to fetch http://deb.debian.org/")
    assert msg.endswith("; applied 1 of 2 security updates (libssl3), not applied: tzdata")
    assert marked == [("auto", ["libssl3"])]   # auto marks restored even on failure


def test_simulation_with_removals_stops_and_extras_are_reported(monkeypatch):
    from pyimgtools import apt
    plan = security.Plan("debian", "bookworm", [], "", [
        security.Update("libssl3", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "bookworm-security")], [])
    calls = []

    def fake(args, **kw):
        calls.append(list(args))
        return apt.AptResult(list(args), 0, SIMULATION, [], [])
    monkeypatch.setattr(apt, "apt_get", fake)
    with pytest.raises(PyimgtoolsError) as exc:
        security.simulate(Root("/"), plan, 60)
    assert str(exc.value) == ("applying the security updates would remove python3-jwt; "
                              "nothing was changed")
    assert calls == [["-s", "install", "--no-install-recommends", "libssl3=3.0.22-1~deb12u2"]]
    monkeypatch.setattr(apt, "apt_get", lambda args, **kw: apt.AptResult(
        list(args), 0, SIMULATION.replace("Remv python3-jwt [2.6.0-1]\n", ""), [], []))
    extras = security.simulate(Root("/"), plan, 60)
    assert [(e.package, e.installed, e.version) for e in extras] == [
        ("libssl-dev", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2"), ("libnew1", "", "1.2-3")]


def test_cli_check_says_clearly_when_the_lists_are_absent(tmp_path, monkeypatch, capsys):
    _image(tmp_path, 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (tmp_path / "etc/apt").mkdir()
    (tmp_path / "etc/apt/sources.list").write_text(
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n")
    (tmp_path / "var/lib/apt/lists/partial").mkdir(parents=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    rc = cli.main(["security-upgrade", "--check", "--no-update", "--root", str(tmp_path)])
    assert rc == 1
    assert capsys.readouterr().err.strip() == (
        "pyimgtools: error: no apt lists in /var/lib/apt/lists: run 'apt-get update' first, "
        "or run as root without --no-update")


def _bookworm(tmp_path):
    root = _image(tmp_path, 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (tmp_path / "etc/apt").mkdir()
    (tmp_path / "etc/apt/sources.list").write_text(
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n")
    return root


@pytest.mark.parametrize("breakage", ["journal", "half-installed"])
def test_dry_run_refuses_exactly_where_the_real_run_refuses(tmp_path, monkeypatch, capsys, breakage):
    # Issue 14 item 10: the dry run said "would install" where the real run refuses.
    _bookworm(tmp_path)
    if breakage == "journal":
        (tmp_path / "var/lib/dpkg/updates").mkdir()
        (tmp_path / "var/lib/dpkg/updates/0001").write_text("Package: bash\n")
    else:
        (tmp_path / "var/lib/dpkg/status").write_text(
            "Package: bash\nStatus: install ok half-configured\nVersion: 5.2\n")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    args = ["security-upgrade", "--no-update", "--no-add-source", "--root", str(tmp_path)]
    results = []
    for extra in ([], ["--dry-run"]):
        rc = cli.main(args + extra)
        captured = capsys.readouterr()
        results.append((rc, captured.out, captured.err))
    real, dry = results
    assert real[0] == 1 and "dpkg --configure -a" in real[2]
    assert len(real[2].splitlines()) == 1 and real[2].startswith("pyimgtools: error: dpkg ")
    assert dry == real


def _fake_run(tmp_path, monkeypatch, apply):
    from pyimgtools import apt
    _bookworm(tmp_path)
    (tmp_path / "var/lib/apt/lists").mkdir(parents=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    plan = security.Plan("debian", "bookworm", [], "", [
        security.Update("libssl3", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", "bookworm-security")], [])
    monkeypatch.setattr(apt, "update_lists", lambda *a, **kw: None)
    monkeypatch.setattr(security, "make_plan", lambda *a, **kw: plan)
    monkeypatch.setattr(security, "simulate", lambda *a, **kw: [])
    monkeypatch.setattr(security, "apply", apply)
    # the dry run sizes the candidate with apt-cache show (no apt in this root)
    monkeypatch.setattr(apt, "apt_cache", lambda args, root=None: (
        "Package: libssl3\nArchitecture: amd64\nMulti-Arch: same\n"
        "Version: 3.0.22-1~deb12u2\nInstalled-Size: 6000\n"))
    return plan


def test_real_run_prints_upgrades_only_after_they_are_installed(tmp_path, monkeypatch, capsys):
    # Issue 14 item 12: "pkg a -> b" lines came before an install that then failed.
    def failing(*a, **kw):
        raise PyimgtoolsError("apt-get install failed: Failed to fetch x; applied 0 of 1 "
                              "security updates (none), not applied: libssl3")
    _fake_run(tmp_path, monkeypatch, failing)
    rc = cli.main(["security-upgrade", "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "3.0.19-1~deb12u2 -> 3.0.22-1~deb12u2" not in out
    assert err.splitlines()[-1].startswith("pyimgtools: error: apt-get install failed")

    plan = _fake_run(tmp_path / "ok", monkeypatch, lambda root, plan, *a: list(plan.pending))
    rc = cli.main(["security-upgrade", "--root", str(tmp_path / "ok")])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert "upgraded libssl3 3.0.19-1~deb12u2 -> 3.0.22-1~deb12u2 (bookworm-security)" in out
    assert out[-1].startswith("pyimgtools security-upgrade: installed 1 security update")
    rc = cli.main(["security-upgrade", "--dry-run", "--root", str(tmp_path / "ok")])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and plan.pending
    assert "would upgrade libssl3 3.0.19-1~deb12u2 -> 3.0.22-1~deb12u2 (bookworm-security)" in out


def test_temporary_source_is_written_inside_the_root_whatever_links_say(tmp_path, monkeypatch, capsys):
    # Issue 14, "nothing written outside the tree": the temporary source went to
    # root.host(path), which the host kernel resolves through the image's links.
    from pyimgtools import apt
    outside = tmp_path / "outside"
    outside.mkdir()
    image = tmp_path / "img"
    _image(image, 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (image / "etc/apt").mkdir()
    (image / "etc/apt/sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    os.symlink(str(outside), str(image / "etc/apt/sources.list.d"))   # absolute: inside the root
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    seen = []

    def update_lists(root, **kw):
        inside = image / str(outside).lstrip("/") / os.path.basename(security.TEMP_SOURCE)
        seen.append((sorted(os.listdir(str(outside))), inside.read_text()))
    monkeypatch.setattr(apt, "update_lists", update_lists)
    monkeypatch.setattr(security, "make_plan", lambda *a, **kw: security.Plan(
        "debian", "bookworm", [], "", [], []))
    rc = cli.main(["security-upgrade", "--dry-run", "--root", str(image)])
    assert rc == 0, capsys.readouterr().err
    assert seen and seen[0][0] == [] and "bookworm-security main" in seen[0][1]
    assert os.listdir(str(outside)) == []
    assert os.listdir(str(image / str(outside).lstrip("/"))) == []   # removed afterwards
