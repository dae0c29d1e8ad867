"""`pyimgtools compile`: byte-compile the standard library (and more) fast, correctly, reproducibly.

plan:  ask the target interpreter about itself, walk the trees, and let the
       workers decide which .pyc files are missing or stale (reading headers
       and, for hash-based pycs, hashing the source as the importer would).
apply: compile exactly those, largest sources first, in a few long-lived
       worker processes of the target interpreter (pyimgtools/pycompile_worker.py).

The compiling happens in the target interpreter (`--python`), never in the one
running pyimgtools: the .pyc format belongs to the interpreter that reads it.
"""

import os
import re
import stat
import struct
import subprocess
import sys
import threading
import time

from pyimgtools import commandnames, image_python
from pyimgtools.cpus import available_cpus
from pyimgtools.errors import PyimgtoolsError, UsageError
from pyimgtools.workersource import worker_code, worker_source
from pyimgtools.report import display_line, display_path, envelope, format_bytes, format_count

NAME = commandnames.COMPILE
MODES = ("checked-hash", "timestamp", "unchecked-hash")
DEFAULT_MODE = "checked-hash"

# What CPython's own `make install` tells compileall to leave out of the
# standard library (Makefile.pre.in, target libinstall: `compileall -x REGEX`,
# an unanchored re.search), by the first version each regex applies to; the
# last row holds for newer versions. These files are test data meant not to
# compile (the tokenizer's, the parser's, lib2to3's, PEP 810's lazy imports in
# 3.15's test_lazy_import/data/badsyntax/). The regex's `site-packages` part is
# not a skip here: site directories are trees of their own (--site-packages).
SKIP_RULES = (
    ((3, 0), r"bad_coding|badsyntax|lib2to3/tests/data"),
    ((3, 12), r"bad_coding|badsyntax|test/test_lib2to3/data"),
    ((3, 13), r"bad_coding|badsyntax"),
)


def skip_rule(version):
    """The compiled skip regex for a target version (a (major, minor) tuple or "3.12.1")."""
    if isinstance(version, str):
        version = tuple(int(x) for x in version.split(".")[:2])
    rule = SKIP_RULES[0][1]
    for since, rx in SKIP_RULES:
        if tuple(version[:2]) >= since:
            rule = rx
    return re.compile(rule)


_FRAME = struct.Struct("<I")
_CHECK_BATCH = 64  # small enough that the first answers come while the walk goes on
_WORKER_UNSUITABLE = 3  # pycompile_worker.EXIT_UNSUITABLE (the worker is not imported here)


# --------------------------------------------------------------------------- workers

class WorkerError(PyimgtoolsError):
    pass


# Reads the worker's source from stdin (it would make an unreadable `ps` line as
# an argument), then runs it as __main__; the protocol follows on the same stream.
# stdin holds the worker's source, then its code object as this process has it
# (pytarget.worker_code): run when the target's magic number is the one it was
# marshalled under, which spares every worker compiling 22 KB of source.
_BOOT = ("import sys, marshal; _s = sys.stdin.buffer; _a = sys.argv; "
         "_src = _s.read(int(_a[1])); _pre = _s.read(int(_a[3])); "
         "from importlib._bootstrap_external import MAGIC_NUMBER as _m; "
         "exec(marshal.loads(_pre) if _pre and _m.hex() == _a[2] "
         "else compile(_src, 'pyimgtools-compile-worker', 'exec'))")


def _scratch_file():
    """An anonymous file for a worker's stderr (read only if it dies). A pipe
    could fill up and stall the worker; memfd spares the import of tempfile."""
    if hasattr(os, "memfd_create"):
        try:
            return open(os.memfd_create("pyimgtools-worker-stderr"), "w+b")
        except OSError:
            pass
    import tempfile
    return tempfile.TemporaryFile()


# What glibc's loader says when it cannot start a program (ld.so(8), dl-load.c).
_LOADER_FAILURE = re.compile(r"error while loading shared libraries|: version `[^']*' not found"
                             r"|cannot open shared object file")


