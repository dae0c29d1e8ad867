"""apt sources parsing: one-line and deb822 fixtures of real files, apt's file order.

Expected values are written by hand from the fixtures and, where apt-get is
installed, also taken from apt itself (`apt-get indextargets --no-release-info`
reading the same files)."""

import os
import shutil
import subprocess

import pytest

from pyimgtools import apt
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root

DATA = os.path.join(os.path.dirname(__file__), "data", "sources")


def load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        text = f.read()
    parse = apt.parse_deb822 if name.endswith(".sources") else apt.parse_one_line
    return parse(text, name)


def triples(entries):
    return [(e.type, e.uri, e.suite, tuple(e.components)) for e in entries if e.enabled]


def test_buster_one_line_with_updates_suite():
    assert triples(load("debian-buster.list")) == [
        ("deb", "http://deb.debian.org/debian", "buster", ("main",)),
        ("deb", "http://security.debian.org/debian-security", "buster/updates", ("main",)),
        ("deb", "http://deb.debian.org/debian", "buster-updates", ("main",)),
    ]


def test_bullseye_one_line():
    entries = load("debian-bullseye.list")
    assert [e.suite for e in entries] == ["bullseye", "bullseye-security", "bullseye-updates"]
    assert [e.line for e in entries] == [2, 4, 6]
    assert entries[1].uri == "http://deb.debian.org/debian-security"


def test_bookworm_deb822_expands_suites_and_keeps_signed_by():
    entries = load("debian-bookworm.sources")
    assert triples(entries) == [
        ("deb", "http://deb.debian.org/debian", "bookworm", ("main",)),
        ("deb", "http://deb.debian.org/debian", "bookworm-updates", ("main",)),
        ("deb", "http://deb.debian.org/debian-security", "bookworm-security", ("main",)),
    ]
    assert {e.options["signed-by"] for e in entries} == {"/usr/share/keyrings/debian-archive-keyring.gpg"}
    assert [e.line for e in entries] == [1, 1, 8]  # comments inside a stanza are skipped


def test_bookworm_installer_file_with_deb_src_and_cdrom_comment():
    entries = load("debian-bookworm-installer.list")
    assert [(e.type, e.suite) for e in entries] == [
        ("deb", "bookworm"), ("deb-src", "bookworm"),
        ("deb", "bookworm-security"), ("deb-src", "bookworm-security"),
        ("deb", "bookworm-updates"), ("deb-src", "bookworm-updates")]
    assert entries[0].components == ["main", "non-free-firmware"]


def test_trixie_one_line_options_and_trailing_comment():
    entries = load("debian-trixie.list")
    assert len(entries) == 3  # the backports line is commented out
    assert entries[0].options == {"arch": "amd64",
                                  "signed-by": "/usr/share/keyrings/debian-archive-keyring.pgp"}
    assert entries[1].options["arch"] == "amd64"  # "[ arch=... ]" with spaces
    assert entries[2].suite == "trixie-security"
    assert entries[2].components == ["main", "contrib", "non-free", "non-free-firmware"]


def test_trixie_deb822():
    assert [e.suite for e in load("debian-trixie.sources")] == [
        "trixie", "trixie-updates", "trixie-security"]


def test_ubuntu_jammy_one_line():
    entries = load("ubuntu-jammy.list")
    sec = [e for e in entries if e.suite == "jammy-security"]
    assert [tuple(e.components) for e in sec] == [("main", "restricted"), ("universe",),
                                                  ("multiverse",)]
    assert {e.uri for e in sec} == {"http://security.ubuntu.com/ubuntu/"}
    assert len(entries) == 10


def test_ubuntu_noble_deb822_and_empty_list():
    assert load("ubuntu-noble.list") == []
    entries = load("ubuntu-noble.sources")
    assert [e.suite for e in entries] == ["noble", "noble-updates", "noble-backports",
                                          "noble-security"]
    assert entries[-1].components == ["main", "universe", "restricted", "multiverse"]


def test_multiline_signed_by_and_enabled_no():
    entries = load("third-party-armored.sources")
    first = entries[0]
    assert first.enabled
    key = first.options["signed-by"]
    assert key.startswith("\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ")
    assert key.endswith("-----END PGP PUBLIC KEY BLOCK-----")
    assert first.options["architectures"] == "amd64"
    rest = entries[1:]
    assert [(e.type, e.enabled) for e in rest] == [("deb", False), ("deb-src", False)]


