"""The harness's readers of real tools' output, on outputs written by hand from the tools' formats.

glibc's elf/rtld.c prints each object as "\\tNAME => not found", "\\tNAME (0xADDR)"
or "\\tNAME => PATH (0xADDR)"; dpkg's src/query/main.c prints a diverted path's
"diversion by PKG from: / to:" (or "local diversion from: / to:") lines before
"PKG, PKG: PATH". Where an older copy of a parser read these differently, the
case is here.
"""

import os

from tests.harness import dpkgquery, elfwalk, ldd

TRACE = ("\tlinux-vdso.so.1 (0x00007ffc6a3f1000)\n"
         "\tlibfoo.so.1 => /usr/lib/x86_64-linux-gnu/libfoo.so.1 (0x00007f0d6c600000)\n"
         "\tlibgone.so.7 => not found\n"
         "\t/opt/lib/libabs.so (0x00007f0d6c400000)\n"
         "\tlibfoo.so.1 => /elsewhere/libfoo.so.1 (0x00007f0d6c200000)\n"
         "\t/lib64/ld-linux-x86-64.so.2 (0x00007f0d6c800000)\n")


def test_trace_lines_in_order():
    assert ldd.parse(TRACE) == [
        ("libfoo.so.1", "/usr/lib/x86_64-linux-gnu/libfoo.so.1"),
        ("libgone.so.7", None),
        ("/opt/lib/libabs.so", "/opt/lib/libabs.so"),
        ("libfoo.so.1", "/elsewhere/libfoo.so.1"),
        (ldd.RTLD, ldd.RTLD)]


def test_by_name_keeps_the_first_line_and_drops_the_interpreters_own():
    assert ldd.by_name(TRACE) == {"libfoo.so.1": "/usr/lib/x86_64-linux-gnu/libfoo.so.1",
                                  "libgone.so.7": None, "/opt/lib/libabs.so": "/opt/lib/libabs.so"}


def test_resolved_and_missing_keeps_the_interpreter():
    resolved, missing = ldd.resolved_and_missing(TRACE)
    assert resolved == {"/usr/lib/x86_64-linux-gnu/libfoo.so.1", "/opt/lib/libabs.so",
                        "/elsewhere/libfoo.so.1", ldd.RTLD}
    assert missing == {"libgone.so.7"}


def test_what_is_not_an_object_line_is_ignored():
    # ldd's "FILE:" header (several files), "statically linked", and ld.so's
    # messages when stderr is merged: an older copy took any line starting
    # with "/" for a loaded object.
    text = ("/usr/bin/prog:\n"
            "\tstatically linked\n"
            "/usr/bin/prog: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.99' not found "
            "(required by /usr/bin/prog)\n"
            "\tnot a dynamic executable\n")
    assert ldd.parse(text) == []
    assert ldd.resolved_and_missing(text) == (set(), set())


SEARCH = ("diversion by postgresql-common from: /usr/bin/pg_config\n"
          "diversion by postgresql-common to: /usr/bin/pg_config.libpq-dev\n"
          "libpq-dev, postgresql-common: /usr/bin/pg_config\n"
          "local diversion from: /usr/bin/dpkg\n"
          "local diversion to: /usr/bin/dpkg.local\n"
          "dpkg: /usr/bin/dpkg\n"
          "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n")


def test_search_output_with_both_kinds_of_diversion():
    listers, diverted = dpkgquery.parse_search(SEARCH)
    # an older copy skipped only "diversion by" lines and read "local diversion
    # from" as the packages listing /usr/bin/dpkg
    assert listers == {"/usr/bin/pg_config": {"libpq-dev", "postgresql-common"},
                       "/usr/bin/dpkg": {"dpkg"},
                       "/lib/x86_64-linux-gnu/libc.so.6": {"libc6:amd64"}}
    assert diverted == {"/usr/bin/pg_config": ("postgresql-common", "/usr/bin/pg_config.libpq-dev"),
                        "/usr/bin/dpkg": (None, "/usr/bin/dpkg.local")}


def test_elf_files_are_regular_files_with_the_magic(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/lib.so").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(57))
    (tmp_path / "magic-only").write_bytes(b"\x7fELF")
    (tmp_path / "short").write_bytes(b"\x7fEL")
    (tmp_path / "script").write_bytes(b"#!/bin/sh\n")
    os.symlink("sub/lib.so", str(tmp_path / "link.so"))
    os.symlink("sub", str(tmp_path / "dirlink"))
    os.mkfifo(str(tmp_path / "fifo"))       # an older copy opened it: blocked for ever
    assert elfwalk.elf_files(str(tmp_path)) == [str(tmp_path / "magic-only"),
                                                str(tmp_path / "sub/lib.so")]
    assert elfwalk.elf_files(str(tmp_path), root_path=str(tmp_path)) == ["/magic-only", "/sub/lib.so"]
    assert not elfwalk.is_elf_file(str(tmp_path / "link.so"))
    assert not elfwalk.is_elf_file(str(tmp_path / "absent"))