class Worker:
    """One long-lived `TARGET -I -S -B -c BOOT` process, spoken to in marshal frames.

    -I: no environment variables, no user site, no script directory on sys.path;
    -S: no site (faster start, and no .pth file of the tree runs; compiling does
    not depend on it); -B: the worker's own imports write no .pyc files behind
    our back. `launch` says how to start TARGET (an image's own, through the
    image's loader: pyimgtools/image_python.py).
    """

    def __init__(self, launch, source, precompiled=(b"", b"")):
        self.launch = launch
        self.python = launch.image_path
        self.stderr = _scratch_file()
        code = source.encode("utf-8")
        magic, marshalled = precompiled
        try:
            self.proc = subprocess.Popen(launch.argv + ["-I", "-S", "-B", "-c", _BOOT, str(len(code)),
                                                        magic.hex(), str(len(marshalled))],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, close_fds=True, env=launch.env)
        except OSError as exc:
            self.stderr.close()
            raise PyimgtoolsError("--python %s: %s" % (self.python, exc.strerror or exc)) from None
        try:
            self.proc.stdin.write(code + marshalled)
        except OSError:
            pass  # reported by the first call()

    def call(self, request):
        """Send one request, return the worker's reply; WorkerError (with why the
        worker stopped) when it does not answer."""
        import marshal
        payload = marshal.dumps(request, 2)
        try:
            self.proc.stdin.write(_FRAME.pack(len(payload)) + payload)
            self.proc.stdin.flush()
            head = self.proc.stdout.read(4)
            if len(head) == 4:
                (n,) = _FRAME.unpack(head)
                body = self.proc.stdout.read(n)
                if len(body) == n:
                    return marshal.loads(body)
        except (OSError, ValueError, EOFError):
            pass
        raise WorkerError(self._failure())

    def end_input(self):
        """EOF on the worker's stdin: it exits once the request in hand is answered."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def _failure(self):
        """One line on why the worker stopped: the loader could not start the
        interpreter, the interpreter is too old (the worker exits 3), or other."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.stderr.seek(0)
            text = self.stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        code = self.proc.returncode
        loader = [line for line in lines if _LOADER_FAILURE.search(line)]
        if loader:
            who = ("the image's loader %s" % self.launch.loader if self.launch.loader
                   else "the dynamic loader")
            return "--python %s: %s could not start it: %s" % (self.python, who, loader[-1])
        what = lines[-1] if lines else "no message"
        if code == _WORKER_UNSUITABLE:
            return "--python %s: %s" % (self.python, what)
        return "--python %s: the compile worker stopped (%s): %s" % (
            self.python, "exit status %d" % code if code is not None else "no answer", what)

    def stop(self):
        """SIGTERM: the worker removes the temporary file it is writing and exits."""
        try:
            self.proc.terminate()
        except OSError:
            pass

    def close(self):
        self.end_input()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.stderr):
            try:
                f.close()
            except OSError:
                pass


