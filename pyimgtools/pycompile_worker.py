"""The byte-compiling worker: runs inside the *target* interpreter.

`pyimgtools compile` never imports this module to compile: it reads its source
(pkgutil.get_data, so it works from a zip too), starts ``TARGET_PYTHON -I -S -B
-c BOOT`` and sends the source on stdin, where BOOT runs it as __main__; so the
.pyc files come from the interpreter that will read them. Keep this file standard library only and
valid Python 3.7+: it runs under whatever Python the image has.

Protocol on stdin/stdout: frames of a 4-byte little-endian length followed by
``marshal.dumps(obj, 2)`` (plain tuples, bytes, str and ints only, which every
Python 3 reads alike). Requests:

    ("info", want_paths, venv or None)    -> dict of facts about this interpreter
    ("config", mode, levels, force)       -> True
    ("check", [(path, source), ...])              -> [(size, [reason or "" per level]) | ("!", message)]
    ("compile", [(path, dfile, levels, source, top)]) -> [result, ...] (see compile_item)

`path` is bytes: the source, beside which __pycache__ is; `source`, when not
None, the file to read instead (a symlink resolved inside an image root);
`dfile` the name compiled into the code objects (None: the path itself, as
compileall does without -d). What gets
written is exactly what ``py_compile.compile`` writes for the same file, mode
and optimization level (the same helpers of importlib), except that the file is
made readable by everyone who can read the source, whatever the umask.
"""

import sys

# Exit status of a worker whose interpreter cannot compile for compile (too
# old, no cache_tag): compile reports its message as a --python error.
EXIT_UNSUITABLE = 3

if sys.version_info < (3, 7):  # no hash-based .pyc files (PEP 552) before 3.7
    sys.stderr.write("Python %d.%d is too old: pyimgtools compile needs 3.7 or newer\n"
                     % sys.version_info[:2])
    sys.exit(EXIT_UNSUITABLE)

import errno  # noqa: E402
import marshal  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import struct  # noqa: E402
import warnings  # noqa: E402

# importlib.util's helpers are re-exports of the bootstrap's, which every
# interpreter has loaded before any code runs; importing importlib.util costs
# each worker ~5 ms of start-up, on the critical path of every warm run.
import _imp  # noqa: E402
from importlib import _bootstrap_external as _bootstrap  # noqa: E402

try:  # the helpers py_compile itself uses (3.7+)
    from importlib._bootstrap_external import _code_to_hash_pyc, _code_to_timestamp_pyc
except ImportError:  # pragma: no cover - some other implementation
    _code_to_hash_pyc = _code_to_timestamp_pyc = None

MAGIC = _bootstrap.MAGIC_NUMBER
# The key importlib.util.source_hash passes: 3.14+ name it pyc_magic_number_token.
_HASH_KEY = getattr(_imp, "pyc_magic_number_token", None)
if _HASH_KEY is None:
    _HASH_KEY = _bootstrap._RAW_MAGIC_NUMBER
MODES = {"timestamp": 0, "unchecked-hash": 1, "checked-hash": 3}  # PEP 552 flags
_FRAME = struct.Struct("<I")
_MAX_WARNINGS = 20
# O_NONBLOCK: a FIFO put where a source was listed must not hang the worker
# (it is then refused as "not a regular file"); it changes nothing for files.
_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CACHE_DIR = "__pycache__"


def pyc_path(path, level):
    """Where this interpreter reads the .pyc of `path` (str) at optimization `level`."""
    return _bootstrap.cache_from_source(path, optimization=level if level else "")


def hash_of_source(data):
    """importlib.util.source_hash(data): the key of a hash-based .pyc (PEP 552)."""
    return _imp.source_hash(_HASH_KEY, data)


def _pack(n):
    return (int(n) & 0xFFFFFFFF).to_bytes(4, "little")


def header(flags, st, source_hash):
    """The 16-byte header py_compile writes (PEP 552)."""
    if flags == 0:
        return MAGIC + _pack(0) + _pack(st.st_mtime) + _pack(st.st_size)
    return MAGIC + _pack(flags) + source_hash


