"""glibc's loader as the reference: its trace output (`ldd`, `ld.so --list`,
LD_TRACE_LOADED_OBJECTS=1) parsed once, and the glibc-hwcaps levels it searches.

Independent of pyimgtools.loader. The trace lines are exactly the three forms
glibc's elf/rtld.c prints for each object after the main program:

    \\tNAME => not found                  (l_faked: the search failed)
    \\tNAME (0xADDR)                      (l_libname == l_name: the interpreter,
                                          the vDSO, a DT_NEEDED given as a path)
    \\tNAME => PATH (0xADDR)

(or "\\tstatically linked"). Anything else -- ldd's "FILE:" header when given
several files, error messages on stderr merged into stdout -- is not an object
and is ignored. Run ldd only on trusted files (the machine's own, or a test
rootfs's): it may execute its argument (ldd(1)).
"""

import os
import re
import subprocess

RTLD = "/lib64/ld-linux-x86-64.so.2"
# x86-64 glibc-hwcaps levels, highest first (ld.so --help lists the supported ones).
LEVELS = ("x86-64-v4", "x86-64-v3", "x86-64-v2")

_ARROW = re.compile(r"^\s*(\S.*?) => (.*?)(?: \(0x[0-9a-f]+\))?$")
_ITSELF = re.compile(r"^\s*(/\S.*?) \(0x[0-9a-f]+\)$")


def parse(text):
    """[(name, path or None)] in printed order; an object loaded as itself (an
    absolute name: the interpreter, a DT_NEEDED path) is (path, path); the vDSO
    (no path) is left out."""
    entries = []
    for line in text.splitlines():
        m = _ARROW.match(line)
        if m:
            entries.append((m.group(1), None if m.group(2) == "not found" else m.group(2)))
            continue
        m = _ITSELF.match(line)
        if m:
            entries.append((m.group(1), m.group(1)))
    return entries


def by_name(text, interpreter=RTLD):
    """{needed name: path or None}, the first line of each name, without the
    interpreter's own "\\tPATH (0x...)" line: what a load tree's ldd view holds."""
    result = {}
    for name, path in parse(text):
        if not (name == path == interpreter):
            result.setdefault(name, path)
    return result


def resolved_and_missing(text):
    """(set of paths loaded, interpreter included; set of names not found) of one ldd output."""
    entries = parse(text)
    return ({p for _n, p in entries if p is not None}, {n for n, p in entries if p is None})


def _env(extra=None):
    # The tested code never reads the environment's LD_* variables; neither does the reference.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


def run_ldd(path, env=None):
    """stdout of `ldd PATH` (ld.so run on the file as given, not through the kernel)."""
    return subprocess.run(["ldd", path], capture_output=True, text=True, errors="surrogateescape",
                          env=_env(env), timeout=120, stdin=subprocess.DEVNULL).stdout


def ldd(path, env=None):
    """by_name() of `ldd PATH`."""
    return by_name(run_ldd(path, env))


def real_loader(binary, env=None):
    """{needed name: path or None} as glibc maps them when `binary` starts: the
    kernel starts the interpreter on the real executable, which in trace mode
    prints each object it maps and exits before running any code of the program."""
    out = subprocess.run([binary], env=_env(dict(env or {}, LD_TRACE_LOADED_OBJECTS="1")),
                         capture_output=True, text=True, errors="surrogateescape", timeout=120,
                         stdin=subprocess.DEVNULL).stdout
    return by_name(out)


def ld_so_list(path, library_path=None):
    """(returncode, by_name() of stdout, stderr) of the real `ld.so --list PATH`."""
    argv = [RTLD, "--list", path]
    if library_path:
        argv[1:1] = ["--library-path", ":".join(library_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", env=_env(),
                          timeout=60, stdin=subprocess.DEVNULL)
    return proc.returncode, by_name(proc.stdout), proc.stderr


def cpu_hwcaps(env=None):
    """The glibc-hwcaps levels ld.so searches on this CPU (under `env`'s GLIBC_TUNABLES)."""
    full = dict(os.environ, **(env or {}))
    out = subprocess.run([RTLD, "--help"], env=full, capture_output=True, text=True).stdout
    return tuple(re.findall(r"^\s+(x86-64-v\d) \(supported, searched\)", out, re.M))