class WorkerPool:
    """Workers of the target interpreter, fed batches by one thread each."""

    def __init__(self, launch):
        self.launch = launch
        self.python = launch.image_path
        self.source = worker_source()
        self.precompiled = worker_code()
        self.workers = []
        self.config = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.stop()  # SIGINT/SIGTERM (KeyboardInterrupt, Terminated): no batch is finished
        self.close()
        return False

    def stop(self):
        for worker in self.workers:
            worker.stop()

    def grow(self, n):
        while len(self.workers) < n:
            self.workers.append(self._start())

    def _start(self):
        worker = Worker(self.launch, self.source, self.precompiled)
        if self.config is not None:
            try:
                worker.call(self.config)
            except BaseException:
                worker.close()
                raise
        return worker

    def configure(self, mode, levels, force):
        self.config = ("config", mode, list(levels), bool(force))
        for worker in self.workers:
            worker.call(self.config)

    def info(self, want_paths):
        self.grow(1)
        reply = self.workers[0].call(("info", bool(want_paths), self.launch.venv))
        if not isinstance(reply, dict):
            raise WorkerError("--python %s: unexpected answer from the compile worker" % self.python)
        return reply

    def map(self, kind, batches, on_reply, request=list, grow_to=0):
        """Send `request(batch)` for every batch to some worker; on_reply(batch, reply)
        runs under a lock.

        `batches` may be a generator: it is advanced under the same lock, by
        whichever worker's thread is free, so producing the next batch (walking
        the tree) overlaps with the workers' answers to the previous ones.
        With grow_to, a new worker (up to grow_to in all) is started whenever a
        batch is taken and another one waits: workers are capped at the work
        (one batch: one worker, whatever -j says).
        """
        batches = iter(batches)
        lock = threading.Lock()
        errors = []
        threads = []
        starting = [0]
        ahead = [next(batches, None)]   # one batch looked ahead: is there more work?

        def feed(worker):
            try:
                while True:
                    with lock:
                        if errors:
                            return
                        batch = ahead[0]
                        if batch is None:
                            return
                        ahead[0] = next(batches, None)
                        if ahead[0] is not None and len(self.workers) + starting[0] < grow_to:
                            starting[0] += 1
                            spawn()
                    reply = worker.call((kind, request(batch)))
                    with lock:
                        on_reply(batch, reply)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                with lock:
                    errors.append(exc)

        def start_and_feed():
            try:
                worker = self._start()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                with lock:
                    starting[0] -= 1
                    errors.append(exc)
                return
            with lock:
                starting[0] -= 1
                self.workers.append(worker)
            feed(worker)

        def spawn(target=start_and_feed, args=()):
            t = threading.Thread(target=target, args=args, daemon=True)
            threads.append(t)      # before this thread (or its spawner) ends: joined below
            t.start()

        for w in self.workers[1:]:
            spawn(feed, (w,))
        feed(self.workers[0])
        if _interruption(errors):
            self.stop()  # interrupted: the other threads' workers stop now, not after their batch
        while threads:
            threads.pop().join()
        if errors:
            raise _interruption(errors) or errors[0]

    def close(self):
        for worker in self.workers:  # all of them first, so they exit side by side
            worker.end_input()
        for worker in self.workers:
            worker.close()
        self.workers = []


def _interruption(errors):
    """The SIGINT/SIGTERM among `errors`, if any. A signal sent to the process group
    stops the workers too, and another thread may record its worker's exit before the
    main thread runs the signal's handler: the signal, not that exit, is the outcome."""
    return next((exc for exc in errors if not isinstance(exc, Exception)), None)


# --------------------------------------------------------------------------- plan

# Plain classes, not dataclasses: `dataclasses` imports inspect and builds each
# class with exec(), ~13 ms of every warm run's ~0.1 s.
class _Record:
    """Fields set from keywords; repr and == over them (what the dataclasses gave)."""
    __slots__ = ()

    def _fields(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other):
        return type(other) is type(self) and other._fields() == self._fields()

    __hash__ = None

    def as_json(self):
        """{field: value}, for report.to_jsonable."""
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__))


class Target(_Record):
    """The target interpreter, as its worker describes itself (in-image paths with --root)."""
    __slots__ = ("executable", "implementation", "version", "cache_tag", "stdlib", "platstdlib",
                 "purelib", "platlib", "base_purelib", "base_platlib", "venv")

    def __init__(self, executable, implementation, version, cache_tag, stdlib=None,
                 platstdlib=None, purelib=None, platlib=None, base_purelib=None,
                 base_platlib=None, venv=None):
        self.executable, self.implementation, self.version = executable, implementation, version
        self.cache_tag, self.stdlib, self.platstdlib = cache_tag, stdlib, platstdlib
        self.purelib, self.platlib, self.venv = purelib, platlib, venv
        self.base_purelib, self.base_platlib = base_purelib, base_platlib


class Item(_Record):
    """One source to check and maybe compile."""
    __slots__ = ("path", "image_path", "dfile", "source", "top", "size", "levels", "reasons")

    def __init__(self, path, image_path, dfile=None, source=None, top=None, size=0,
                 levels=None, reasons=None):
        self.path = path              # host path (bytes) of the source, where the .pyc goes beside
        self.image_path = image_path  # the same in the image (what is shown)
        self.dfile = dfile            # name compiled into the code (None: the path itself)
        self.source = source          # host path to read, when `path` is a link resolved in --root
        self.top = top                # host path of the tree's top directory (None: a file tree)
        self.size = size
        self.levels = [] if levels is None else levels      # levels to (re)compile
        self.reasons = [] if reasons is None else reasons