def wanted_mode(src_mode):
    """A .pyc is readable by whoever can read the source; only its owner writes it."""
    return (src_mode & 0o444) | 0o200


def check_item(path, source, levels, flags, force):
    """(source size, [reason per level]); "" means that .pyc is up to date.

    Plain file descriptors, not io objects: this runs for every file of every
    warm run, where it is most of the work.
    """
    spath = os.fsdecode(path)
    fd = os.open(source or path, _O_READ)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError("not a regular file")
        source_hash = None
        reasons = []
        for level in levels:
            if force:
                reasons.append("forced")
                continue
            try:
                pfd = os.open(pyc_path(spath, level), _O_READ)
            except FileNotFoundError:
                reasons.append("missing")
                continue
            except OSError:
                reasons.append("unreadable")
                continue
            try:
                head = os.read(pfd, 17)
                pst = os.fstat(pfd)
                whole = len(head) < 17 or head[:4] != MAGIC or body_ends_whole(pfd, pst.st_size)
            except OSError:
                reasons.append("unreadable")
                continue
            finally:
                os.close(pfd)
            if len(head) < 17 or head[:4] != MAGIC:
                reasons.append("other version")
                continue
            if not whole:
                reasons.append("corrupt")
                continue
            got_flags = int.from_bytes(head[4:8], "little")
            if got_flags != flags:
                reasons.append("other mode")
                continue
            if flags == 0:
                expected = header(0, st, None)
            else:
                if source_hash is None:
                    source_hash = hash_of_source(_read_all(fd))
                expected = header(flags, st, source_hash)
            if head[:16] != expected:
                reasons.append("source changed")
            elif (st.st_mode & 0o444) & ~pst.st_mode or not stat.S_ISREG(pst.st_mode):
                reasons.append("permissions")
            else:
                reasons.append("")
    finally:
        os.close(fd)
    return st.st_size, reasons


_TAIL = 4096   # holds the module trailer of 98 % of the stdlib (its line table)
_REF = 0x72                            # marshal TYPE_REF ('r')
_BYTES = (0x73, 0xf3)                  # TYPE_STRING ('s'), also with FLAG_REF
# After the module's name: (3.11+) qualname, a ref to the same string; the raw
# 4-byte co_firstlineno; the bytes objects that end a code object (co_lnotab /
# co_linetable; 3.11+ co_linetable and co_exceptiontable).
_QUALNAME = sys.version_info >= (3, 11)
_LAST_BYTES = 2 if sys.version_info >= (3, 11) else 1


def body_ends_whole(fd, size):
    """Whether the marshalled module code object of a .pyc (16-byte header)
    ends where a complete one ends, from its last bytes (marshal.loads of every
    .pyc would cost 4x compileall's whole warm run).

    The module's code object is written last (CPython 3.7-3.15) and ends with
    its name '<module>', a string nothing else in the file is named, and the
    fields above: parsed forward from there they must end exactly at the end of
    the file. A file cut anywhere (a full disk, a killed copy) or zero-filled
    after a crash fails that. A file where the trailer is not found so ('<module>'
    was written as a reference, because a constant spelt it before) is loaded
    with marshal.loads instead: exact, and rare. Corruption inside the body that
    leaves it loadable is not seen (importlib would load it too).
    """
    body = size - 16
    n = min(body, _TAIL)
    while n > 0:
        tail = os.pread(fd, n, size - n)
        if len(tail) != n:
            return False
        pos = tail.rfind(b"<module>")
        if pos >= 0:
            if _trailer_ends(tail, pos):
                return True
            break
        if n == body:
            break
        n = min(body, n * 16)
    return _loads(fd, size)


def _trailer_ends(tail, pos):
    """`tail[pos:]` is b'<module>' + the rest: does it parse to exactly the end?"""
    t1 = tail[pos - 2:pos - 1] if pos >= 2 else b""
    t4 = tail[pos - 5:pos - 4] if pos >= 5 else b""
    if not ((t1 and t1[0] & 0x7f in (0x5a, 0x7a) and tail[pos - 1] == 8)          # 'Z', 'z'
            or (t4 and t4[0] & 0x7f in (0x61, 0x41, 0x75, 0x74)                       # 'a' 'A' 'u' 't'
                and tail[pos - 4:pos] == b"\x08\0\0\0")):
        return False
    i = pos + 8
    if _QUALNAME:
        if tail[i:i + 1] != b"r":
            return False
        i += 5
    i += 4                                                  # co_firstlineno
    for _ in range(_LAST_BYTES):
        if i + 5 > len(tail):
            return False
        if tail[i] == _REF:
            i += 5
        elif tail[i] in _BYTES:
            i += 5 + int.from_bytes(tail[i + 1:i + 5], "little")
        else:
            return False
    return i == len(tail)


