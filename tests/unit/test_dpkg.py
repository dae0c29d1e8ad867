"""dpkg database reader on small hand-made databases (expected values by hand)."""

import os

import pytest

from pyimgtools.dpkg import Database, parse_diversions, parse_extended_states, parse_status
from pyimgtools.errors import PyimgtoolsError
from pyimgtools.fs import Root
from tests.harness.dpkgdb import DIVERSIONS, EXTENDED, LISTS, STATUS, make_db

def test_status_fields_and_names():
    pkgs = parse_status(STATUS)
    assert sorted(pkgs) == ["dpkg", "libc6:amd64", "libc6:i386", "libpq-dev", "libstdc++6:amd64",
                            "oldpkg", "postgresql-common", "tzdata"]
    libc = pkgs["libc6:amd64"]
    assert (libc.version, libc.installed_size, libc.multi_arch, libc.priority) == \
        ("2.36-9+deb12u9", 12988, "same", "optional")
    assert libc.state == "installed" and libc.installed
    assert libc.apt_name == "libc6:amd64"
    assert pkgs["tzdata"].apt_name == "tzdata"       # Multi-Arch: foreign keeps its bare name
    assert pkgs["dpkg"].essential and not pkgs["tzdata"].essential
    assert not pkgs["oldpkg"].installed               # config-files only


def test_diversions_triplets():
    ds = parse_diversions(DIVERSIONS + b"/incomplete\n")
    assert [(d.original, d.diverted_to, d.package) for d in ds] == [
        ("/usr/bin/pg_config", "/usr/bin/pg_config.libpq-dev", "postgresql-common"),
        ("/usr/bin/dpkg", "/usr/bin/dpkg.local", None)]


def test_extended_states():
    assert parse_extended_states(EXTENDED) == {("libstdc++6", "amd64"), ("tzdata", "amd64")}


def test_owners_usrmerge_both_sides(tmp_path):
    db = make_db(tmp_path)
    got = db.owners([
        "/usr/lib/x86_64-linux-gnu/libc.so.6",       # dpkg lists /lib/..., asked as /usr/lib/...
        "/lib/x86_64-linux-gnu/libstdc++.so.6",      # dpkg lists /usr/lib/..., asked as /lib/...
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/i386-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libnothing.so.1",
    ]).owners
    assert got == {
        "/usr/lib/x86_64-linux-gnu/libc.so.6": ["libc6:amd64"],
        "/lib/x86_64-linux-gnu/libstdc++.so.6": ["libstdc++6:amd64"],
        "/lib64/ld-linux-x86-64.so.2": ["libc6:amd64"],
        "/usr/lib64/ld-linux-x86-64.so.2": ["libc6:amd64"],
        "/usr/lib/i386-linux-gnu/libc.so.6": ["libc6:i386"],
        "/usr/lib/x86_64-linux-gnu/libnothing.so.1": [],
    }


def test_owners_without_usrmerge_are_exact(tmp_path):
    db = make_db(tmp_path, usrmerge=False)
    got = db.owners(["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"]).owners
    # /lib is a real directory here: only the listed spelling is libc6's file
    assert got == {"/usr/lib/x86_64-linux-gnu/libc.so.6": [],
                   "/lib/x86_64-linux-gnu/libc.so.6": ["libc6:amd64"]}


def test_owners_no_substring_matches(tmp_path):
    db = make_db(tmp_path)
    got = db.owners(["/usr/lib/x86_64-linux-gnu/xlibc.so.6", "/usr/lib/x86_64-linux-gnu/c.so.6"]).owners
    assert got == {"/usr/lib/x86_64-linux-gnu/xlibc.so.6": ["oddball"],   # last line, no newline
                   "/usr/lib/x86_64-linux-gnu/c.so.6": []}


def test_owners_honour_diversions(tmp_path):
    db = make_db(tmp_path)
    idx = db.owners(["/usr/bin/pg_config", "/usr/bin/pg_config.libpq-dev", "/usr/bin/dpkg",
                     "/usr/bin/dpkg.local"])
    assert idx.owners == {
        "/usr/bin/pg_config": ["postgresql-common"],        # the diverting package's file
        "/usr/bin/pg_config.libpq-dev": ["libpq-dev"],      # the diverted package's file
        "/usr/bin/dpkg": [],                                # local diversion: nobody's
        "/usr/bin/dpkg.local": ["dpkg"],
    }
    assert "postgresql-common" in idx.diverted["/usr/bin/pg_config.libpq-dev"]


def test_manual_and_auto(tmp_path):
    db = make_db(tmp_path)
    assert db.auto_installed() == {"libstdc++6:amd64", "tzdata"}   # arch all recorded as native
    assert db.manual_packages() == {"libc6:amd64", "libc6:i386", "dpkg", "postgresql-common",
                                    "libpq-dev"}


