"""Debian root file systems for integration tests, made like Debian's SUITE-slim images.

`rootfs_tarball(suite)` returns a cached tarball made with
`debootstrap --variant=minbase`, then configured as Debian's container images
are (docker apt configs, dpkg path-excludes, main/-updates/-security sources,
no apt lists). It is rebuilt when older than a week or when the recipe below
changes (the recipe's hash is part of the file name).

`rootfs_tarball(suite, packages)` is that tarball with `packages` installed by
apt inside it (lists removed again), cached the same way: sid with
python3.14 and python3.15 for the 3.14/3.15 matrix. `base=` builds it on top
of a smaller set's tarball (tests/harness/rootfs_pytest.py adds gcc and venv
support to SID_PYTHONS that way).

sid has no -updates or -security suite, and its Release file can be past its
Valid-Until on these machines: its rootfs carries
`Acquire::Check-Valid-Until "false"` (a file of its own, named for the harness).

`Chroot(suite, packages)` is a fresh copy of that tarball, entered with `chroot`,
with /proc, a minimal /dev and resolv.conf set up, always torn down
(`tmpfs=True`: the copy lives in a tmpfs of its own).
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

from tests.harness.prereq import CACHE_DIR

MIRROR = os.environ.get("PYIMGTOOLS_TEST_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("PYIMGTOOLS_TEST_SECURITY_MIRROR", MIRROR + "-security")
MAX_AGE = 7 * 24 * 3600

# The files Debian's container images add on top of debootstrap (debuerreotype).
APT_CONF = {
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n',
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
"""
POLICY_RC_D = "#!/bin/sh\n# no services start inside a build\nexit 101\n"
SOURCES = """\
Types: deb
URIs: {mirror}
Suites: {suite} {suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: {suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# The suites of a development release (no -updates, no -security).
UNSTABLE = ("sid", "unstable", "forky")
SOURCES_UNSTABLE = """\
Types: deb
URIs: {mirror}
Suites: {suite}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
NO_VALID_UNTIL = ("pyimgtools-test-no-valid-until", 'Acquire::Check-Valid-Until "false";\n')
# Python 3.14 and 3.15 with the stdlib's test data (the compile skip rules meet it).
SID_PYTHONS = ("python3.14", "libpython3.14-testsuite", "python3.15", "libpython3.15-testsuite")
# Files already installed that the excludes would have kept out (debuerreotype-slimify).
SLIMIFY = r"""
set -e
cd "$1"
find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
find usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf usr/share/groff/* usr/share/info/* usr/share/linda/* usr/share/lintian/overrides/* usr/share/man/*
find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb
"""


def _recipe_key(suite):
    recipe = repr((suite, MIRROR, SECURITY_MIRROR, sorted(APT_CONF.items()), DPKG_EXCLUDES,
                   POLICY_RC_D, SOURCES, SLIMIFY)
                  + ((SOURCES_UNSTABLE, NO_VALID_UNTIL) if suite in UNSTABLE else ()))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _configure(target, suite):
    for name, text in APT_CONF.items():
        _write(os.path.join(target, "etc/apt/apt.conf.d", name), text)
    _write(os.path.join(target, "etc/dpkg/dpkg.cfg.d/docker"), DPKG_EXCLUDES)
    _write(os.path.join(target, "usr/sbin/policy-rc.d"), POLICY_RC_D, 0o755)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(target, "etc/apt/sources.list"))
    sources = SOURCES_UNSTABLE if suite in UNSTABLE else SOURCES
    _write(os.path.join(target, "etc/apt/sources.list.d/debian.sources"),
           sources.format(mirror=MIRROR, security=SECURITY_MIRROR, suite=suite))
    if suite in UNSTABLE:
        _write(os.path.join(target, "etc/apt/apt.conf.d", NO_VALID_UNTIL[0]), NO_VALID_UNTIL[1])
    subprocess.run(["sh", "-c", SLIMIFY, "slimify", target], check=True)


@contextlib.contextmanager
def _locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fresh(path):
    try:
        return time.time() - os.stat(path).st_mtime < MAX_AGE
    except FileNotFoundError:
        return False


def rootfs_tarball(suite, packages=(), base=()):
    """Path of the cached, slim-configured rootfs tarball for `suite` (built if needed),
    with `packages` installed when given.

    `base`: a package set whose tarball `packages` is installed on top of (it
    is built first if needed), so a larger set reuses a smaller one's download
    and install; the result is the same tarball either way (keyed by
    `packages` alone, which must contain `base`)."""
    cache = os.path.join(CACHE_DIR, "rootfs")
    key = _recipe_key(suite)
    stem = suite
    if packages:
        stem = "%s+%s" % (suite, hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:8])
    tarball = os.path.join(cache, "%s-%s.tar" % (stem, key))
    if _fresh(tarball):
        return tarball
    if base and not set(base) < set(packages):
        raise ValueError("base %r is not a proper part of packages %r" % (base, packages))
    below = rootfs_tarball(suite, base) if packages else None
    with _locked(os.path.join(cache, stem + ".lock")):
        if _fresh(tarball):
            return tarball
        work = tempfile.mkdtemp(prefix="rootfs-%s-" % stem, dir=cache)
        try:
            target = os.path.join(work, "root")
            if packages:
                _install_into(below, target, suite, sorted(set(packages) - set(base)))
            else:
                _debootstrap(target, suite, cache)
            subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", target, "-cf",
                            tarball + ".part", "."], check=True)
            os.replace(tarball + ".part", tarball)
        finally:
            subprocess.run(["rm", "-rf", "--one-file-system", work], check=False)
        for old in os.listdir(cache):  # earlier recipes of this suite
            if old.startswith(stem + "-") and old.endswith(".tar") and old != os.path.basename(tarball):
                os.unlink(os.path.join(cache, old))
    return tarball