def _loads(fd, size):
    data = os.pread(fd, size, 0)
    try:
        marshal.loads(data[16:])
    except Exception:  # noqa: BLE001 - EOFError, ValueError: bad marshal data, ...
        return False
    return len(data) == size


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _open_source_dir(path, top):
    """A descriptor of the directory holding `path` (bytes), opened from the tree's
    top down, every step with O_NOFOLLOW: a directory of the tree swapped for a
    symlink while we work is refused, never followed. Without `top`, the
    directory itself (a single file given by the user)."""
    directory = os.path.dirname(path) or b"."
    if top is None:
        return os.open(directory, _O_DIR)
    rel = os.path.relpath(directory, top)
    fd = os.open(top, _O_DIR)
    try:
        if rel != b".":
            for part in rel.split(os.sep.encode()):
                nfd = os.open(part, _O_DIR | _O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_cache_dir(src_fd, where):
    """A descriptor of __pycache__ in the directory `src_fd`, created with mode 0755
    whatever the umask; an existing one that hides its .pyc files from users who
    can list the source directory is opened up. Everything through descriptors:
    a __pycache__ that is (or becomes) a symlink or a file is refused."""
    src_mode = os.fstat(src_fd).st_mode
    try:
        os.mkdir(CACHE_DIR, 0o755, dir_fd=src_fd)
        created = True
    except FileExistsError:
        created = False
    try:
        fd = os.open(CACHE_DIR, _O_DIR | _O_NOFOLLOW, dir_fd=src_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError("%s is not a directory (a symlink or a file)" % where) from None
        raise
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        want = 0o755 if created else mode | (src_mode & 0o555)
        if want != mode:
            os.fchmod(fd, want)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_atomic(dir_fd, name, data, mode):
    """Write `name` in the directory `dir_fd` by a rename of a fresh temporary file."""
    tmp = "%s.%d.tmp" % (name, os.getpid())  # our pid: removing it by name is always safe
    how = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:  # one try from the open on: a signal right after it still removes the file
        try:
            fd = os.open(tmp, how, 0o600, dir_fd=dir_fd)
        except FileExistsError:  # left by a run that was killed
            os.unlink(tmp, dir_fd=dir_fd)
            fd = os.open(tmp, how, 0o600, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _to_pyc(code, flags, st, data):
    if flags == 0:
        if _code_to_timestamp_pyc is not None:
            return _code_to_timestamp_pyc(code, st.st_mtime, st.st_size)
        return header(0, st, None) + marshal.dumps(code)
    source_hash = hash_of_source(data)
    if _code_to_hash_pyc is not None:
        return _code_to_hash_pyc(code, source_hash, flags == 3)
    return header(flags, st, source_hash) + marshal.dumps(code)


def compile_item(path, dfile, levels, flags, source=None, top=None):
    """Compile `path` for each level in `levels`; `top`: the tree's top directory
    (bytes), which the directories down to `path` are opened from.

    Returns ("ok", pycs written, bytes written, [warning lines]) or
    ("error", kind, message, lineno or 0, [warning lines]).
    """
    spath = os.fsdecode(path)
    caught = []
    cache_fd = None
    try:
        with open(source or path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        cache_dir = os.path.dirname(pyc_path(spath, levels[0]))
        if cache_dir != os.path.join(os.path.dirname(spath), CACHE_DIR):
            raise OSError("a pycache_prefix is set (%s): not supported"
                          % getattr(sys, "pycache_prefix", None))
        src_fd = _open_source_dir(path, top)
        try:
            cache_fd = _open_cache_dir(src_fd, cache_dir)
        finally:
            os.close(src_fd)
    except OSError as exc:
        return ("error", "OSError", exc.strerror or str(exc), 0, [])
    try:
        return _compile_levels(data, st, spath, dfile, levels, flags, cache_fd, caught)
    finally:
        os.close(cache_fd)


def _compile_levels(data, st, spath, dfile, levels, flags, cache_fd, caught):
    name = spath if dfile is None else dfile
    written = size = 0
    for level in levels:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            try:
                # What importlib's SourceLoader.source_to_code does for py_compile.
                code = compile(data, name, "exec", dont_inherit=True, optimize=level)
            except Exception as exc:  # SyntaxError, ValueError (NUL bytes), RecursionError...
                lineno = getattr(exc, "lineno", None) or 0
                msg = getattr(exc, "msg", None) or str(exc)
                return ("error", type(exc).__name__, msg, lineno, _warning_lines(caught + got))
        if level == levels[0]:
            caught.extend(got)
        pyc = _to_pyc(code, flags, st, data)
        try:
            _write_atomic(cache_fd, os.path.basename(pyc_path(spath, level)), pyc, wanted_mode(st.st_mode))
        except OSError as exc:
            return ("error", "OSError", "%s: %s" % (pyc_path(spath, level), exc.strerror or exc),
                    0, _warning_lines(caught))
        written += 1
        size += len(pyc)
    return ("ok", written, size, _warning_lines(caught))


def _warning_lines(caught):
    lines = []
    for w in caught[:_MAX_WARNINGS]:
        lines.append("%s:%s: %s: %s" % (w.filename, w.lineno, w.category.__name__, w.message))
    return lines


# The one venv probe of pyimgtools: `compile` asks it through "info", and
# pyimgtools.pytarget (finalize's target) runs this file's target_info() in the
# target too, so both always agree on what the venv is.

def venv_config(venv=None):
    """(venv directory, includes the system site-packages) or None, found as site.py
    finds them: a pyvenv.cfg beside the executable or one directory up; the venv is
    the executable's parent directory; include-system-site-packages is true unless
    the file says otherwise. pyimgtools runs the target under -S, where Python 3.13
    and older leave sys.prefix at the base installation (3.14 and newer set it to
    the venv even under -S). `venv`: the caller found the venv (an image's venv,
    run through its resolved binary); only its pyvenv.cfg is read."""
    exe_dir = os.path.dirname(os.path.abspath(sys.executable or ""))
    if venv is not None:
        places, exe_dir = [venv], os.path.join(venv, "bin")
    else:
        places = [exe_dir, os.path.dirname(exe_dir)]
    for d in places:
        cfg = os.path.join(d, "pyvenv.cfg")
        if not os.path.isfile(cfg):
            continue
        system_site = True  # site.py's default when the key is absent
        with open(cfg, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition("=")
                if sep and key.strip().lower() == "include-system-site-packages":
                    system_site = value.strip().lower() == "true"
        return os.path.dirname(exe_dir), system_site
    return None


def venv_prefix():
    """The venv this interpreter runs in, or None."""
    if sys.prefix != sys.base_prefix:
        return sys.prefix
    found = venv_config()
    return found[0] if found else None


def _base_paths():
    """sysconfig's paths of the base installation (also in a venv)."""
    import sysconfig
    return sysconfig.get_paths(vars={
        "base": sys.base_prefix, "platbase": sys.base_exec_prefix,
        "installed_base": sys.base_prefix, "installed_platbase": sys.base_exec_prefix})


def target_info(venv=None):
    """What pyimgtools.pytarget wants of the target: its prefix (the venv's directory
    in a venv), the base standard library, and the site-packages directories site.py
    would put on sys.path (a venv's own, plus the base's when the venv includes them)."""
    import site
    found = venv_config(venv)
    base = _base_paths()
    if found:
        prefix, system_site = found
        libdirs = [getattr(sys, "platlibdir", "lib")]
        if "lib" not in libdirs:
            libdirs.append("lib")
        ver = "python%d.%d" % sys.version_info[:2]
        sites = [os.path.join(prefix, d, ver, "site-packages") for d in libdirs]
        if system_site:
            sites += site.getsitepackages([sys.base_prefix, sys.base_exec_prefix])
    else:
        prefix = sys.prefix
        sites = site.getsitepackages()
    return {
        "executable": sys.executable, "version": "%d.%d.%d" % sys.version_info[:3],
        "prefix": prefix, "base_prefix": sys.base_prefix, "venv": bool(found),
        "stdlib": base.get("stdlib"), "platstdlib": base.get("platstdlib"),
        "site_packages": list(dict.fromkeys(sites)),
    }


def print_target_info(venv=None):
    import json
    sys.stdout.write(json.dumps(target_info(venv)) + "\n")


def site_paths(venv):
    """(purelib, platlib) of this interpreter; a venv's own when `venv` is given."""
    import sysconfig
    if venv is None:
        paths = sysconfig.get_paths()
    else:
        names = sysconfig.get_scheme_names()
        scheme = "venv" if "venv" in names else ("posix_prefix" if os.name == "posix" else "nt")
        paths = sysconfig.get_paths(scheme, vars={"base": venv, "platbase": venv})
    return paths.get("purelib"), paths.get("platlib")


def info(want_paths, venv=None):
    """Facts about this interpreter. With `want_paths`: its standard library (always
    the base installation's, also in a venv: 3.14's venv scheme puts platstdlib
    under sys.prefix), its site directories (the venv's, in a venv: `venv` when the
    caller found it, else venv_prefix()) and the base installation's."""
    doc = {
        "executable": sys.executable,
        "implementation": sys.implementation.name,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "hexversion": sys.hexversion,
        "cache_tag": sys.implementation.cache_tag,
        "magic": MAGIC,
        "pycache_prefix": getattr(sys, "pycache_prefix", None),
    }
    if want_paths:
        base = _base_paths()
        doc["stdlib"], doc["platstdlib"] = base.get("stdlib"), base.get("platstdlib")
        if venv is None:
            venv = venv_prefix()
        doc["venv"] = venv
        doc["purelib"], doc["platlib"] = site_paths(venv)
        # The base installation's site directories (pruned from the stdlib walk).
        doc["base_purelib"], doc["base_platlib"] = base.get("purelib"), base.get("platlib")
    return doc


def _read_frame(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = _FRAME.unpack(head)
    return marshal.loads(stream.read(n))


def _write_frame(stream, obj):
    payload = marshal.dumps(obj, 2)
    stream.write(_FRAME.pack(len(payload)) + payload)
    stream.flush()


def serve(stdin, stdout):
    """Answer framed requests (info, config, check, compile) until EOF on stdin."""
    flags, levels, force = 3, (0,), False
    while True:
        request = _read_frame(stdin)
        if request is None:
            return
        kind = request[0]
        if kind == "info":
            reply = info(request[1], request[2] if len(request) > 2 else None)
        elif kind == "config":
            flags, levels, force = MODES[request[1]], tuple(request[2]), bool(request[3])
            reply = True
        elif kind == "check":
            reply = []
            for path, source in request[1]:
                try:
                    reply.append(check_item(path, source, levels, flags, force))
                except OSError as exc:
                    reply.append(("!", exc.strerror or str(exc)))
        elif kind == "compile":
            reply = [compile_item(path, dfile, tuple(lv), flags, source, top)
                     for path, dfile, lv, source, top in request[1]]
        else:
            reply = ("!", "unknown request %r" % (kind,))
        _write_frame(stdout, reply)


def _on_signal(signum, frame):
    # Unwind: _write_atomic removes the temporary file it is writing. Further
    # signals (Ctrl-C reaches the whole process group, then pyimgtools stops its
    # workers with SIGTERM) are ignored, so they cannot cut that cleanup short.
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    if sys.implementation.cache_tag is None:
        sys.stderr.write("this interpreter does not use .pyc files (cache_tag is None)\n")
        sys.exit(EXIT_UNSUITABLE)
    import signal
    for _s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_s, _on_signal)
    serve(sys.stdin.buffer, sys.stdout.buffer)
    # Every reply is flushed and every .pyc closed: skip the interpreter's
    # teardown, which the parent would otherwise wait for.
    os._exit(0)