class Failure(_Record):
    __slots__ = ("path", "error", "message", "line")

    def __init__(self, path, error, message, line=0):
        self.path, self.error, self.message, self.line = path, error, message, line

    def text(self):
        where = display_line(self.path) + (":%d" % self.line if self.line else "")
        return "%s: %s: %s" % (where, self.error, display_line(self.message))


class Plan(_Record):
    """What compiling would do: the items to compile and the counts of the rest."""
    __slots__ = ("target", "mode", "levels", "workers", "trees", "to_compile", "up_to_date",
                 "skipped", "excluded", "unreadable", "stale_tmp")

    def __init__(self, target, mode, levels, workers, trees, to_compile, up_to_date=0,
                 skipped=None, excluded=0, unreadable=None, stale_tmp=None):
        self.target, self.mode, self.levels, self.workers = target, mode, levels, workers
        self.trees, self.to_compile, self.up_to_date = trees, to_compile, up_to_date
        self.skipped = [] if skipped is None else skipped
        self.excluded = excluded
        self.unreadable = [] if unreadable is None else unreadable   # [Failure]
        self.stale_tmp = [] if stale_tmp is None else stale_tmp  # (host __pycache__, name, image path)


class Result(_Record):
    """What applying a plan did."""
    __slots__ = ("compiled", "pycs_written", "bytes_written", "failures", "warnings", "removed_tmp")

    def __init__(self):
        self.compiled, self.pycs_written, self.bytes_written = [], 0, 0
        self.failures, self.warnings, self.removed_tmp = [], [], []


_PATH_KEYS = ("stdlib", "platstdlib", "purelib", "platlib", "base_purelib", "base_platlib", "venv")


def _tree_roots(paths, site_packages, target, root):
    """[(host path, in-image path)] of the trees to walk, and the site dirs to prune."""
    site = [p for p in (target.purelib, target.platlib) if p]
    site_dirs = list(site)
    trees = []
    if paths:
        for p in paths:
            trees.append(_locate(p, root))
    if not paths or site_packages:
        if not paths:
            if not target.stdlib:
                raise PyimgtoolsError("--python %s: its standard library is not inside the root %s"
                                      % (display_path(target.executable), root.path))
            std = [target.stdlib] + ([target.platstdlib] if target.platstdlib != target.stdlib else [])
            for p in std:
                if p:
                    trees.append(_locate(p, root, what="the standard library of %s" % target.executable))
        if site_packages:
            for p in dict.fromkeys(site_dirs):
                host, image = _locate(p, root, what="site-packages of %s" % target.executable,
                                      missing_ok=True)
                if os.path.isdir(host):
                    trees.append((host, image))
    # A tree reached twice (a venv's lib64 -> lib, platstdlib == stdlib by a link) is walked once.
    unique = {}
    for host, image in trees:
        unique.setdefault(os.path.realpath(host), (host, image))
    trees = list(unique.values())
    # Site directories are compiled with --site-packages only, wherever they are
    # (a venv's base interpreter keeps its site-packages inside the stdlib).
    for std in (target.stdlib, target.platstdlib):
        if std:
            site += [os.path.join(std, "site-packages"), os.path.join(std, "dist-packages")]
    site += [p for p in (target.base_purelib, target.base_platlib) if p]
    prune = set()
    for p in site:
        try:
            prune.add(os.fsencode(os.path.normpath(root.host(root.realpath(p)))))
        except (OSError, ValueError):
            pass
    return trees, prune


def _locate(path, root, what=None, missing_ok=False):
    text = os.fsdecode(path)
    if root.is_host:
        host = image = os.path.abspath(text)
    else:
        if not text.startswith("/"):
            raise UsageError("with --root, PATH must be absolute inside the image: %s" % display_path(text))
        image = root.realpath(text)
        host = root.host(image)
    if not missing_ok and not os.path.exists(host):
        raise PyimgtoolsError("%s: no such file or directory%s"
                              % (display_path(image), " (%s)" % what if what else ""))
    return host, image


# The temporary files the worker writes before renaming (pycompile_worker._write_atomic).
_PID_MAX = 1 << 22  # the kernel's PID_MAX_LIMIT
_OUR_TMP = re.compile(rb"\A.+\.pyc\.([0-9]+)\.tmp\Z", re.S)