def _debootstrap(target, suite, cache):
    log = os.path.join(cache, suite + ".debootstrap.log")
    with open(log, "w") as logf:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, target, MIRROR],
            stdout=logf, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log) as f:
            tail = f.read()[-2000:]
        raise RuntimeError("debootstrap %s failed (log %s):\n%s" % (suite, log, tail))
    _configure(target, suite)


def _install_into(base, target, suite, packages):
    """Unpack `base` at `target` and apt-get install `packages` inside it."""
    os.makedirs(target)
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", target, "-xf", base], check=True)
    with _Entered(target):
        _run_in(target, suite, "apt-get update -qq && apt-get install -y -qq "
                "--no-install-recommends %s && rm -rf /var/lib/apt/lists/*" % " ".join(packages))


def _mounts_under(path):
    prefix = path.rstrip("/") + "/"
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].encode().decode("unicode_escape")
            if point == path or point.startswith(prefix):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(path):
    """Unmount anything under `path`, then delete it without crossing file systems."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_under(path):
        raise RuntimeError("refusing to delete %s: still has mounts" % path)
    subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


def _owner_alive(copy):
    """Whether the process that made the chroot copy `copy` still runs."""
    try:
        with open(copy + ".owner") as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_work():
    """Remove chroot copies left by an earlier run that was killed.

    Copies of test sessions that still run (several may run at once) stay.
    """
    work = os.path.join(CACHE_DIR, "work")
    if not os.path.isdir(work):
        return
    for name in os.listdir(work):
        copy = os.path.join(work, name)
        if name.endswith(".owner") or not os.path.isdir(copy) or _owner_alive(copy):
            continue
        _remove_tree(copy)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(copy + ".owner")


_DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
              ("urandom", 1, 9), ("tty", 5, 0))


class Chroot:
    """A throw-away copy of a suite's rootfs, entered with chroot.

    Use as a context manager; `run()` executes a shell command (str) or argv
    (list) inside it and returns the CompletedProcess (text, output captured).
    """

    def __init__(self, suite, packages=(), tmpfs=False):
        """`tmpfs`: the copy lives in a tmpfs mounted on its directory (for a large
        rootfs: unpacked and freed without disk I/O; unmounted on exit like the rest)."""
        self.suite = suite
        self.packages = tuple(packages)
        self.tmpfs = tmpfs
        self.path = None

    def __enter__(self):
        tarball = rootfs_tarball(self.suite, self.packages)
        work = os.path.join(CACHE_DIR, "work")
        os.makedirs(work, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix="%s-" % self.suite, dir=work)
        with open(self.path + ".owner", "w") as f:
            f.write(str(os.getpid()))
        try:
            if self.tmpfs:
                subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "pyimgtools-rootfs",
                                self.path], check=True)
            subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", self.path, "-xf", tarball],
                           check=True)
            _setup_chroot(self.path)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.path:
            _remove_tree(self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + ".owner")
            self.path = None
        return False

    def host(self, path):
        """Host path of an absolute path inside the chroot."""
        return os.path.join(self.path, path.lstrip("/"))

    def run(self, cmd, check=True, env=None, user=None, input=None, timeout=1800, cwd="/",
            capture=True):
        """`capture=False`: the output goes to this process's stdout/stderr."""
        return _run_in(self.path, self.suite, cmd, check, env, user, input, timeout, cwd, capture)

    def apt_install(self, *packages):
        """apt-get update + install inside the chroot (lists are removed again afterwards)."""
        self.run("apt-get update -qq && apt-get install -y -qq --no-install-recommends %s"
                 " && rm -rf /var/lib/apt/lists/*" % " ".join(packages))


class _Entered:
    """/proc, /dev and resolv.conf set up in a rootfs being built; unmounted after."""

    def __init__(self, root):
        self.root = root

    def __enter__(self):
        _setup_chroot(self.root)
        return self

    def __exit__(self, *exc):
        for point in _mounts_under(self.root):
            subprocess.run(["umount", "-l", point], check=False)
        return False


def _setup_chroot(root):
    """Mount /proc and a minimal /dev in `root`; copy the host's resolv.conf."""
    subprocess.run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")], check=True)
    dev = os.path.join(root, "dev")
    shutil.rmtree(dev, ignore_errors=True)
    os.makedirs(dev, exist_ok=True)
    # A tmpfs /dev with a few nodes, not a bind mount of the host's /dev:
    # nothing the test does inside can reach the host's devices.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "pyimgtools-dev", dev],
                   check=True)
    for name, major, minor in _DEV_NODES:
        node = os.path.join(dev, name)
        os.mknod(node, 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(node, 0o666)
    for name in ("pts", "shm"):
        os.mkdir(os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink("/proc/self/fd/%d" % i, os.path.join(dev, name))
    resolv = os.path.join(root, "etc/resolv.conf")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(resolv)
    with contextlib.suppress(FileNotFoundError):
        shutil.copyfile("/etc/resolv.conf", resolv)


def _run_in(root, suite, cmd, check=True, env=None, user=None, input=None, timeout=1800, cwd="/",
            capture=True):
    """Run `cmd` (a shell string or an argv list) in the chroot at `root`."""
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    if user is not None:
        argv = ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups",
                "--"] + argv
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    full_env.update(env or {})
    proc = subprocess.run(["chroot", root, "sh", "-c", 'cd "$1" && shift && exec "$@"',
                           "cd", cwd] + argv,
                          env=full_env, input=input, capture_output=capture, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("in %s chroot, %r exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (suite, cmd, proc.returncode, (proc.stdout or "")[-4000:],
                                (proc.stderr or "")[-4000:]))
    return proc