@pytest.mark.parametrize("text, where", [
    ("deb http://x\n", "sources.list:1"),
    ("deb [arch=amd64 http://x bookworm main\n", "sources.list:1"),
    ("\nrpm http://x bookworm main\n", "sources.list:2"),
    ("deb http://x bookworm\n", "sources.list:1"),
])
def test_malformed_one_line_names_the_line(text, where):
    with pytest.raises(PyimgtoolsError) as exc:
        apt.parse_one_line(text, "sources.list")
    assert where in str(exc.value)


def test_malformed_deb822_names_the_stanza():
    with pytest.raises(PyimgtoolsError) as exc:
        apt.parse_deb822("Types: deb\nURIs: http://x\nSuites: a/\n\nTypes: deb\nSuites: a\n", "x.sources")
    assert "x.sources:5" in str(exc.value)  # the second stanza's first field
    with pytest.raises(PyimgtoolsError):
        apt.parse_deb822(" continuation first\n", "y.sources")


def test_flat_repository_needs_no_component():
    e, = apt.parse_one_line("deb [trusted=yes] file:/srv/repo ./\n")
    assert (e.uri, e.suite, e.components, e.options) == ("file:/srv/repo", "./", [], {"trusted": "yes"})


def _make_root(tmp_path, files):
    for rel, name in files.items():
        dst = tmp_path / rel.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(DATA, name), str(dst))
    return Root(str(tmp_path))


def test_file_order_is_sources_list_then_parts_lexically_and_bad_names_ignored(tmp_path):
    root = _make_root(tmp_path, {
        "/etc/apt/sources.list": "debian-bullseye.list",
        "/etc/apt/sources.list.d/z-sec.sources": "debian-bookworm.sources",
        "/etc/apt/sources.list.d/a.list": "debian-trixie.list",
        "/etc/apt/sources.list.d/B_1.2-x.list": "debian-buster.list",
        "/etc/apt/sources.list.d/ignored.list.save": "ubuntu-jammy.list",
        "/etc/apt/sources.list.d/has space.list": "ubuntu-jammy.list",
        "/etc/apt/sources.list.d/old.list~": "ubuntu-jammy.list",
    })
    assert apt.source_files(root) == [
        "/etc/apt/sources.list", "/etc/apt/sources.list.d/B_1.2-x.list",
        "/etc/apt/sources.list.d/a.list", "/etc/apt/sources.list.d/z-sec.sources"]
    suites = [e.suite for e in apt.read_sources(root)]
    assert suites[:3] == ["bullseye", "bullseye-security", "bullseye-updates"]
    assert suites[3:6] == ["buster", "buster/updates", "buster-updates"]
    assert suites[-3:] == ["bookworm", "bookworm-updates", "bookworm-security"]


def test_no_sources_at_all(tmp_path):
    assert apt.read_sources(Root(str(tmp_path))) == []


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (the oracle)")
@pytest.mark.parametrize("name", sorted(os.listdir(DATA)))
def test_agrees_with_apt_indextargets(tmp_path, name):
    """apt itself, reading the same file: which (type, URI, suite, component) it fetches."""
    parts = tmp_path / "parts"
    parts.mkdir()
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    shutil.copy(os.path.join(DATA, name), str(parts / name))
    proc = subprocess.run(
        ["apt-get", "indextargets", "--no-release-info",
         "-o", "Dir::Etc::sourcelist=/dev/null", "-o", "Dir::Etc::sourceparts=%s" % parts,
         "-o", "Dir::State::lists=%s" % (tmp_path / "lists"),
         "-o", "APT::Architectures::=amd64", "-o", "APT::Architecture=amd64",
         "--format", "$(CREATED_BY)\t$(REPO_URI)\t$(RELEASE)\t$(COMPONENT)"],
        capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    assert proc.returncode == 0, proc.stderr
    kinds = {"Packages": "deb", "Sources": "deb-src"}
    from_apt = set()
    for line in proc.stdout.splitlines():
        created, uri, release, comp = line.split("\t")
        if created in kinds:
            from_apt.add((kinds[created], uri.rstrip("/"), release, comp))
    ours = set()
    for e in load(name):
        if e.enabled:
            for comp in e.components:
                ours.add((e.type, e.uri.rstrip("/"), e.suite, comp))
    assert ours == from_apt