def _stale_tmp_in(cache_dir, image_dir, sink):
    """Note the worker's temporary files left in `cache_dir` by a killed run: those
    whose process is gone (a live one may be another run's, still writing)."""
    try:
        with os.scandir(cache_dir) as it:
            names = sorted(e.name for e in it if not e.is_dir(follow_symlinks=False))
    except OSError:
        return
    for name in names:
        m = _OUR_TMP.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if 0 < pid <= _PID_MAX:  # never 0: kill(0, 0) is this process group
            try:
                os.kill(pid, 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except OSError:
                continue  # alive, another user's
        sink.stale_tmp.append((cache_dir, name, image_dir + "/__pycache__/" + os.fsdecode(name)))


def _walk(tree_host, tree_image, prune, root, sink):
    """Yield (host bytes, image str, source-to-read or None, top) for every .py file under the
    tree; `top` is the tree's directory (bytes), None when the tree is one file.

    Like compileall: __pycache__ is skipped and symlinked directories are not
    followed; symlinked files are compiled (inside --root, resolved in the root).
    A directory that cannot be listed is a failure in `sink.unreadable` (compileall:
    "Can't list"); stale temporary files of the worker go to `sink.stale_tmp`.
    """
    top = os.fsencode(tree_host)
    try:
        st = os.stat(top)
    except OSError as exc:
        raise PyimgtoolsError("%s: %s" % (display_path(tree_image), exc.strerror or exc)) from None
    if not stat.S_ISDIR(st.st_mode):
        yield top, tree_image, None, None
        return
    image_prefix = tree_image.rstrip("/")
    stack = [(top, image_prefix)]
    while stack:
        directory, image_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            sink.unreadable.append(Failure(image_dir or "/", "OSError", "cannot list the directory: %s"
                                           % (exc.strerror or exc)))
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name == b"__pycache__":
                        _stale_tmp_in(entry.path, image_dir, sink)
                    elif entry.path not in prune:
                        subdirs.append((entry.path, image_dir + "/" + os.fsdecode(name)))
                    continue
                if not name.endswith(b".py"):
                    continue
                image = image_dir + "/" + os.fsdecode(name)
                source = None
                if entry.is_symlink():
                    if root.is_host:
                        if not entry.is_file():
                            continue
                    else:
                        resolved = root.host(root.realpath(image))
                        if not os.path.isfile(resolved):
                            continue
                        source = os.fsencode(resolved)
                elif not entry.is_file(follow_symlinks=False):
                    continue
                yield entry.path, image, source, top
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _candidates(trees, prune, root, excludes, skip_re, result):
    """Items to check, in walk order; skipped and excluded files are counted in `result`.

    The skip rule sees the path from the tree's own name down (`python3.15/test/...`
    for the stdlib): CPython's regexes are unanchored, and the directories above
    the tree (a build directory, pytest's `test_badsyntax0`) must not decide.
    """
    seen = set()
    for host, image in trees:
        above = len(os.path.dirname(image.rstrip("/")).rstrip("/")) + 1
        for path, image_path, source, top in _walk(host, image, prune, root, result):
            if path in seen:
                continue
            seen.add(path)
            if skip_re.search(image_path[above:]):
                result.skipped.append(image_path)
                continue
            if any(rx.search(image_path) for rx in excludes):
                result.excluded += 1
                continue
            yield Item(path=path, image_path=image_path, source=source, top=top,
                       dfile=None if root.is_host else image_path)


def _more_than_one_batch(paths, root, max_dirs=64):
    """Whether the trees hold more than _CHECK_BATCH sources, from a look bounded to
    `max_dirs` directories (False when it cannot tell). No PATH means the standard
    library: always more. Before `info`, so site directories are not left out: a
    tree that is all site-packages may start a worker the work does not need."""
    if not paths:
        return True
    found, dirs = 0, 0
    for p in paths:
        try:
            host, _image = _locate(p, root)
        except PyimgtoolsError:
            return False        # reported by the plan itself
        stack = [host]
        while stack:
            d = stack.pop()
            dirs += 1
            if dirs > max_dirs:
                return False
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.endswith(".py"):
                            found += 1
                        elif e.is_dir(follow_symlinks=False) and e.name != "__pycache__":
                            stack.append(e.path)
            except NotADirectoryError:
                found += 1
            except OSError:
                continue
            if found > _CHECK_BATCH:
                return True
    return False


def _chunks(iterable, size):
    chunk = []
    for x in iterable:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def plan(*, root, pool, paths=(), site_packages=False, workers=0, optimize=None,
         invalidation_mode=DEFAULT_MODE, exclude=None, force=False):
    """What compiling `paths` (default: the standard library) with `pool`'s
    interpreter would do: a Plan; every source is checked by that interpreter."""
    workers = workers or available_cpus()
    # One worker answers `info`; more start as batches come (WorkerPool.map
    # grow_to), never more than the work. When the trees surely hold more than one
    # batch, a second one boots beside the first: a warm run is mostly checking,
    # and waiting for `info` before starting it would leave one CPU idle.
    if workers > 1 and _more_than_one_batch(paths, root):
        pool.grow(2)
    info = pool.info(want_paths=True)
    target = Target(**{k: info.get(k) for k in (
        "executable", "implementation", "version", "cache_tag", "stdlib", "platstdlib",
        "purelib", "platlib", "base_purelib", "base_platlib", "venv")})
    if not root.is_host:
        # An image's interpreter ran from the host: it saw host paths under the root.
        for key in _PATH_KEYS:
            setattr(target, key, image_python.to_image(root, getattr(target, key)))
        target.executable = pool.python
    levels = sorted(set(optimize or [0]))
    excludes = [re.compile(rx) for rx in exclude or []]
    trees, prune = _tree_roots(paths, site_packages, target, root)
    pool.configure(invalidation_mode, levels, force)

    result = Plan(target=target, mode=invalidation_mode, levels=levels, workers=workers,
                  trees=[image for _host, image in trees], to_compile=[])
    unreadable = []

    def on_reply(batch, reply):
        for it, answer in zip(batch, reply):
            if answer[0] == "!":
                unreadable.append(Failure(it.image_path, "OSError", answer[1]))
                continue
            it.size = answer[0]
            it.reasons = list(answer[1])
            it.levels = [lv for lv, why in zip(levels, answer[1]) if why]
            if it.levels:
                result.to_compile.append(it)
            else:
                result.up_to_date += 1

    # The walk is a generator the workers' feeder threads advance: the tree is
    # walked while the first batches are being checked.
    batches = _chunks(_candidates(trees, prune, root, excludes, skip_rule(target.version), result),
                      _CHECK_BATCH)
    pool.map("check", batches, on_reply, request=lambda batch: [(it.path, it.source) for it in batch],
             grow_to=workers)
    result.to_compile.sort(key=lambda it: it.path)
    result.unreadable = sorted(result.unreadable + unreadable, key=lambda f: f.path)
    result.stale_tmp.sort()
    return result


# --------------------------------------------------------------------------- apply

def _compile_batches(items, workers):
    """Largest sources first, in batches of roughly equal work, small enough that the
    last ones balance the workers."""
    ordered = sorted(items, key=lambda it: (-it.size * len(it.levels), it.path))
    total = sum(it.size * len(it.levels) for it in ordered)
    budget = max(1, total // max(1, workers * 48))
    batches, current, weight = [], [], 0
    for it in ordered:
        current.append(it)
        weight += it.size * len(it.levels)
        if weight >= budget or len(current) >= 64:
            batches.append(current)
            current, weight = [], 0
    if current:
        batches.append(current)
    return batches


class _Progress:
    """A `compiling 512/1,773` line on a TTY (stderr), after the first second only."""

    def __init__(self, out, total):
        self.out, self.total, self.done = out, total, 0
        self.enabled = out.is_tty and not out.quiet and not out.json_mode and total > 0
        self.start = time.monotonic()
        self.shown = False

    def advance(self, n):
        self.done += n
        if self.enabled and time.monotonic() - self.start > 1.0:
            self.out.stderr.write("\rcompiling %s/%s" % (format(self.done, ","), format(self.total, ",")))
            self.out.stderr.flush()
            self.shown = True

    def finish(self):
        if self.shown:
            self.out.stderr.write("\r\033[K")
            self.out.stderr.flush()


def _remove_stale_tmp(plan_, result):
    """Delete the temporary files a killed run left (O_NOFOLLOW on __pycache__, unlinkat)."""
    for cache_dir, name, image in plan_.stale_tmp:
        try:
            fd = os.open(cache_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.unlink(name, dir_fd=fd)
            finally:
                os.close(fd)
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.warnings.append("%s: cannot remove: %s" % (image, exc.strerror or exc))
            continue
        result.removed_tmp.append(image)


def apply(plan_, *, pool, out):
    """Compile what `plan_` lists with `pool`; a Result (`out` shows progress on a TTY)."""
    result = Result()
    _remove_stale_tmp(plan_, result)
    if not plan_.to_compile:
        return result
    batches = _compile_batches(plan_.to_compile, len(pool.workers))
    pool.grow(min(plan_.workers, len(batches)))
    progress = _Progress(out, len(plan_.to_compile))

    def on_reply(batch, reply):
        for it, answer in zip(batch, reply):
            if answer[0] == "ok":
                result.compiled.append(it.image_path)
                result.pycs_written += answer[1]
                result.bytes_written += answer[2]
                result.warnings.extend(answer[3])
            else:
                result.failures.append(Failure(it.image_path, answer[1], answer[2], answer[3]))
                result.warnings.extend(answer[4])
        progress.advance(len(batch))

    # Like compileall, a file that fails stops nothing: every other file is
    # compiled (the largest go first, so a stop would leave the small ones,
    # package __init__.py files among them), and each failure is listed.
    try:
        pool.map("compile", batches, on_reply,
                 request=lambda batch: [(it.path, it.dfile, it.levels, it.source, it.top)
                                        for it in batch])
    finally:
        progress.finish()
    result.compiled.sort()
    result.failures.sort(key=lambda f: f.path)
    return result


# --------------------------------------------------------------------------- the task

class Outcome(_Record):
    """What compile_trees did: its plan, and the result of applying it (None on a dry run)."""
    __slots__ = ("plan", "result", "seconds")

    def __init__(self, plan, result, seconds):
        self.plan, self.result, self.seconds = plan, result, seconds

    @property
    def dry_run(self):
        return self.result is None


def _launch(root, python):
    if root.is_host:
        python = python or sys.executable
        if not python:
            raise UsageError("cannot tell which interpreter runs pyimgtools: give --python")
        return image_python.Launch([python], None, python)
    # the image's own interpreter, run by the image's own loader
    return image_python.launch(root, python or image_python.default_python(root))


def compile_trees(*, root, out, paths=(), python=None, site_packages=False, workers=0,
                  optimize=None, invalidation_mode=DEFAULT_MODE, exclude=None, force=False,
                  keep_going=False, dry_run=False):
    """Plan, and unless `dry_run` apply, the compilation of `paths` (default:
    the standard library of `python`) in `root`: an Outcome. `out` gets the
    progress line only; report() renders the outcome. keep_going is accepted
    for compatibility (a failure never stops the others)."""
    del keep_going
    start = time.monotonic()
    for rx in exclude or []:
        try:
            re.compile(rx)
        except re.error as exc:
            raise UsageError("--exclude %s: %s" % (rx, exc)) from None
    with WorkerPool(_launch(root, python)) as pool:
        the_plan = plan(root=root, pool=pool, paths=paths, site_packages=site_packages,
                        workers=workers, optimize=optimize, invalidation_mode=invalidation_mode,
                        exclude=exclude, force=force)
        result = None if dry_run else apply(the_plan, pool=pool, out=out)
    return Outcome(the_plan, result, time.monotonic() - start)


def failure(outcome):
    """The PyimgtoolsError the command ends with, or None."""
    if outcome.dry_run:
        if outcome.plan.unreadable:
            return PyimgtoolsError("%s cannot be read" % format_count(len(outcome.plan.unreadable),
                                                                       "path"))
        return None
    failed = len(outcome.result.failures) + len(outcome.plan.unreadable)
    if failed:
        return PyimgtoolsError("%s failed to compile" % format_count(failed, "file"))
    return None


def exit_code(outcome):
    """The exit status when failure() is None: 0."""
    del outcome
    return 0


def report(outcome, out):
    """The outcome's lines and summary line (the JSON document: document())."""
    if outcome.dry_run:
        _report_plan(outcome.plan, out, outcome.seconds)
    else:
        _report(outcome.plan, outcome.result, out, outcome.seconds)


def document(outcome):
    """The --json document of the outcome."""
    return _document(outcome.plan, outcome.result, outcome.seconds, dry_run=outcome.dry_run)


def _target_text(p):
    return "%s %s, %s, -O %s" % ("CPython" if p.target.implementation == "cpython"
                                 else p.target.implementation, p.target.version, p.mode,
                                 ",".join(str(lv) for lv in p.levels))


def _report_plan(p, out, seconds):
    for it in p.to_compile:
        out.line("would compile %s (%s)" % (display_line(it.image_path),
                                            ", ".join(sorted(set(r for r in it.reasons if r)))))
    for _d, _n, image in p.stale_tmp:
        out.line("would remove %s (left by a run that was killed)" % display_line(image))
    for f in p.unreadable:
        print(f.text(), file=out.stderr)
    out.summary("pyimgtools compile: would compile %s, %s up to date, %d skipped, %d unreadable "
                "(%s) in %.2f s" % (format_count(len(p.to_compile), "file"),
                                    format(p.up_to_date, ","), len(p.skipped), len(p.unreadable),
                                    _target_text(p), seconds))


def _report(p, r, out, seconds):
    for line in r.warnings:
        out.detail("warning: " + display_line(line))
    for path in r.removed_tmp:
        out.detail("removed %s (left by a run that was killed)" % display_line(path))
    for path in r.compiled:
        out.detail("compiled " + display_line(path))
    for f in p.unreadable + r.failures:
        print(f.text(), file=out.stderr)
    failed = len(r.failures) + len(p.unreadable)
    out.summary("pyimgtools compile: compiled %s (%s .pyc, %s), %s up to date, %d skipped, "
                "%d failed in %.2f s (%s)" % (
                    format_count(len(r.compiled), "file"), format(r.pycs_written, ","),
                    format_bytes(r.bytes_written), format(p.up_to_date, ","), len(p.skipped),
                    failed, seconds, _target_text(p)))


def _document(p, r, seconds, dry_run):
    failed = len(p.unreadable) + (len(r.failures) if r else 0)
    own = {
        "python": {"executable": p.target.executable, "implementation": p.target.implementation,
                   "version": p.target.version, "cache_tag": p.target.cache_tag,
                   "venv": p.target.venv},
        "invalidation_mode": p.mode,
        "optimize": p.levels,
        "workers": p.workers,
        "trees": p.trees,
        "files": {
            "to_compile" if dry_run else "compiled": len(p.to_compile) if dry_run else len(r.compiled),
            "up_to_date": p.up_to_date,
            "skipped": len(p.skipped),
            "excluded": p.excluded,
            "failed": failed,
        },
        "skipped": p.skipped,
    }
    # the numbers of the summary line; a dry run's are what the real run would do
    counts = {"files": len(p.to_compile) if dry_run else len(r.compiled)}
    if dry_run:
        own["to_compile"] = [{"path": it.image_path, "optimize": it.levels,
                              "reasons": [x for x in it.reasons if x]} for it in p.to_compile]
        own["stale_tmp"] = [image for _d, _n, image in p.stale_tmp]
        failures, warnings = p.unreadable, []
    else:
        own["pycs_written"] = r.pycs_written
        own["bytes_written"] = r.bytes_written
        own["compiled"] = r.compiled
        own["removed_tmp"] = r.removed_tmp
        counts.update(pycs=r.pycs_written, bytes=r.bytes_written)
        failures, warnings = p.unreadable + r.failures, r.warnings
    counts.update(up_to_date=p.up_to_date, skipped=len(p.skipped), failed=failed)
    # compile's warnings (the compiler's, shown with -v) are its own
    return envelope(NAME, dry_run=dry_run, seconds=seconds, counts=counts, results=own,
                    warnings=warnings, failures=failures, **own)
