"""Architecture facts the loader needs per (class, machine) of an image's
objects: the multiarch triplet and built-in directories, the standard
interpreter, $PLATFORM, the glibc-hwcaps levels and ld.so.cache flags."""

from pyimgtools import elf as _elf
from pyimgtools import ldcache as _ldcache

TRIPLETS = {
    (_elf.EM_X86_64, 64): "x86_64-linux-gnu",
    (_elf.EM_X86_64, 32): "x86_64-linux-gnux32",
    (_elf.EM_386, 32): "i386-linux-gnu",
    (_elf.EM_AARCH64, 64): "aarch64-linux-gnu",
    (_elf.EM_PPC, 32): "powerpc-linux-gnu",
    (_elf.EM_S390, 64): "s390x-linux-gnu",
    (_elf.EM_RISCV, 64): "riscv64-linux-gnu",
    (_elf.EM_LOONGARCH, 64): "loongarch64-linux-gnu",
    (_elf.EM_SPARCV9, 64): "sparc64-linux-gnu",
    (_elf.EM_IA_64, 64): "ia64-linux-gnu",
}

# glibc's standard interpreter paths (the ABI's PT_INTERP).
INTERPS = {
    (_elf.EM_X86_64, 64): "/lib64/ld-linux-x86-64.so.2",
    (_elf.EM_X86_64, 32): "/libx32/ld-linux-x32.so.2",
    (_elf.EM_386, 32): "/lib/ld-linux.so.2",
    (_elf.EM_AARCH64, 64): "/lib/ld-linux-aarch64.so.1",
    (_elf.EM_PPC64, 64): "/lib64/ld64.so.2",
    (_elf.EM_S390, 64): "/lib/ld64.so.1",
    (_elf.EM_RISCV, 64): "/lib/ld-linux-riscv64-lp64d.so.1",
    (_elf.EM_LOONGARCH, 64): "/lib64/ld-linux-loongarch-lp64d.so.1",
}

# glibc-hwcaps subdirectories, highest priority first (glibc's
# sysdeps/*/dl-hwcaps-subdirs.c).
HWCAPS = {
    (_elf.EM_X86_64, 64): ("x86-64-v4", "x86-64-v3", "x86-64-v2"),
    (_elf.EM_PPC64, 64): ("power11", "power10", "power9"),
    (_elf.EM_S390, 64): ("z17", "z16", "z15", "z14", "z13"),
}

# AT_PLATFORM as the kernel sets it ($PLATFORM).
PLATFORMS = {
    (_elf.EM_X86_64, 64): "x86_64",
    (_elf.EM_X86_64, 32): "x86_64",
    (_elf.EM_386, 32): "i686",
    (_elf.EM_AARCH64, 64): "aarch64",
}



class Arch:
    """The loader's view of one class/machine inside one root."""

    def __init__(self, files, info, cpu_hwcaps=None):
        key = (info.machine, info.elf_class)
        if info.machine == _elf.EM_PPC64 and info.little_endian:
            triplet = "powerpc64le-linux-gnu"
        elif info.machine == _elf.EM_PPC64:
            triplet = "powerpc64-linux-gnu"
        elif info.machine == _elf.EM_ARM:
            triplet = "arm-linux-gnueabihf" if info.e_flags & 0x400 else "arm-linux-gnueabi"
        else:
            triplet = TRIPLETS.get(key)
        self.elf_class = info.elf_class
        self.little_endian = info.little_endian
        self.machine = info.machine
        self.cache_flags = _ldcache.accepted_flags(info)
        self.interp = INTERPS.get(key)
        self.platform = PLATFORMS.get(key)
        self.hwcaps = tuple(level for level in HWCAPS.get(key, ())
                            if cpu_hwcaps is None or level in cpu_hwcaps)
        # Built-in directories: Debian/Ubuntu's multiarch layout when the
        # image has it, else the lib64 layout of 64-bit distributions, else /lib.
        if triplet and (files.isdir("/usr/lib/" + triplet) or files.isdir("/lib/" + triplet)):
            self.lib = "lib/" + triplet
            self.default_dirs = ("/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib")
        elif info.elf_class == 64 and (files.isdir("/usr/lib64") or files.isdir("/lib64")) \
                and info.machine not in (_elf.EM_AARCH64,):
            self.lib = "lib64"
            self.default_dirs = ("/lib64", "/usr/lib64")
        else:
            self.lib = "lib"
            self.default_dirs = ("/lib", "/usr/lib")
        # Prefixes glibc compares cache values with under -z nodefaultlib.
        self.default_prefixes = tuple(d.rstrip("/") + "/" for d in self.default_dirs)

    def matches(self, info):
        return (info.elf_class == self.elf_class and info.little_endian == self.little_endian
                and info.machine == self.machine)