def test_missing_database_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    db = Database(Root(str(tmp_path / "empty")))
    with pytest.raises(PyimgtoolsError, match="no dpkg database"):
        db.packages
    with pytest.raises(PyimgtoolsError, match="cannot read /var/lib/dpkg/info"):
        db.owners(["/usr/lib/libx.so"])


def test_odd_file_names_in_lists(tmp_path):
    name = b"/usr/lib/x86_64-linux-gnu/lib\xff weird\tname.so.1"
    db = make_db(tmp_path, lists=dict(LISTS, weird=["/.", os.fsdecode(name)]))
    assert db.owners([os.fsdecode(name)]).owners == {os.fsdecode(name): ["weird"]}


# Trixie's time_t transition (measured in trixie's dpkg database): libreadline8t64
# (Multi-Arch: same, so its list is libreadline8t64:amd64.list) ships the /usr/lib
# spelling and diverts the /lib spelling that the old libreadline8 shipped to
# *.usr-is-merged, so that removing libreadline8 cannot delete the file.
T64_STATUS = b"""\
Package: libreadline8t64
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 8.2-6

Package: libfoo1t64
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1.0-1

Package: libbar1
Status: install ok installed
Architecture: amd64
Version: 1.0-1

Package: libbar1t64
Status: install ok installed
Architecture: amd64
Version: 1.0-2
"""

T64_LISTS = {
    "libreadline8t64:amd64": ["/.", "/usr", "/usr/lib", "/usr/lib/x86_64-linux-gnu",
                              "/usr/lib/x86_64-linux-gnu/libreadline.so.8",
                              "/usr/lib/x86_64-linux-gnu/libreadline.so.8.2"],
    # a diverting package that ships the /lib spelling it diverts
    "libfoo1t64:amd64": ["/.", "/lib", "/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu/libfoo.so.1"],
    # an old package still listing the diverted spelling: its file is the diverted-to one
    "libbar1": ["/.", "/lib/x86_64-linux-gnu/libbar.so.1"],
    "libbar1t64": ["/.", "/usr/lib/x86_64-linux-gnu/libbar.so.1"],
}

T64_DIVERSIONS = (
    b"/lib/x86_64-linux-gnu/libreadline.so.8\n"
    b"/lib/x86_64-linux-gnu/libreadline.so.8.usr-is-merged\nlibreadline8t64\n"
    b"/lib/x86_64-linux-gnu/libfoo.so.1\n/lib/x86_64-linux-gnu/libfoo.so.1.usr-is-merged\nlibfoo1t64\n"
    b"/lib/x86_64-linux-gnu/libbar.so.1\n/lib/x86_64-linux-gnu/libbar.so.1.usr-is-merged\nlibbar1t64\n")


def make_t64_db(tmp_path):
    return make_db(tmp_path, lists=T64_LISTS, status=T64_STATUS, diversions=T64_DIVERSIONS)


def test_usr_is_merged_diversion_keeps_the_diverting_package_under_either_spelling(tmp_path):
    # dpkg-query --search '*lib/x86_64-linux-gnu/libreadline.so.8' in trixie prints the
    # diversion lines and "libreadline8t64:amd64: /usr/lib/x86_64-linux-gnu/libreadline.so.8".
    db = make_t64_db(tmp_path)
    got = db.owners(["/lib/x86_64-linux-gnu/libreadline.so.8",
                     "/usr/lib/x86_64-linux-gnu/libreadline.so.8",
                     "/lib/x86_64-linux-gnu/libfoo.so.1",
                     "/usr/lib/x86_64-linux-gnu/libfoo.so.1"]).owners
    assert got == {"/lib/x86_64-linux-gnu/libreadline.so.8": ["libreadline8t64:amd64"],
                   "/usr/lib/x86_64-linux-gnu/libreadline.so.8": ["libreadline8t64:amd64"],
                   "/lib/x86_64-linux-gnu/libfoo.so.1": ["libfoo1t64:amd64"],
                   "/usr/lib/x86_64-linux-gnu/libfoo.so.1": ["libfoo1t64:amd64"]}


def test_usr_is_merged_diversion_moves_only_other_packages_files(tmp_path):
    # libbar1's /lib spelling is diverted (not by libbar1): its file would be the
    # .usr-is-merged one; the file at either spelling is libbar1t64's.
    db = make_t64_db(tmp_path)
    got = db.owners(["/lib/x86_64-linux-gnu/libbar.so.1",
                     "/usr/lib/x86_64-linux-gnu/libbar.so.1.usr-is-merged"]).owners
    assert got == {"/lib/x86_64-linux-gnu/libbar.so.1": ["libbar1t64"],
                   "/usr/lib/x86_64-linux-gnu/libbar.so.1.usr-is-merged": ["libbar1"]}
