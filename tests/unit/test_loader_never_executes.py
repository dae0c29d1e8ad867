"""Reading and resolving an ELF file never runs it (nor its interpreter).

The fixture is a program whose PT_INTERP is a tiny hand-assembled x86-64
"interpreter" that creates a marker file and exits: whoever starts the
program (the kernel, an ldd that executes its argument, as glibc's ldd did
before it switched to running ld.so on the file) runs the interpreter. The
control executes the program the way such an ldd does (LD_TRACE_LOADED_OBJECTS=1
./prog) and sees the marker appear; the reader and the loader never create it.

Built by hand (no gcc), so it also runs where no compiler is installed.
"""

import os
import struct
import subprocess

import pytest

from pyimgtools.elf import has_elf_magic, read_elf
from pyimgtools.fs import Root
from pyimgtools.loader import Loader
from tests.harness.prereq import require
from tests.harness.elfbuild import build_elf


def marker_interpreter(marker):
    """An ET_DYN x86-64 ELF whose entry point does open(marker, O_WRONLY|O_CREAT, 0644); exit(0)."""
    path = os.fsencode(marker) + b"\0"
    code = bytearray()
    code += b"\x48\x8d\x3d" + struct.pack("<i", 0)      # lea rdi, [rip + msg] (patched below)
    code += b"\xbe\x41\x00\x00\x00"                     # mov esi, O_WRONLY|O_CREAT
    code += b"\xba\xa4\x01\x00\x00"                     # mov edx, 0644
    code += b"\xb8\x02\x00\x00\x00"                     # mov eax, SYS_open
    code += b"\x0f\x05"                                 # syscall
    code += b"\x31\xff"                                 # xor edi, edi
    code += b"\xb8\x3c\x00\x00\x00"                     # mov eax, SYS_exit
    code += b"\x0f\x05"                                 # syscall
    struct.pack_into("<i", code, 3, len(code) - 7)      # msg follows the code
    code += path
    ehsize, phsize = 64, 56
    entry = ehsize + phsize
    total = entry + len(code)
    ident = b"\x7fELF\x02\x01\x01\x00" + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, entry, ehsize, 0, 0, ehsize, phsize, 1,
                                 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, total, total, 0x1000)
    return header + phdr + bytes(code)


@pytest.fixture
def evil(tmp_path):
    marker = str(tmp_path / "marker")
    interp = str(tmp_path / "interp")
    prog = str(tmp_path / "prog")
    with open(interp, "wb") as f:
        f.write(marker_interpreter(marker))
    with open(prog, "wb") as f:
        f.write(build_elf(etype=3, interp=interp, needed=["libc.so.6"]))
    os.chmod(interp, 0o755)
    os.chmod(prog, 0o755)
    return prog, interp, marker


def test_control_executing_the_file_runs_its_interpreter(evil):
    prog, _interp, marker = evil
    require(os.uname().machine == "x86_64", "the marker interpreter is x86-64 code")
    # What an ldd that executes its argument does:
    subprocess.run([prog], env={"LD_TRACE_LOADED_OBJECTS": "1"}, capture_output=True, timeout=30)
    assert os.path.exists(marker)


def test_reader_and_loader_never_run_it(evil):
    prog, interp, marker = evil
    assert has_elf_magic(prog)
    info = read_elf(prog)
    assert info.interp == interp
    tree = Loader(Root("/")).load_tree(prog)
    assert [(d.name, d.path, d.via) for d in tree.dependencies if d.via == "interp"] == \
        [(interp, interp, "interp")]
    assert interp in tree.objects
    assert not os.path.exists(marker)


def test_loader_in_a_mounted_root_never_runs_it(tmp_path):
    root = tmp_path / "rootfs"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "lib").mkdir()
    marker = str(tmp_path / "marker")
    with open(str(root / "lib/evil-ld.so"), "wb") as f:
        f.write(marker_interpreter(marker))
    with open(str(root / "usr/local/bin/prog"), "wb") as f:
        f.write(build_elf(etype=3, interp="/lib/evil-ld.so", needed=["libc.so.6"]))
    tree = Loader(Root(str(root))).load_tree("/usr/local/bin/prog")
    assert [d.path for d in tree.dependencies if d.via == "interp"] == ["/lib/evil-ld.so"]
    assert not os.path.exists(marker)


def test_script_interpreter_is_reported_not_run(tmp_path):
    marker = str(tmp_path / "marker")
    script = str(tmp_path / "interp.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\ntouch '%s'\n" % marker)
    os.chmod(script, 0o755)
    prog = str(tmp_path / "prog")
    with open(prog, "wb") as f:
        f.write(build_elf(etype=3, interp=script, needed=["libc.so.6"]))
    os.chmod(prog, 0o755)
    tree = Loader(Root("/")).load_tree(prog)
    assert any("interp.sh" in w and "malformed" in w for w in tree.warnings)
    assert not os.path.exists(marker)
